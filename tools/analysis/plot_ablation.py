"""Plot the ablation table: top-1 per variant, mean ± std over seeds.

Reads the results file of ``tools/benchmark/ablation_fashion_mnist.py`` (the
recorded numbers, nothing is trained) and draws one point per variant with
its sample std as error bar (none for a single seed) and every seed as a dot.

Usage:
    python tools/analysis/plot_ablation.py [--results FILE] [--grid 7]
        [--epochs 4] [--out docs/images/ablation_grid7.png]
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import statistics
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

# The frame the benchmark tools share (tools/benchmark/common.py: here the
# ablation's variants), loaded from its file: Python puts only this script's
# own folder on the import path.
_SPEC = importlib.util.spec_from_file_location(
    'common', Path(__file__).resolve().parents[1] / 'benchmark' / 'common.py')
common = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(common)

REPO = str(common.REPO)


def variants():
    """name -> label, in the benchmark's order."""
    return {name: variant[0]
            for name, variant in common.ABLATION_VARIANTS.items()}


def aggregate(results, grid, epochs):
    """[(label, [top-1 per seed])] in the benchmark's variant order."""
    rows = []
    for name, label in variants().items():
        accs = [r['top1'] for r in sorted(results, key=lambda r: r['seed'])
                if r['variant'] == name and r['grid'] == grid
                and r['epochs'] == epochs]
        if accs:
            rows.append((label, accs))
    return rows


def plot(rows, path, title):
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    for y, (label, accs) in enumerate(rows):
        mean = statistics.mean(accs)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        ax.errorbar(mean, y, xerr=std if len(accs) > 1 else None, fmt='o',
                    color='C0', capsize=4)
        ax.plot(accs, [y] * len(accs), '.', color='C1', alpha=0.8)
        ax.annotate(f'{mean:.2f} (n={len(accs)})', (mean, y),
                    textcoords='offset points', xytext=(0, 6), ha='center',
                    fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel('top-1 (%) on the Fashion-MNIST test split')
    ax.set_title(title, fontsize=9)
    ax.grid(axis='x', alpha=0.3)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--results',
                        default=osp.join(REPO, 'docs/ablation_results.json'))
    parser.add_argument('--grid', type=int, default=7)
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--out', default=None, help='default: '
                        'docs/images/ablation_grid{GRID}.png')
    args = parser.parse_args(argv)
    with open(args.results) as f:
        rows = aggregate(json.load(f), args.grid, args.epochs)
    if not rows:
        raise ValueError(f'{args.results}: no runs with grid={args.grid} and '
                         f'epochs={args.epochs}')
    out = args.out or osp.join(REPO, 'docs', 'images',
                               f'ablation_grid{args.grid}.png')
    plot(rows, out, f'DIDB-ViT mini, {args.grid}x{args.grid} token grid, '
         f'{args.epochs} epochs: mean, sample std (bars), seeds (dots)')
    print(out)
    return out


if __name__ == '__main__':
    main()
