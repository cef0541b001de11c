"""Train DIDB-ViT, the naive binary ViT and the FP ViT on Fashion-MNIST.

Runs the three quick-start configs one after the other with the same budget,
prints a table (top-1 on the 10k test split, training time, parameters) and
writes it to ``docs/benchmarks.md`` under "Fashion-MNIST quick start".

With ``--with-distill`` it then trains the distilled DIDB-ViT
(``vit-mini-distill_fashion-mnist.py``: initialised from the FP ViT just
trained and distilled from it) and adds its row.

``--set backbones`` trains the small DIDBSwin and DIDBBinaryViT instead,
each with its DIDB modules on and off, and writes its own section.

Usage: python tools/benchmark/compare_fashion_mnist.py [--epochs N]
           [--with-distill] [--set {vit,backbones}]
"""
import argparse
import datetime
import os.path as osp
import platform

from mmengine.runner import Runner, find_latest_checkpoint

import mmdidb  # noqa: F401  (applies mmdidb.compat before mmpretrain loads)
from mmdidb.apis import load_config
from mmdidb.engine import MetricsRecorderHook

import common

REPO = str(common.REPO)
RUNS = (
    ('DIDB-ViT (W1A1, all DIDB modules)',
     'configs/didbvit/vit-mini_fashion-mnist.py'),
    ('naive binary ViT (W1A1, DIDB modules off)',
     'configs/didbvit/vit-mini-naive_fashion-mnist.py'),
    ('full-precision ViT (mmpretrain VisionTransformer)',
     'configs/didbvit/vit-mini-fp_fashion-mnist.py'),
)
#: Trained after RUNS with --with-distill: its teacher (and initialisation)
#: is the FP run of RUNS.
DISTILL_RUN = ('DIDB-ViT distilled (W1A1, FP ViT as init and teacher)',
               'configs/didbvit/vit-mini-distill_fashion-mnist.py')
TEACHER_CONFIG = 'configs/didbvit/vit-mini-fp_fashion-mnist.py'
SECTION = '## Fashion-MNIST quick start (tools/benchmark/compare_fashion_mnist.py)'
BACKBONE_RUNS = (
    ('DIDBSwin mini (W1A1, all DIDB modules)',
     'configs/didbvit/swin-mini_fashion-mnist.py'),
    ('naive binary Swin mini (W1A1, DIDB modules off)',
     'configs/didbvit/swin-mini-naive_fashion-mnist.py'),
    ('DIDBBinaryViT mini (W1A1, all DIDB modules)',
     'configs/didbvit/binaryvit-mini_fashion-mnist.py'),
    ('naive binary BinaryViT mini (W1A1, DIDB modules off)',
     'configs/didbvit/binaryvit-mini-naive_fashion-mnist.py'),
)
BACKBONE_SECTION = ('## Fashion-MNIST, more backbones '
                    '(tools/benchmark/compare_fashion_mnist.py --set '
                    'backbones)')


def work_dir_of(config, work_root):
    return osp.join(work_root, osp.splitext(osp.basename(config))[0])


def train(config, epochs, work_root, teacher_checkpoint=None):
    cfg = load_config(osp.join(REPO, config))
    if epochs is not None:
        cfg.train_cfg.max_epochs = epochs
    cfg.work_dir = work_dir_of(config, work_root)
    if teacher_checkpoint is not None:
        # the checkpoint of the FP run above, whatever its epoch count
        cfg.load_from = teacher_checkpoint
        cfg.teacher_checkpoint = teacher_checkpoint
    runner = Runner.from_cfg(cfg)
    recorder = MetricsRecorderHook()
    runner.register_hook(recorder)
    runner.train()
    params = sum(p.numel() for p in runner.model.parameters())
    return recorder.last_metrics['accuracy/top1'], recorder.train_seconds, \
        params, cfg.train_cfg.max_epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=None,
                        help='override max_epochs of every config')
    parser.add_argument('--with-distill', action='store_true',
                        help='also train the distilled DIDB-ViT, with the '
                        'FP ViT trained here as its init and teacher')
    parser.add_argument('--set', choices=('vit', 'backbones'), default='vit',
                        help='vit: DIDB-ViT vs naive vs FP (the quick-start '
                        'comparison); backbones: DIDBSwin and DIDBBinaryViT, '
                        'DIDB modules on and off')
    parser.add_argument('--work-dir', default='work_dirs/compare_fmnist')
    parser.add_argument('--output', default=str(common.BENCHMARKS))
    args = parser.parse_args()
    section = SECTION if args.set == 'vit' else BACKBONE_SECTION
    runs = [(name, config, None)
            for name, config in (RUNS if args.set == 'vit' else BACKBONE_RUNS)]
    if args.with_distill and args.set == 'vit':
        runs.append(DISTILL_RUN + (TEACHER_CONFIG, ))
    rows = []
    for name, config, teacher_config in runs:
        teacher_checkpoint = None if teacher_config is None else \
            find_latest_checkpoint(work_dir_of(teacher_config, args.work_dir))
        top1, seconds, params, epochs = train(config, args.epochs,
                                              args.work_dir,
                                              teacher_checkpoint)
        rows.append(f'| {name} | `{config}` | {epochs} | {top1:.2f} | '
                    f'{seconds:.0f} | {params / 1e3:.1f}k |')
    table = '\n'.join([
        '| model | config | epochs | top-1 (%) | train time (s) | params |',
        '|---|---|---|---|---|---|', *rows])
    command = common.command_line('tools/benchmark/compare_fashion_mnist.py')
    text = (f'{section}\n\n'
            f'Command: `{command}`  \n'
            f'Machine: {common.machine()}, Python '
            f'{platform.python_version()}; '
            f'{datetime.date.today().isoformat()}.  \n'
            'Top-1 on the 10k Fashion-MNIST test split after the same '
            'training budget (same schedule, batch, augmentation).\n\n'
            f'{table}\n')
    print(table)
    common.write_benchmark_section(args.output, text, section)


if __name__ == '__main__':
    main()
