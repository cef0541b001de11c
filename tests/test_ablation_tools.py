"""The ablation benchmark's bookkeeping and its plot (nothing is trained)."""
import json
import os
import os.path as osp
import subprocess

from PIL import Image

from helpers import load_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


RESULTS = [
    dict(variant='full', grid=7, seed=0, epochs=4, top1=82.0, seconds=10.0),
    dict(variant='full', grid=7, seed=1, epochs=4, top1=84.0, seconds=20.0),
    dict(variant='naive', grid=7, seed=0, epochs=4, top1=80.5, seconds=9.0),
    # other grid / budget: not in the grid-7, 4-epoch table
    dict(variant='naive', grid=4, seed=0, epochs=4, top1=10.0, seconds=1.0),
    dict(variant='fp', grid=7, seed=0, epochs=2, top1=10.0, seconds=1.0),
]


def test_table_has_mean_and_sample_std_per_variant():
    bench = load_tool('tools/benchmark/ablation_fashion_mnist.py')
    rows = bench.table(RESULTS, 7, 4).splitlines()[2:]
    assert len(rows) == 2
    # the benchmark's order: the naive row before the paper-formula family
    assert rows[0].startswith('| naive binary | model.backbone.diba=False ')
    assert '| 0 | 80.50 ± n/a | 80.50 | 9 |' in rows[0]
    assert ('| paper self term: full DIDB | '
            'model.backbone.diba_self_term=paper | 0,1 | 83.00 ± 1.41 | '
            '82.00 / 84.00 | 15 |') == rows[1]


def test_run_options_set_grid_seed_and_epochs():
    bench = load_tool('tools/benchmark/ablation_fashion_mnist.py')
    options = bench.run_options('no_diba', 7, 2, 3)
    assert options == {'model.backbone.diba': False,
                       'model.backbone.patch_size': 4,
                       'randomness.seed': 2, 'train_cfg.max_epochs': 3,
                       'train_cfg.val_interval': 3}
    assert bench.find(RESULTS, 'full', 7, 1, 4)['top1'] == 84.0
    assert bench.find(RESULTS, 'full', 7, 2, 4) is None


def test_each_ablation_differs_from_its_full_model_in_one_module():
    """The family's rows are the full model minus one switch, on both DIBA
    formulas; a row that also changed the self term would measure two
    things at once (the rows before choice 22 did, hence the pins)."""
    bench = load_tool('tools/benchmark/ablation_fashion_mnist.py')
    options = {name: spec[2] for name, spec in bench.VARIANTS.items()}
    assert list(bench.VARIANTS)[:6] == [
        'd_only', 'no_diba', 'd_only_no_hfsc', 'd_only_no_irprelu', 'naive',
        'fp']
    for full, prefix in (('d_only', 'd_only_'), ('full', '')):
        for module in ('hfsc', 'irprelu'):
            assert options[f'{prefix}no_{module}'] == {
                **options[full], f'model.backbone.{module}': False}
    assert options['d_only'] == {'model.backbone.diba_self_term': 'off'}
    assert options['full'] == {'model.backbone.diba_self_term': 'paper'}
    assert options['naive'] == {'model.backbone.diba': False,
                                'model.backbone.hfsc': False,
                                'model.backbone.irprelu': False}


def test_plot_draws_the_recorded_numbers(tmp_path):
    plot = load_tool('tools/analysis/plot_ablation.py')
    assert plot.aggregate(RESULTS, 7, 4) == [
        ('naive binary', [80.5]),
        ('paper self term: full DIDB', [82.0, 84.0])]
    results = tmp_path / 'results.json'
    results.write_text(json.dumps(RESULTS))
    out = plot.main(['--results', str(results), '--out',
                     str(tmp_path / 'plot.png')])
    with Image.open(out) as png:
        assert png.format == 'PNG'


def test_data_prefix_reaches_every_loader():
    bench = load_tool('tools/benchmark/ablation_fashion_mnist.py')
    assert bench.data_options(None) == {}
    assert bench.data_options('data/fm') == {
        'train_dataloader.dataset.data_prefix': 'data/fm',
        'val_dataloader.dataset.data_prefix': 'data/fm',
        'test_dataloader.dataset.data_prefix': 'data/fm'}


def _grid14(tmp_path, **env):
    return subprocess.run(
        ['bash', 'tools/gpu_ablation_grid14.sh', str(tmp_path / 'out')],
        cwd=REPO, capture_output=True, text=True,
        env={**os.environ, **env}, timeout=120)


def test_grid14_script_refuses_without_cuda_or_data(tmp_path):
    """The GPU script stops at once, saying why, where it cannot measure
    (its runs themselves were smoke-tested on the CPU with GRID=4)."""
    import torch
    if not torch.cuda.is_available():
        result = _grid14(tmp_path)
        assert result.returncode == 2
        assert 'no CUDA device' in result.stdout
    result = _grid14(tmp_path, REQUIRE_CUDA='0',
                     DATA=str(tmp_path / 'nowhere'))
    assert result.returncode == 2
    assert f'DATA={tmp_path / "nowhere"}' in result.stdout
