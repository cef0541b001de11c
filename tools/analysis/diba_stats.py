"""DIBA's training-time statistics from a checkpoint and one batch.

For each layer (and head) of a DIDBViT: the attention scale alpha, the kept
token count k and ``alpha·k`` (how far the binarized rows are from summing
to one; ``1 - alpha·k`` is the self weight), the mean token norm of each
term of DIBA's output (``A·V``, the self term, ``D(V)``), D's per-channel
scale, HFSC's fusion weight, the norm of the gradient of the training
loss reaching V through each term (one batch of the config's test split,
the model's own loss), and how often the output projection's binarized
input ``sign(out + beta)`` equals the sign of the token's own value, with
and without the self term (how much of the binary attention's mixing
survives binarization).

Usage:
    python tools/analysis/diba_stats.py CONFIG CHECKPOINT [--batch 256]
        [--out stats.json] [--cfg-options ...]
"""
import argparse
import json
import types

import torch
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS

from mmdidb.apis.inspection import find_didb_vit, load_model
from mmdidb.models.layers.diba import add_self_term
from mmdidb.models.layers.similarity import merge_heads, split_heads


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='omit for the initialised model')
    parser.add_argument('--batch', type=int, default=256)
    parser.add_argument('--out', default=None, help='write the JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def _recording_aggregate(record):
    """DIBA.aggregate with V split into one copy per term (plain DIBA)."""

    def aggregate(self, attn, v, hw_shape=None, v_hw_shape=None,
                  regions=None):
        # find_didb_vit gives DIDBViT, whose DIBA has no reduced keys;
        # deploy mode has no gradients to split (checked in collect)
        assert v.shape[1] == attn.shape[-2] and not self.deploy
        reference = type(self).aggregate(self, attn.detach(), v.detach(),
                                         hw_shape, v_hw_shape, regions)
        copies = {name: v.clone() for name in ('av', 'self', 'd')}
        for copy in copies.values():
            copy.retain_grad()
        av = attn @ split_heads(copies['av'], self.num_heads)
        row_sums = attn.sum(dim=-1, keepdim=True)
        terms = dict(av=merge_heads(av))
        if self.diba and self.self_term != 'off':
            own = split_heads(copies['self'], self.num_heads)
            terms['self'] = merge_heads(
                add_self_term(av, row_sums, own, self.self_term) - av)
        if self.local_difference is not None:
            terms['d'] = self.local_difference(copies['d'], hw_shape, regions)
        out = sum(terms.values())
        if not torch.allclose(out, reference, atol=1e-4):
            raise RuntimeError('diba_stats: the recorded terms do not add up '
                               'to DIBA.aggregate; update this tool')
        record.update(copies=copies, terms=terms, row_sums=row_sums.detach(),
                      attn=attn.detach())
        return out

    return aggregate


def _summary(t):
    t = t.flatten().float()
    return dict(mean=t.mean().item(), std=t.std().item(),
                min=t.min().item(), max=t.max().item())


def collect(model, data) -> list:
    """Statistics per layer for one preprocessed batch ``data``."""
    backbone = find_didb_vit(model)
    if any(getattr(m, 'deploy', False) for m in backbone.modules()):
        raise ValueError(
            'diba_stats needs the training graph (gradients per term): give '
            'a training checkpoint, not a deploy checkpoint written by '
            'tools/deploy/convert.py')
    records = []
    for layer in backbone.layers:
        record = {}
        layer.attn.aggregate = types.MethodType(_recording_aggregate(record),
                                                layer.attn)
        records.append(record)
    try:
        model.zero_grad()
        losses = model.loss(data['inputs'], data['data_samples'])
        sum(v for k, v in losses.items() if 'loss' in k).backward()
    finally:
        for layer in backbone.layers:
            del layer.attn.aggregate
    extra = backbone.num_extra_tokens
    stats = []
    for i, (layer, record) in enumerate(zip(backbone.layers, records)):
        attn = layer.attn
        row = dict(layer=i)
        if attn.attn_binarizer is not None:
            alpha = attn.attn_binarizer.alpha.detach()
            alpha_k = record['row_sums'][..., 0]  # (B, heads, N)
            kept = alpha_k / alpha.clamp(min=1e-6).view(1, -1, 1)
            row['heads'] = [
                dict(alpha=alpha[h].item(), k=_summary(kept[:, h]),
                     alpha_k=_summary(alpha_k[:, h]),
                     rows_above_1=(alpha_k[:, h] > 1).float().mean().item(),
                     self_weight_min=(1 - alpha_k[:, h]).min().item())
                for h in range(alpha.numel())
            ]
        row['term_norm'] = {
            name: term[:, extra:].norm(dim=-1).mean().item()
            for name, term in record['terms'].items()
        }
        row['grad_norm_into_v'] = {
            name: (copy.grad.norm().item() if copy.grad is not None else 0.0)
            for name, copy in record['copies'].items()
            if name == 'av' or name in record['terms']
        }
        binarizer = getattr(attn.proj, 'input_binarizer', None)
        if binarizer is not None and 'self' in record['terms']:
            own = record['copies']['self'].detach()[:, extra:]
            out = sum(t.detach() for t in record['terms'].values())
            without = out - record['terms']['self'].detach()
            beta = binarizer.beta.detach()

            def agreement(x):
                return ((x[:, extra:] + beta >= 0) == (own >= 0)).float() \
                    .mean().item()

            row['own_sign_agreement'] = dict(with_self=agreement(out),
                                             without_self=agreement(without))
        if attn.local_difference is not None:
            scale = attn.local_difference.scale.detach()
            row['d_scale'] = dict(mean_abs=scale.abs().mean().item(),
                                  max_abs=scale.abs().max().item())
        fusion = getattr(attn.similarity, 'fusion_weight', None)
        if fusion is not None:
            row['hfsc_fusion_weight'] = fusion().item()
            row['hfsc_param'] = attn.similarity.alpha.item()
        stats.append(row)
    return stats


def markdown(stats) -> str:
    lines = [
        '| layer | head | alpha | k mean (min-max) | alpha·k mean ± std '
        '(max) | rows with alpha·k > 1 | min self weight 1-alpha·k |',
        '|---|---|---|---|---|---|---|'
    ]
    for row in stats:
        for h, head in enumerate(row.get('heads', [])):
            k, ak = head['k'], head['alpha_k']
            lines.append(
                f'| {row["layer"]} | {h} | {head["alpha"]:.4f} | '
                f'{k["mean"]:.1f} ({k["min"]:.0f}-{k["max"]:.0f}) | '
                f'{ak["mean"]:.3f} ± {ak["std"]:.3f} ({ak["max"]:.3f}) | '
                f'{100 * head["rows_above_1"]:.1f} % | '
                f'{head["self_weight_min"]:.3f} |')
    lines += [
        '', '| layer | mean token norm A·V / self / D | grad norm into V '
        'via A·V / self / D | D scale mean abs (max) | HFSC a |',
        '|---|---|---|---|---|'
    ]

    def triple(d, fmt):
        return ' / '.join(fmt.format(d[k]) if k in d else '-'
                          for k in ('av', 'self', 'd'))

    for row in stats:
        d_scale = row.get('d_scale')
        d_text = (f'{d_scale["mean_abs"]:.4f} ({d_scale["max_abs"]:.4f})'
                  if d_scale else '-')
        fusion = row.get('hfsc_fusion_weight')
        lines.append(
            f'| {row["layer"]} | {triple(row["term_norm"], "{:.2f}")} | '
            f'{triple(row["grad_norm_into_v"], "{:.2e}")} | {d_text} | '
            f'{"-" if fusion is None else f"{fusion:.3f}"} |')
    agreement = [row for row in stats if 'own_sign_agreement' in row]
    if agreement:
        lines += [
            '', '| layer | sign(proj input) = sign(own value): DIBA output '
            '| the same without the self term |', '|---|---|---|'
        ]
        for row in agreement:
            a = row['own_sign_agreement']
            lines.append(f'| {row["layer"]} | {100 * a["with_self"]:.1f} % | '
                         f'{100 * a["without_self"]:.1f} % |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    model, cfg = load_model(args.config, args.checkpoint, args.cfg_options)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    samples = [dataset[i] for i in range(min(args.batch, len(dataset)))]
    data = model.data_preprocessor(pseudo_collate(samples), False)
    stats = collect(model, data)
    print(markdown(stats))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(stats, f, indent=1)
    return stats


if __name__ == '__main__':
    main()
