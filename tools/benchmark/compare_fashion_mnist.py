"""Train DIDB-ViT, the naive binary ViT and the FP ViT on Fashion-MNIST.

Runs the three quick-start configs one after the other with the same budget,
prints a table (top-1 on the 10k test split, training time, parameters) and
writes it to ``docs/benchmarks.md`` under "Fashion-MNIST quick start".

Usage: python tools/benchmark/compare_fashion_mnist.py [--epochs N]
"""
import argparse
import datetime
import os
import os.path as osp
import platform
import sys

from mmengine.runner import Runner

import mmdidb  # noqa: F401  (applies mmdidb.compat before mmpretrain loads)
from mmdidb.apis import load_config
from mmdidb.engine import MetricsRecorderHook

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RUNS = (
    ('DIDB-ViT (W1A1, all DIDB modules)',
     'configs/didbvit/didbvit-mini_fashion-mnist.py'),
    ('naive binary ViT (W1A1, DIDB modules off)',
     'configs/didbvit/didbvit-mini-naive_fashion-mnist.py'),
    ('full-precision ViT (mmpretrain VisionTransformer)',
     'configs/didbvit/vit-mini-fp_fashion-mnist.py'),
)
SECTION = '## Fashion-MNIST quick start (tools/benchmark/compare_fashion_mnist.py)'


def train(config, epochs, work_root):
    cfg = load_config(osp.join(REPO, config))
    if epochs is not None:
        cfg.train_cfg.max_epochs = epochs
    cfg.work_dir = osp.join(work_root,
                            osp.splitext(osp.basename(config))[0])
    runner = Runner.from_cfg(cfg)
    recorder = MetricsRecorderHook()
    runner.register_hook(recorder)
    runner.train()
    params = sum(p.numel() for p in runner.model.parameters())
    return recorder.last_metrics['accuracy/top1'], recorder.train_seconds, \
        params, cfg.train_cfg.max_epochs


def write_section(path, text):
    """Replace (or append) our section of the benchmarks file."""
    old = open(path).read() if osp.exists(path) else '# Benchmarks\n'
    start = old.find(SECTION)
    if start >= 0:
        end = old.find('\n## ', start + len(SECTION))
        old = old[:start] + (old[end + 1:] if end >= 0 else '')
    with open(path, 'w') as f:
        f.write(old.rstrip('\n') + '\n\n' + text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=None,
                        help='override max_epochs of all three configs')
    parser.add_argument('--work-dir', default='work_dirs/compare_fmnist')
    parser.add_argument('--output', default=osp.join(REPO, 'docs',
                                                     'benchmarks.md'))
    args = parser.parse_args()
    rows = []
    for name, config in RUNS:
        top1, seconds, params, epochs = train(config, args.epochs,
                                              args.work_dir)
        rows.append(f'| {name} | `{config}` | {epochs} | {top1:.2f} | '
                    f'{seconds:.0f} | {params / 1e3:.1f}k |')
    table = '\n'.join([
        '| model | config | epochs | top-1 (%) | train time (s) | params |',
        '|---|---|---|---|---|---|', *rows])
    text = (f'{SECTION}\n\n'
            f'Command: `python {" ".join(sys.argv)}`  \n'
            f'Machine: {platform.machine()}, {os.cpu_count()} CPU cores, '
            f'{platform.python_version()}; '
            f'{datetime.date.today().isoformat()}.  \n'
            'Top-1 on the 10k Fashion-MNIST test split after the same '
            'training budget (same schedule, batch, augmentation).\n\n'
            f'{table}\n')
    print(table)
    write_section(args.output, text)


if __name__ == '__main__':
    main()
