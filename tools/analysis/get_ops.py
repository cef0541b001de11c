"""Parameters, FLOPs, BOPs and OPs of a model, per layer type.

Counted analytically from the module shapes seen by forward hooks during one
forward pass of a dummy input (batch 1), so the numbers are per image:

- **FLOPs**: multiply-accumulates of the full-precision products (the
  convention of the DeiT, Bi-Real and ReActNet papers, where DeiT-S is
  "4.6 GFLOPs"): patch-embedding convolution, FP linear layers (head
  included), FP attention products ``Q·Kᵀ`` and ``A·V``.
- **BOPs**: multiply-accumulates of the binary products: W1A1 linear layers
  (``M·K·N`` for ``M`` tokens, ``K`` inputs, ``N`` outputs; with HFSC the Q
  and K projections run on both Haar bands), the binary ``Q·Kᵀ`` (one per
  band) and ``A·V``, and DIBA's θ×θ depthwise convolution of ±1 values.
- **OPs** = FLOPs + BOPs / 64 (Bi-Real Net / ReActNet).

Element-wise work (norms, softmax, activations, the scale multiplications
after each binary product, residuals, the Haar split) is not counted, as in
those papers and fvcore. A product with only one binary operand (W1A32 or
W32A1 layers) counts as FLOPs.

Usage::

    python tools/analysis/get_ops.py CONFIG [--shape H W]
    python tools/analysis/get_ops.py --model deit-small [--variant didb fp]

``--model`` builds the paper's ImageNet classifiers (DIDB-ViT, the naive
binary ViT, or mmpretrain's FP DeiT of the same size; 1000 classes, 224x224)
without a config.
"""
import argparse
import copy
import importlib.util
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from mmengine.config import DictAction
from torch import nn

import mmdidb  # noqa: F401  (applies mmdidb.compat, registers the modules)
from mmdidb.models.layers import (
    DIBA,
    HFSC,
    BinaryLinear,
    DotProductSimilarity,
    LocalDifference,
)

# The frame the benchmark tools share (tools/benchmark/common.py: here the
# paper's models by name), loaded from its file: Python puts only this
# script's own folder on the import path.
_SPEC = importlib.util.spec_from_file_location(
    'common', Path(__file__).resolve().parents[1] / 'benchmark' / 'common.py')
common = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(common)

#: Rows of the table, in print order.
ROWS = ('patch embedding (conv)', 'binary linear', 'FP linear',
        'binary Q·Kᵀ', 'binary A·V', 'FP attention (Q·Kᵀ + A·V)',
        'binary θ×θ conv', 'FP θ×θ conv', 'head (FP linear)',
        'other conv (neck, decode heads)',
        'other params')
BOP_SCALE = 64


def new_counts() -> 'OrderedDict[str, dict]':
    return OrderedDict(
        (row, dict(params=0, flops=0, bops=0)) for row in ROWS)


def _own_weights(module: nn.Module) -> int:
    """Elements of the module's own ``weight`` and ``bias``."""
    return sum(p.numel() for name, p in module.named_parameters(recurse=False)
               if name in ('weight', 'bias'))


class OpsCounter:
    """Forward hooks that add each product's multiply-accumulates to a row.

    Args:
        model (nn.Module): The model; hooks go on its submodules.
    """

    def __init__(self, model: nn.Module):
        from mmpretrain.models.utils.attention import MultiheadAttention, WindowMSA
        self.model = model
        self.counts = new_counts()
        self.counted_params = set()
        self.binary_weights = 0
        self.handles = []
        head = getattr(model, 'head', None)
        self.head_modules = set(head.modules()) if head is not None else set()
        self.patch_embeds = {
            module for name, module in model.named_modules()
            if 'patch_embed' in name
        }
        # DIBA's θ×θ conv sees ±1 values only with binary activations
        self.binary_values = {
            id(m.local_difference): m.binary_acts
            for m in model.modules()
            if isinstance(m, DIBA) and m.local_difference is not None
        }
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d, HFSC,
                                   DotProductSimilarity, LocalDifference,
                                   MultiheadAttention, WindowMSA)):
                self.handles.append(module.register_forward_hook(self._hook))
        self._mha = MultiheadAttention
        self._window_msa = WindowMSA

    def _add(self, row: str, module: nn.Module, flops: int = 0,
             bops: int = 0, params: bool = True) -> None:
        entry = self.counts[row]
        entry['flops'] += int(flops)
        entry['bops'] += int(bops)
        if params and id(module) not in self.counted_params:
            self.counted_params.add(id(module))
            entry['params'] += _own_weights(module)
            if bops:  # its weight is 1-bit, its bias full precision
                self.binary_weights += module.weight.numel()

    def _hook(self, module, args, output):
        x = args[0]
        if isinstance(module, BinaryLinear):
            macs = x.numel() // module.in_features * module.out_features \
                * module.in_features
            if module.binary_weights and module.binary_acts:
                self._add('binary linear', module, bops=macs)
            else:
                self._add('FP linear', module, flops=macs)
        elif isinstance(module, nn.Linear):
            macs = x.numel() // module.in_features * module.out_features \
                * module.in_features
            row = 'head (FP linear)' if module in self.head_modules \
                else 'FP linear'
            self._add(row, module, flops=macs)
        elif isinstance(module, nn.Conv2d):
            macs = output.numel() * module.in_channels // module.groups \
                * module.kernel_size[0] * module.kernel_size[1]
            row = 'patch embedding (conv)' if module in self.patch_embeds \
                else 'other conv (neck, decode heads)'
            self._add(row, module, flops=macs)
        elif isinstance(module, (HFSC, DotProductSimilarity)):
            # x: (B, N, C) queries' input, output (B, heads, N, M): one
            # N x M x C product per band for Q·Kᵀ, and DIBA's A·V has the
            # same size (M keys = M values; windows and spatial reduction
            # included)
            batch, _, channels = x.shape
            tokens, keys = output.shape[-2:]
            bands = 2 if isinstance(module, HFSC) else 1
            binarizers = module.low if bands == 2 else module.binarizers
            macs = batch * tokens * keys * channels
            if binarizers.binary_acts:
                self._add('binary Q·Kᵀ', module, bops=bands * macs,
                          params=False)
                self._add('binary A·V', module, bops=macs, params=False)
            else:
                self._add('FP attention (Q·Kᵀ + A·V)', module,
                          flops=(bands + 1) * macs, params=False)
        elif isinstance(module, LocalDifference):
            batch, tokens, channels = x.shape
            grid = tokens - module.num_extra_tokens
            macs = batch * channels * grid * module.theta**2
            if module.binary_weights and self.binary_values.get(
                    id(module), False):
                self._add('binary θ×θ conv', module, bops=macs)
            else:
                self._add('FP θ×θ conv', module, flops=macs)
        elif isinstance(module, (self._mha, self._window_msa)):
            # (B or B x windows, N, C) tokens, full-precision products
            batch, tokens, _ = x.shape
            macs = 2 * batch * tokens * tokens * module.embed_dims
            self._add('FP attention (Q·Kᵀ + A·V)', module, flops=macs,
                      params=False)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def count_ops(model: nn.Module, inputs: torch.Tensor) -> dict:
    """Count per layer type for one forward pass of ``inputs``.

    Args:
        model (nn.Module): A classifier (``mode='tensor'`` forward) or a
            backbone; it is put in eval mode.
        inputs (Tensor): The dummy batch (use batch 1 for per-image counts).

    Returns:
        dict: ``rows`` (row -> params, flops, bops, ops) and ``total``
        (params, binary_params: the 1-bit weights, flops, bops, ops, size_mb:
        weight storage at 1 bit per binary weight and 32 bits otherwise).
    """
    from mmengine.model import BaseModel
    model.eval()
    counter = OpsCounter(model)
    try:
        with torch.no_grad():
            if isinstance(model, BaseModel):
                model(inputs, mode='tensor')
            else:
                model(inputs)
    finally:
        counter.remove()
    rows = counter.counts
    total_params = sum(p.numel() for p in model.parameters())
    counted = sum(r['params'] for r in rows.values())
    rows['other params']['params'] = total_params - counted
    for entry in rows.values():
        entry['ops'] = entry['flops'] + entry['bops'] / BOP_SCALE
    binary_params = counter.binary_weights
    total = dict(
        params=total_params,
        binary_params=binary_params,
        flops=sum(r['flops'] for r in rows.values()),
        bops=sum(r['bops'] for r in rows.values()),
        # 1 bit per binary weight, 32 bits per full-precision parameter
        size_mb=(binary_params / 8 + (total_params - binary_params) * 4) / 1e6)
    total['ops'] = total['flops'] + total['bops'] / BOP_SCALE
    return dict(rows=rows, total=total)


def _m(value) -> str:
    """In millions: whole numbers from 1000 on, else 4 significant digits."""
    value /= 1e6
    return f'{value:,.0f}' if value >= 1000 else f'{value:.4g}'


def format_table(result: dict, title: str) -> str:
    """A markdown table of :func:`count_ops`'s result (millions)."""
    lines = [f'{title}', '',
             '| layer type | params (M) | FLOPs (M) | BOPs (M) | OPs (M) |',
             '|---|---:|---:|---:|---:|']
    for row, entry in result['rows'].items():
        if not any(entry[k] for k in ('params', 'flops', 'bops')):
            continue
        lines.append(f"| {row} | {_m(entry['params'])} | "
                     f"{_m(entry['flops'])} | {_m(entry['bops'])} | "
                     f"{_m(entry['ops'])} |")
    total = result['total']
    lines.append(f"| **total** | **{_m(total['params'])}** | "
                 f"**{_m(total['flops'])}** | **{_m(total['bops'])}** | "
                 f"**{_m(total['ops'])}** |")
    lines += ['', f"binary weights: {_m(total['binary_params'])} M (1 bit "
              f"each); weight storage: {total['size_mb']:.2f} MB; OPs = "
              f'FLOPs + BOPs / {BOP_SCALE}']
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Params, FLOPs, BOPs and OPs per layer type')
    parser.add_argument('config', nargs='?', help='config file')
    parser.add_argument('--model', choices=common.ARCHS,
                        help='build the paper\'s ImageNet classifier of this '
                        'arch instead of reading a config')
    parser.add_argument('--variant', nargs='+', choices=common.VARIANTS,
                        default=['didb'],
                        help='with --model: didb (DIDB-ViT), naive (naive '
                        'binary ViT), fp (mmpretrain DeiT); several give a '
                        'table each')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size (default: the backbone\'s img_size, '
                        '224 with --model)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if (args.config is None) == (args.model is None):
        parser.error('give a CONFIG or --model, not both')
    return args


def build_from_config(path: str, cfg_options=None):
    """The model of a config, its input size and its input channels."""
    from mmengine.registry import MODELS, init_default_scope

    from mmdidb.apis import load_config
    cfg = load_config(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = copy.deepcopy(cfg.model)
    # as mmengine's Runner does
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg)
    backbone = cfg.model.get('backbone', cfg.model)
    return model, backbone.get('img_size', 224), backbone.get('in_channels', 3)


def main(argv=None) -> list:
    """Print a table per model; returns the :func:`count_ops` results."""
    args = parse_args(argv)
    jobs = []
    if args.model:
        from mmpretrain.registry import MODELS
        for variant in args.variant:
            model = MODELS.build(common.classifier_cfg(args.model, variant))
            jobs.append((f'{args.model} {variant}', model, 224, 3))
    else:
        model, size, channels = build_from_config(args.config,
                                                  args.cfg_options)
        jobs.append((args.config, model, size, channels))
    results = []
    for title, model, size, channels in jobs:
        if args.shape:
            size = tuple(args.shape)
        size = (size, size) if isinstance(size, int) else tuple(size)
        result = count_ops(model, torch.zeros(1, channels, *size))
        print(format_table(result, f'### {title}, input {channels}x'
                           f'{size[0]}x{size[1]}, per image'))
        print()
        results.append(result)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
