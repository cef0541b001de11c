"""Pictures of DIDB-ViT's attention for one image.

Writes PNGs to ``--out``:

- ``input.png``: the image as the model sees it (resized), query marked;
- ``attention_layer{L}.png`` per layer: one row per head with the
  full-precision softmax attention of the query token, its binarized
  ``{0, alpha}`` mask, and DIBA's effective aggregation weights (``A`` +
  self term + ``D``'s per-neighbour weights, averaged over the head's
  channels), each on the patch grid (the class token's weight in the title);
- ``haar_layer{L}.png`` per layer: the per-token norm of Q and K from the
  low and the high Haar band (HFSC; the plain Q and K without HFSC), and the
  query's similarity row of each band;
- ``irprelu_offsets.png``: every IRPReLU token offset ``b`` of every layer
  as a heat map on the patch grid.

Works on any DIDBViT config, classification or segmentation (the Fashion-MNIST
and nuclei quick starts included).

Usage:
    python tools/visualization/vis_attention.py CONFIG CHECKPOINT IMAGE \\
        --out DIR [--query ROW COL | --query cls] [--layers L ...]
        [--cfg-options ...]
"""
import argparse
import os
import os.path as osp

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from mmdidb.apis.inspection import (  # noqa: E402
    attention_maps,
    find_didb_vit,
    load_image,
    load_model,
    record_attention_inputs,
)
from mmdidb.models.layers import IRPReLU  # noqa: E402
from mmdidb.models.layers.wrapped_linear import apply_activation  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('image', help='an image file (any size; resized)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--query', nargs='+', default=None,
                        help='query token: ROW COL on the patch grid, or '
                        '"cls"; default: the centre patch')
    parser.add_argument('--layers', type=int, nargs='+', default=None,
                        help='layers to draw (default: all)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def grid_map(row, hw, extra):
    """(N,) token values -> (H, W) patch-grid map and the extra tokens."""
    return row[extra:].reshape(hw).cpu().numpy(), row[:extra].tolist()


def query_index(query, hw, extra):
    if query is None:
        return extra + (hw[0] // 2) * hw[1] + hw[1] // 2
    if query == ['cls']:
        if not extra:
            raise ValueError('--query cls: this model has no class token')
        return 0
    if len(query) != 2:
        raise ValueError('--query takes ROW COL or "cls"')
    r, c = int(query[0]), int(query[1])
    if not (0 <= r < hw[0] and 0 <= c < hw[1]):
        raise ValueError(f'--query {r} {c} is outside the {hw} patch grid')
    return extra + r * hw[1] + c


def mark(ax, index, hw, extra):
    if index >= extra:
        r, c = divmod(index - extra, hw[1])
        ax.plot(c, r, 'x', color='red', markersize=6)


def show(ax, image, title, cmap='viridis', **kwargs):
    im = ax.imshow(image, cmap=cmap, **kwargs)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def plot_attention(path, maps, index, hw, extra, layer):
    heads = maps['probs'].shape[1]
    fig, axes = plt.subplots(heads, 3, figsize=(9, 2.8 * heads),
                             squeeze=False)
    for h in range(heads):
        for col, (key, name) in enumerate((
                ('probs', 'FP softmax P'), ('binary', 'binarized {0, α}'),
                ('effective', 'DIBA effective weights'))):
            row = maps[key][0, h, index]
            image, cls = grid_map(row, hw, extra)
            cls_text = f', cls {cls[0]:.3f}' if cls else ''
            kwargs = {}
            if key == 'effective':
                bound = float(row.abs().max())
                kwargs = dict(cmap='RdBu_r', vmin=-bound, vmax=bound)
            show(axes[h, col], image,
                 f'layer {layer} head {h}: {name}{cls_text}', **kwargs)
            mark(axes[h, col], index, hw, extra)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@torch.no_grad()
def haar_bands(attn, x, hw):
    """Per band: (Q, K, similarity) of one layer; plain Q, K without HFSC."""
    sim = attn.similarity
    if hasattr(sim, 'split'):
        bands = list(zip(('low', 'high'), sim.split(x, hw, None),
                         (sim.low, sim.high)))
    else:
        bands = [('plain', x, sim.binarizers)]
    out = []
    for name, band, binarizers in bands:
        q = apply_activation(attn.q, band, hw)
        k = apply_activation(attn.k, band, hw)
        out.append((name, q, k, binarizers.product(q, k, attn.num_heads)))
    return out


def plot_haar(path, bands, index, hw, extra, layer):
    fig, axes = plt.subplots(len(bands), 3, figsize=(9, 2.8 * len(bands)),
                             squeeze=False)
    for i, (name, q, k, sim) in enumerate(bands):
        show(axes[i, 0], grid_map(q[0].norm(dim=-1), hw, extra)[0],
             f'layer {layer}: |Q| of the {name} band')
        show(axes[i, 1], grid_map(k[0].norm(dim=-1), hw, extra)[0],
             f'layer {layer}: |K| of the {name} band')
        show(axes[i, 2], grid_map(sim[0, :, index].mean(0), hw, extra)[0],
             f'{name}: Q_b K_bᵀ of the query (head mean)')
        mark(axes[i, 2], index, hw, extra)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_offsets(path, backbone, hw):
    layers = []
    for i, layer in enumerate(backbone.layers):
        found = [(name, m) for name, m in layer.named_modules()
                 if isinstance(m, IRPReLU) and m.token_offset is not None]
        layers.append((i, found))
    cols = max([len(found) for _, found in layers] + [1])
    fig, axes = plt.subplots(len(layers), cols,
                             figsize=(2.6 * cols, 2.3 * len(layers)),
                             squeeze=False)
    for i, found in layers:
        for j in range(cols):
            ax = axes[i, j]
            if j >= len(found):
                ax.axis('off')
                continue
            name, module = found[j]
            offset = module.token_offset.detach()[:, 0]
            image, cls = grid_map(offset, backbone.patch_resolution,
                                  module.num_extra_tokens)
            bound = float(offset.abs().max()) or 1.0
            cls_text = f' (cls {cls[0]:.2f})' if cls else ''
            show(ax, image, f'layer {i} {name}{cls_text}', cmap='RdBu_r',
                 vmin=-bound, vmax=bound)
    if not any(found for _, found in layers):
        axes[0, 0].text(0.5, 0.5, 'no IRPReLU token offsets (RPReLU)',
                        ha='center', va='center')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    model, _ = load_model(args.config, args.checkpoint, args.cfg_options)
    backbone = find_didb_vit(model)
    inputs, image = load_image(args.image, model, backbone)
    with record_attention_inputs(backbone) as records:
        backbone(inputs)
    hw = records[0][1]
    extra = backbone.num_extra_tokens
    index = query_index(args.query, hw, extra)
    os.makedirs(args.out, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(image, cmap='gray' if image.ndim == 2 else None)
    if index >= extra:
        r, c = divmod(index - extra, hw[1])
        p = backbone.patch_size
        ax.add_patch(plt.Rectangle((c * p - 0.5, r * p - 0.5), p, p,
                                   fill=False, edgecolor='red'))
    ax.set_title('query patch' if index >= extra else 'query: class token',
                 fontsize=8)
    ax.axis('off')
    written.append(osp.join(args.out, 'input.png'))
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    layers = range(len(records)) if args.layers is None else args.layers
    for layer in layers:
        if not 0 <= layer < len(records):
            raise ValueError(f'--layers: {layer} is outside the '
                             f'{len(records)} layers')
        x, layer_hw = records[layer]
        attn = backbone.layers[layer].attn
        written.append(osp.join(args.out, f'attention_layer{layer}.png'))
        plot_attention(written[-1], attention_maps(attn, x, layer_hw), index,
                       layer_hw, extra, layer)
        written.append(osp.join(args.out, f'haar_layer{layer}.png'))
        plot_haar(written[-1], haar_bands(attn, x, layer_hw), index,
                  layer_hw, extra, layer)
    written.append(osp.join(args.out, 'irprelu_offsets.png'))
    plot_offsets(written[-1], backbone, hw)
    for path in written:
        print(path)
    return written


if __name__ == '__main__':
    main()
