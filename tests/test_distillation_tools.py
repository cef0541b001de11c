"""Distillation through the command-line tools: DDP, two stages, benchmark.

(``--resume`` with distillation is tested in-process in test_distillation.py.)
"""
import os
import re
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from mmdidb.compat import safe_torch_load

from helpers import REPO_ROOT, load_tool, make_fashion_mnist

CONFIG = 'configs/didbvit/vit-mini-distill_fashion-mnist.py'
TEACHER = 'configs/didbvit/vit-mini-fp_fashion-mnist.py'
TRAIN = [sys.executable, 'tools/train.py']


def tiny_options(data_root, epochs=1):
    """The quick-start config on the tiny data (as in test_tools.py)."""
    opts = [f'train_cfg.max_epochs={epochs}', 'default_hooks.logger.interval=1']
    for loader in ('train', 'val', 'test'):
        opts += [f'{loader}_dataloader.batch_size=8',
                 f'{loader}_dataloader.dataset.data_prefix={data_root}']
    return ['--cfg-options'] + opts


def run(cmd, env=None):
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=600,
                            env=dict(os.environ, PYTHONUNBUFFERED='1',
                                     **(env or {})))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def state_dict(path):
    return safe_torch_load(str(path))['state_dict']


def student_keys():
    cfg = Config.fromfile(os.path.join(REPO_ROOT, CONFIG))
    return set(MODELS.build(cfg.model).state_dict())


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_fashion_mnist(str(tmp_path_factory.mktemp('fmnist')), 16, 16)


@pytest.fixture(scope='module')
def teacher(data_root, tmp_path_factory):
    """The FP teacher, trained first (one tiny epoch; in-process: faster)."""
    cfg = Config.fromfile(os.path.join(REPO_ROOT, TEACHER))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_prefix = data_root
        cfg[key].batch_size = 8
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp_path_factory.mktemp('teacher'))
    Runner.from_cfg(cfg).train()
    return os.path.join(cfg.work_dir, 'epoch_1.pth')


def with_teacher(options, teacher, init=True):
    """Point the config's teacher and init at ``teacher``."""
    extra = [f'teacher_checkpoint={teacher}']
    return options + extra + ([f'load_from={teacher}'] if init else [])


def test_dist_train_two_processes_with_distillation(data_root, teacher,
                                                   tmp_path):
    work = tmp_path / 'dist'
    out = run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir',
               str(work)] + with_teacher(tiny_options(data_root), teacher))
    assert 'Distributed training: True' in out
    assert re.search(r'world_size: 2|GPU number: 2', out)
    kd = re.findall(r'loss_kd: ([0-9.]+)', out)
    assert kd and all(float(v) > 0 for v in kd)
    assert re.search(r'accuracy/top1: [0-9.]+', out)
    assert set(state_dict(work / 'epoch_1.pth')) == student_keys()


def test_two_stage_script_starts_stage2_from_stage1(data_root, teacher,
                                                    tmp_path):
    base = os.path.join(REPO_ROOT, CONFIG)
    stage1 = tmp_path / 'mini-stage1.py'
    stage1.write_text(f"_base_ = ['{base}']\n"
                      'model = dict(backbone=dict(binary_weights=False))\n')
    stage2 = tmp_path / 'mini-stage2.py'
    stage2.write_text(f"_base_ = ['{base}']\n"
                      "load_from = 'work_dirs/mini-stage1/epoch_3.pth'\n")
    out = run(['bash', 'tools/two_stage_train.sh', str(stage1), str(stage2)]
              + with_teacher(tiny_options(data_root), teacher),
              env=dict(WORK_ROOT=str(tmp_path / 'work')))
    ckpt = str(tmp_path / 'work' / 'mini-stage1' / 'epoch_1.pth')
    assert f'stage 2 ({stage2}) from {ckpt}' in out
    # stage 1 from the FP teacher, stage 2 from stage 1
    loads = re.findall(r'Load checkpoint from (\S+)', out)
    assert loads == [teacher, ckpt]
    assert (tmp_path / 'work' / 'mini-stage2' / 'epoch_1.pth').is_file()
    assert len(re.findall(r'teacher from ' + re.escape(teacher), out)) == 2


def test_two_stage_script_refuses_a_missing_config(tmp_path):
    with pytest.raises(AssertionError, match='nowhere.py does not exist'):
        run(['bash', 'tools/two_stage_train.sh', str(tmp_path / 'nowhere.py'),
             CONFIG])


def test_compare_benchmark_with_distill(data_root, tmp_path, monkeypatch,
                                        capsys):
    """``compare_fashion_mnist.py --with-distill --epochs 1`` on tiny data."""
    path = os.path.join(REPO_ROOT, 'tools', 'benchmark',
                        'compare_fashion_mnist.py')
    compare = load_tool('tools/benchmark/compare_fashion_mnist.py')
    load_config = compare.load_config

    def tiny_config(config):
        cfg = load_config(config)
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[key].dataset.data_prefix = data_root
            cfg[key].batch_size = 8
        return cfg

    monkeypatch.setattr(compare, 'load_config', tiny_config)
    work, output = tmp_path / 'work', tmp_path / 'benchmarks.md'
    monkeypatch.setattr(sys, 'argv', [
        path, '--epochs', '1', '--with-distill', '--work-dir', str(work),
        '--output', str(output)])
    compare.main()
    teacher = str(work / 'vit-mini-fp_fashion-mnist' / 'epoch_1.pth')
    assert f'teacher from {teacher}' in capsys.readouterr().out
    rows = [line for line in output.read_text().splitlines()
            if line.startswith('| ') and 'configs/' in line]
    assert len(rows) == 4
    assert 'vit-mini-distill_fashion-mnist.py` | 1 |' in rows[-1]
    assert (work / 'vit-mini-distill_fashion-mnist' /
            'epoch_1.pth').is_file()
