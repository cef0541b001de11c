"""Seeded ablation of DIDB-ViT's modules on Fashion-MNIST, on a finer grid.

Every variant is the quick-start config (``vit-mini_fashion-mnist.py``)
plus ``--cfg-options`` (the FP row uses the FP ViT config), trained with the
same budget at the token grid ``--grid`` (patch size ``28 // grid``) for each
of ``--seeds``. Each finished (variant, seed) is appended to a JSON results
file at once, so a matrix can be run over several sessions or machines and
aggregated: runs already in the file are skipped. The mean ± std table
(sample std over seeds) goes to ``docs/benchmarks.md``.

Usage:
    python tools/benchmark/ablation_fashion_mnist.py --grid 7 --seeds 0 1 2 \\
        --variants full no_diba naive [--epochs 4] [--results FILE]
    python tools/benchmark/ablation_fashion_mnist.py --table-only
    python tools/benchmark/ablation_fashion_mnist.py --import full 0 WORK_DIR
    python tools/benchmark/ablation_fashion_mnist.py --list

The plot of the table: ``tools/analysis/plot_ablation.py``.
"""
import argparse
import contextlib
import datetime
import fcntl
import json
import os
import os.path as osp
import statistics
import sys

import common

REPO = str(common.REPO)
#: The quick-start config, which every variant but the FP one trains.
BASE = common.ABLATION_BASE
#: name -> (label, config, cfg-options), the table's order.
VARIANTS = common.ABLATION_VARIANTS
DEFAULT_RESULTS = osp.join(REPO, 'docs', 'ablation_results.json')


def section_title(grid):
    return (f'## Ablation on the {grid}x{grid} token grid '
            '(tools/benchmark/ablation_fashion_mnist.py)')


def run_options(variant, grid, seed, epochs):
    """The --cfg-options of one run (grid, seed and epochs included)."""
    options = dict(VARIANTS[variant][2])
    options['model.backbone.patch_size'] = 28 // grid
    options['randomness.seed'] = seed
    if epochs is not None:
        options['train_cfg.max_epochs'] = epochs
        # validation does not change training: only the last one is read
        options['train_cfg.val_interval'] = epochs
    return options


def load_results(path):
    if not osp.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def save_results(path, results):
    with open(path, 'w') as f:
        json.dump(results, f, indent=1)
        f.write('\n')


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on ``path``'s lock file: parallel runs of
    this script append to one results file without losing a run."""
    with open(path + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def find(results, variant, grid, seed, epochs):
    for r in results:
        if (r['variant'], r['grid'], r['seed'], r['epochs']) == \
                (variant, grid, seed, epochs):
            return r
    return None


def data_options(data_prefix):
    """The --cfg-options that read Fashion-MNIST from ``data_prefix``."""
    if data_prefix is None:
        return {}
    return {f'{loader}.dataset.data_prefix': data_prefix
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')}


def machine_name():
    """The machine of this run: the CPU's line and, where CUDA is used (the
    runner puts the model on the GPU), the GPU's."""
    import torch
    name = common.machine()
    if torch.cuda.is_available():
        name += f'; {common.machine("cuda")}'
    return name


def train(variant, grid, seed, epochs, work_dir, data_prefix=None):
    """Train one (variant, seed); return top-1, seconds, epochs, params."""
    from mmengine.runner import Runner

    import mmdidb  # noqa: F401  (applies mmdidb.compat first)
    from mmdidb.apis import load_config
    from mmdidb.engine import MetricsRecorderHook
    config = VARIANTS[variant][1]
    cfg = load_config(osp.join(REPO, config))
    cfg.merge_from_dict(run_options(variant, grid, seed, epochs))
    cfg.merge_from_dict(data_options(data_prefix))
    # the schedule's cosine length follows the epoch count
    for sched in cfg.param_scheduler:
        if sched.get('type') == 'CosineAnnealingLR':
            sched.update(T_max=cfg.train_cfg.max_epochs,
                         end=cfg.train_cfg.max_epochs)
    cfg.work_dir = work_dir
    runner = Runner.from_cfg(cfg)
    recorder = MetricsRecorderHook()
    runner.register_hook(recorder)
    runner.train()
    params = sum(p.numel() for p in runner.model.parameters())
    return (recorder.last_metrics['accuracy/top1'], recorder.train_seconds,
            cfg.train_cfg.max_epochs, params)


def last_top1(work_dir):
    """Top-1 of the last validation in a finished work dir's scalars."""
    top1 = None
    for root, _, files in os.walk(work_dir):
        if 'scalars.json' in files:
            with open(osp.join(root, 'scalars.json')) as f:
                for line in f:
                    row = json.loads(line)
                    if 'accuracy/top1' in row:
                        top1 = row['accuracy/top1']
    if top1 is None:
        raise ValueError(f'--import: no accuracy/top1 in {work_dir}')
    return top1


def table(results, grid, epochs):
    rows = []
    header = ('| variant | `--cfg-options` | seeds | top-1 mean ± std (%) | '
              'per seed | train time per run (s) |\n|---|---|---|---|---|---|')
    for name, (label, config, options) in VARIANTS.items():
        runs = sorted((r for r in results if r['variant'] == name
                       and r['grid'] == grid and r['epochs'] == epochs),
                      key=lambda r: r['seed'])
        if not runs:
            continue
        accs = [r['top1'] for r in runs]
        std = statistics.stdev(accs) if len(accs) > 1 else float('nan')
        opts = ' '.join(f'{k}={v}' for k, v in options.items())
        if config != BASE:
            opts = f'config `{config}` {opts}'.strip()
        timed = [r['seconds'] for r in runs if r.get('seconds') is not None]
        seconds = f'{statistics.mean(timed):.0f}' if timed else '-'
        std_text = f'{std:.2f}' if len(accs) > 1 else 'n/a'
        rows.append(
            f'| {label} | {opts or "(none)"} | '
            f'{",".join(str(r["seed"]) for r in runs)} | '
            f'{statistics.mean(accs):.2f} ± {std_text} | '
            f'{" / ".join(f"{a:.2f}" for a in accs)} | {seconds} |')
    return header + '\n' + '\n'.join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--grid', type=int, default=7, choices=(4, 7, 14),
                        help='token grid side (patch size 28 // grid)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS)[:6],
                        help=f'any of {", ".join(VARIANTS)}')
    parser.add_argument('--epochs', type=int, default=4,
                        help='training epochs of every run (the quick-start '
                        'budget is 4)')
    parser.add_argument('--work-dir', default='work_dirs/ablation_fmnist')
    parser.add_argument('--results', default=DEFAULT_RESULTS,
                        help='JSON file the runs are appended to')
    parser.add_argument('--output', default=str(common.BENCHMARKS))
    parser.add_argument('--data-prefix', default=None,
                        help='Fashion-MNIST folder, if not the config\'s '
                        '(e.g. a copy carried to the GPU machine)')
    parser.add_argument('--table-only', action='store_true',
                        help='only rewrite the table from the results file')
    parser.add_argument('--import', dest='import_run', nargs=3,
                        metavar=('VARIANT', 'SEED', 'WORK_DIR'),
                        help='record a run trained elsewhere (tools/train.py '
                        'with run_options) from its work dir')
    parser.add_argument('--note', default='',
                        help='free text for the section (e.g. machine load)')
    parser.add_argument('--list', action='store_true',
                        help='print the variants and their options')
    args = parser.parse_args()
    if args.list:
        for name, (label, config, options) in VARIANTS.items():
            print(f'{name:14s} {label:40s} {config} {options}')
        return
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f'--variants: unknown {sorted(unknown)}; accepted: '
                     f'{", ".join(VARIANTS)}')
    results = load_results(args.results)
    if args.import_run:
        variant, seed, work_dir = args.import_run
        if variant not in VARIANTS:
            parser.error(f'--import: unknown variant {variant!r}')
        results.append(dict(
            variant=variant, grid=args.grid, seed=int(seed),
            epochs=args.epochs, top1=last_top1(work_dir), seconds=None,
            params=None, machine=machine_name(),
            date=datetime.date.today().isoformat(),
            command='tools/train.py ' + BASE + ' --cfg-options ' + ' '.join(
                f'{k}={v}' for k, v in run_options(
                    variant, args.grid, int(seed), None).items())))
        save_results(args.results, results)
    elif not args.table_only:
        for seed in args.seeds:
            for variant in args.variants:
                if find(results, variant, args.grid, seed, args.epochs):
                    print(f'skip {variant} seed {seed}: in {args.results}')
                    continue
                work_dir = osp.join(args.work_dir,
                                    f'g{args.grid}_e{args.epochs}',
                                    f'{variant}_s{seed}')
                top1, seconds, epochs, params = train(
                    variant, args.grid, seed, args.epochs, work_dir,
                    args.data_prefix)
                with locked(args.results):
                    results = load_results(args.results)  # others may add
                    results.append(dict(
                        variant=variant, grid=args.grid, seed=seed,
                        epochs=epochs, top1=top1, seconds=seconds,
                        params=params, machine=machine_name(),
                        date=datetime.date.today().isoformat(),
                        command=' '.join(sys.argv)))
                    save_results(args.results, results)
                print(f'{variant} seed {seed}: top-1 {top1:.2f}')
    text = table(results, args.grid, args.epochs)
    print(text)
    machines = sorted({r['machine'] for r in results
                       if r['grid'] == args.grid})
    section = section_title(args.grid)
    common.write_benchmark_section(args.output, (
        f'{section}\n\n'
        'Quick-start recipe (4 layers, 64 channels, 2 heads, AdamW lr 3e-3, '
        f'batch 256, {args.epochs} epochs, flips), patch size '
        f'{28 // args.grid} on 28x28 Fashion-MNIST, top-1 on the 10k test '
        'split. Every row is the quick-start config plus the options shown, '
        f'plus `model.backbone.patch_size={28 // args.grid}` and '
        '`randomness.seed=SEED`. std is the sample std over seeds.  \n'
        f'Command: `python tools/benchmark/ablation_fashion_mnist.py --grid '
        f'{args.grid} --epochs {args.epochs} --seeds 0 1 2 --variants ...` '
        f'(results in `{osp.relpath(args.results, REPO)}`, one entry per '
        'run with its command).  \n'
        f'Machines: {"; ".join(machines)}. '
        f'{args.note}\n\n{text}\n'), section)


if __name__ == '__main__':
    main()
