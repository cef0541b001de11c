"""Checkpoint sizes: FP32 mmpretrain DeiT vs DIDB-ViT training and deploy.

Builds the models at random initialisation (only the sizes count), writes
each checkpoint as mmengine does (``{'meta', 'state_dict'}``, no optimizer
state) into a temporary folder and prints a markdown table. The deploy
checkpoints are made as ``tools/deploy/convert.py`` makes them, with the
full-precision leftovers in fp32 and in fp16. For each, the largest logit
difference to the training graph on a random batch is printed too, so the
cost of fp16 is visible next to its size.

Usage::

    python tools/deploy/checkpoint_sizes.py [--model deit-small] [--record]

``--record`` appends the table to docs/benchmarks.md under
"## Deploy checkpoint sizes (tools/deploy/checkpoint_sizes.py)".
"""
import argparse
import copy
import datetime
import importlib.util
import os
import tempfile
from pathlib import Path

import torch

import mmdidb  # noqa: F401  (applies mmdidb.compat, registers the modules)
from mmdidb.models.deploy import deploy_checkpoint, switch_to_deploy

# The frame the benchmark tools share (tools/benchmark/common.py: here the
# paper's models by name and the result writer), loaded from its file:
# Python puts only this script's own folder on the import path.
_SPEC = importlib.util.spec_from_file_location(
    'common', Path(__file__).resolve().parents[1] / 'benchmark' / 'common.py')
common = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(common)

HEADING = '## Deploy checkpoint sizes (tools/deploy/checkpoint_sizes.py)'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', nargs='+', choices=common.ARCHS,
                        default=['deit-small'])
    parser.add_argument('--batch', type=int, default=4,
                        help='random images for the logit check')
    parser.add_argument('--record', action='store_true',
                        help='append the table to docs/benchmarks.md')
    return parser.parse_args(argv)


def saved_size(checkpoint: dict, folder: str, name: str) -> int:
    path = os.path.join(folder, name)
    torch.save(checkpoint, path)
    return os.path.getsize(path)


@torch.no_grad()
def logits(model, x):
    return model(x, mode='tensor')


def measure(arch: str, batch: int, folder: str) -> list:
    """Rows ``(what, bytes, max |logit diff| or None)`` for one arch."""
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    fp = MODELS.build(common.classifier_cfg(arch, 'fp'))
    source = 'DIDBBinaryViT in FP mode,' if arch == 'binaryvit-small' \
        else 'mmpretrain'
    rows = [(f'{source} {arch} FP32', saved_size(
        dict(meta={}, state_dict=fp.state_dict()), folder, 'fp.pth'), None)]
    del fp
    model = MODELS.build(common.classifier_cfg(arch, 'didb'))
    model.eval()
    rows.append((f'DIDB-ViT {arch}, training form (FP32 latent weights)',
                 saved_size(dict(meta={}, state_dict=model.state_dict()),
                            folder, 'train.pth'), None))
    x = torch.randn(batch, 3, 224, 224)
    reference = logits(model, x)
    deploy = copy.deepcopy(model)
    switch_to_deploy(deploy)
    for float_dtype in ('fp32', 'fp16'):
        name = f'deploy_{float_dtype}.pth'
        size = saved_size(deploy_checkpoint(deploy, float_dtype), folder,
                          name)
        fresh = MODELS.build(common.classifier_cfg(arch, 'didb'))
        fresh.eval()
        load_checkpoint(fresh, os.path.join(folder, name),
                        map_location='cpu', strict=True, logger='silent')
        diff = (logits(fresh, x) - reference).abs().max().item()
        agree = (logits(fresh, x).argmax(-1) == reference.argmax(-1)).float()
        rows.append((f'DIDB-ViT {arch}, deploy, 1-bit weights + '
                     f'{float_dtype} leftovers', size,
                     (diff, reference.abs().max().item(),
                      agree.mean().item())))
    return rows


def table(rows) -> str:
    base = rows[0][1]
    lines = ['| checkpoint | bytes | MiB | FP32 / this | max logit '
             'diff to training graph |', '|---|---:|---:|---:|---|']
    for what, size, check in rows:
        if check is None:
            note = ''
        else:
            diff, scale, agree = check
            note = (f'{diff:.2g} (logits up to {scale:.2g}; top-1 agrees on '
                    f'{agree:.0%})')
        lines.append(f'| {what} | {size:,} | {size / 2**20:.2f} | '
                     f'{base / size:.1f}x | {note} |')
    return '\n'.join(lines)


def record(text: str, path: Path) -> None:
    """Append ``text`` under this tool's heading, creating it if needed."""
    common.append_benchmark_entry(path, text, HEADING)
    print(f'appended to {path}')


def main(argv=None):
    args = parse_args(argv)
    now = datetime.datetime.now(datetime.timezone.utc)
    command = common.command_line('tools/deploy/checkpoint_sizes.py', argv)
    blocks = []
    for arch in args.model:
        with tempfile.TemporaryDirectory() as folder:
            rows = measure(arch, args.batch, folder)
        text = '\n'.join([
            f'### {arch}, {now:%Y-%m-%d} (random init, torch '
            f'{torch.__version__})', '',
            f'- command: `{command}`', '',
            table(rows), ''])
        print(text)
        blocks.append(text)
    if args.record:
        record('\n'.join(blocks), common.BENCHMARKS)


if __name__ == '__main__':
    main()
