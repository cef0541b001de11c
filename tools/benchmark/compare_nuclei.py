"""Train DIDB-ViT, the naive binary ViT and the FP ViT on the nuclei demo.

A real-data segmentation comparison that runs in minutes on 2 CPU cores:
the three ``*_nuclei.py`` configs (the same UPerNet, data, schedule and
seed) are trained one after the other on the tiles that
``tools/dataset_converters/prepare_nuclei.py`` cuts from the one annotated
image of the ``stardist`` package (made first if missing). It prints a table
(mIoU and the nucleus class's IoU, F1, precision and recall on the held-out
tiles, time, parameters) and writes it to ``docs/benchmarks.md`` under
"Nuclei segmentation demo".

Usage: python tools/benchmark/compare_nuclei.py [--iters N]
           [--data-root data/nuclei] [--work-dir DIR]
"""
import argparse
import datetime
import os
import os.path as osp
import platform
import subprocess
import sys
import time

from mmengine.runner import Runner

import mmdidb  # noqa: F401  (applies mmdidb.compat before mmseg loads)
from mmdidb.apis import load_config
from mmdidb.engine import MetricsRecorderHook

import common

REPO = str(common.REPO)
#: The tool that cuts the demo's tiles, run when they are missing.
PREPARE = osp.join(REPO, 'tools', 'dataset_converters', 'prepare_nuclei.py')

RUNS = (
    ('DIDB-ViT (W1A1, all DIDB modules)',
     'configs/didbvit/vit-mini_nuclei.py'),
    ('naive binary ViT (W1A1, DIDB modules off)',
     'configs/didbvit/vit-mini-naive_nuclei.py'),
    ('full-precision ViT (mmpretrain VisionTransformer)',
     'configs/didbvit/vit-mini-fp_nuclei.py'),
)
SECTION = ('## Nuclei segmentation demo '
           '(tools/benchmark/compare_nuclei.py)')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def train(config, data_root, work_root, iters=None):
    """Train one config.

    Returns:
        tuple: metrics, seconds, (parameters, backbone parameters) and the
        number of iterations.
    """
    cfg = load_config(osp.join(REPO, config))
    for loader in LOADERS:
        cfg[loader].dataset.data_root = data_root
    if iters is not None:
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = iters
        cfg.default_hooks.checkpoint.interval = iters
        # the warm-up stays within the first tenth, the cosine still ends
        # at the last iteration
        warmup, cosine = cfg.param_scheduler
        warmup.end = min(warmup.end, max(1, iters // 10))
        cosine.begin, cosine.end = warmup.end, iters
        cosine.T_max = iters - warmup.end
    cfg.work_dir = osp.join(work_root, osp.splitext(osp.basename(config))[0])
    runner = Runner.from_cfg(cfg)
    recorder = MetricsRecorderHook()
    runner.register_hook(recorder)
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    params = (sum(p.numel() for p in runner.model.parameters()),
              sum(p.numel() for p in runner.model.backbone.parameters()))
    return recorder.last_metrics, seconds, params, cfg.train_cfg.max_iters


def ensure_data(data_root):
    """Make the tiles with prepare_nuclei.py when they are not there."""
    if osp.isdir(osp.join(data_root, 'images', 'val')):
        return
    code = subprocess.run([sys.executable, PREPARE, '--out',
                           data_root]).returncode
    if code:
        sys.exit(code)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=None,
                        help='override max_iters of every config (the '
                        'cosine schedule is shortened to match)')
    parser.add_argument('--data-root', default='data/nuclei')
    parser.add_argument('--work-dir', default='work_dirs/compare_nuclei')
    parser.add_argument('--output', default=str(common.BENCHMARKS))
    args = parser.parse_args()
    ensure_data(args.data_root)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows = []
    for name, config in RUNS:
        metrics, seconds, params, iters = train(config, args.data_root,
                                                args.work_dir, args.iters)
        rows.append(
            f'| {name} | `{config}` | {iters} | {metrics["mIoU"]:.2f} | '
            f'{metrics["IoU.nucleus"]:.2f} | {metrics["Fscore.nucleus"]:.2f} '
            f'| {metrics["Precision.nucleus"]:.2f} | '
            f'{metrics["Recall.nucleus"]:.2f} | {metrics["aAcc"]:.2f} | '
            f'{seconds:.0f} | {params[1] / 1e3:.1f}k | '
            f'{params[0] / 1e3:.1f}k |')
    total = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    table = '\n'.join([
        '| model | config | iterations | mIoU | nucleus IoU | nucleus F1 | '
        'nucleus precision | nucleus recall | aAcc | train + val time (s) '
        '| backbone params | params |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|', *rows
    ])
    threads = os.environ.get('OMP_NUM_THREADS', 'unset')
    counts = {split: len(os.listdir(osp.join(args.data_root, 'images', split)))
              for split in ('train', 'val')}
    text = (
        f'{SECTION}\n\n'
        f'Command: `OMP_NUM_THREADS={threads} '
        f'{common.command_line("tools/benchmark/compare_nuclei.py")}`  \n'
        f'Machine: {common.machine()}, Python '
        f'{platform.python_version()}; {datetime.date.today().isoformat()}; '
        f'OMP_NUM_THREADS={threads}; {total / 60:.1f} min in all. Load '
        f'average {load_before:.1f} at the start and {load_after:.1f} at the '
        'end: above the core count, other processes shared the CPU and the '
        'times are inflated (the scores do not depend on it).  \n'
        'Data: 64x64 tiles of the ONE real fluorescence image (512x512, '
        '125 human-annotated nuclei) that the `stardist` package ships, cut '
        'by `tools/dataset_converters/prepare_nuclei.py`: '
        f'{counts["train"]} overlapping training tiles from its left part, '
        f'{counts["val"]} validation tiles from a separate strip on the '
        f'right. Scores are in percent on those {counts["val"]} tiles '
        '(two classes, background / nucleus); with one image this is '
        'a smoke-scale comparison, not a benchmark of nucleus '
        'segmentation.  \n'
        'Same UPerNet head, schedule (AdamW, lr 1e-3, cosine), batch 8, '
        'augmentation and seed for all three; trained from scratch. One '
        f'seed and {counts["val"]} tiles, no error bars: differences of '
        'about a point are not evidence for or against a model; the demo '
        'shows the whole pipeline working on real data.\n\n'
        f'{table}\n')
    print(table)
    common.write_benchmark_section(args.output, text, SECTION)


if __name__ == '__main__':
    main()
