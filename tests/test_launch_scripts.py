"""Launch scripts and the checkpoint checks they run before the workers."""
import os
import re
import subprocess

import mmseg
import pytest
from mmengine.config import Config

from mmdidb.utils.checkpoint_sources import (
    CheckpointUnavailableError,
    check_config_checkpoints,
    config_checkpoints,
)

from helpers import REPO_ROOT

ADE = 'configs/didbvit/deit-s_ade20k.py'
STOCK_VIT = os.path.join(
    os.path.dirname(mmseg.__file__), '.mim', 'configs', 'vit',
    'vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py')
# nothing listens on port 9 here: refused at once, as a URL is offline
UNREACHABLE = 'http://127.0.0.1:9/deit-small_pt-4xb256_in1k.pth'


def bash(args, env=None):
    env = dict(os.environ, **(env or {}))
    result = subprocess.run(['bash'] + args, cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def fake_srun(tmp_path):
    """An ``srun`` on PATH that records its arguments, one per line."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    log = tmp_path / 'srun.log'
    srun = bin_dir / 'srun'
    srun.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {log}\n')
    srun.chmod(0o755)
    env = dict(PATH=f'{bin_dir}:{os.environ["PATH"]}')
    return env, log


def test_stock_config_pretrained_path_is_named_when_missing(tmp_path,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(STOCK_VIT)
    assert config_checkpoints(cfg) == [
        ('model.pretrained', 'pretrain/deit_small_patch16_224-cd65a155.pth')]
    with pytest.raises(CheckpointUnavailableError,
                       match=r"model\.pretrained='pretrain/deit_small_patch16"
                       r"_224-cd65a155\.pth' does not exist.*--cfg-options "
                       r'model\.pretrained=/path/deit_small_patch16_224'):
        check_config_checkpoints(cfg)
    (tmp_path / 'pretrain').mkdir()
    (tmp_path / 'pretrain' / 'deit_small_patch16_224-cd65a155.pth').touch()
    check_config_checkpoints(cfg)


def test_dist_train_fails_once_before_the_workers_start():
    code, out = bash(['tools/dist_train.sh', ADE, '2', '--cfg-options',
                      f'model.backbone.init_cfg.checkpoint={UNREACHABLE}'])
    assert code == 1
    key = 'model.backbone.init_cfg.checkpoint'
    assert out.count(f"{key}='{UNREACHABLE}' cannot be fetched") == 1
    assert f'--cfg-options {key}=/path/deit-small_pt-4xb256_in1k.pth' in out
    assert 'model.backbone.init_cfg=None to start from random' in out
    # no worker was started
    assert 'torch.distributed' not in out and 'Traceback' not in out


def test_slurm_train_runs_train_py_once_per_task(fake_srun):
    env, log = fake_srun
    env.update(GPUS='16', GPUS_PER_NODE='8', CPUS_PER_TASK='4',
               SRUN_ARGS='--time=10 --quotatype=auto')
    # mmpretrain's form: WORK_DIR as the 4th argument
    code, out = bash(['tools/slurm_train.sh', 'gpu', 'didb', ADE,
                      'work_dirs/x', '--cfg-options',
                      'model.backbone.init_cfg=None', '--amp'], env)
    assert code == 0, out
    args = log.read_text().splitlines()
    assert args[:10] == [
        '-p', 'gpu', '--job-name=didb', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=4', '--kill-on-bad-exit=1',
        '--time=10', '--quotatype=auto']
    assert args[10:12] == ['python', '-u']
    assert args[12].endswith('tools/train.py')
    assert args[13:] == [ADE, '--work-dir=work_dirs/x', '--launcher=slurm',
                         '--cfg-options', 'model.backbone.init_cfg=None',
                         '--amp']
    # mmseg's form: the options straight after the config
    code, out = bash(['tools/slurm_train.sh', 'gpu', 'didb', ADE,
                      '--cfg-options', 'model.backbone.init_cfg=None'], env)
    assert code == 0, out
    assert log.read_text().splitlines()[13:] == [
        ADE, '--launcher=slurm', '--cfg-options',
        'model.backbone.init_cfg=None']


def test_slurm_scripts_refuse_missing_checkpoints_before_srun(fake_srun,
                                                             tmp_path):
    env, log = fake_srun
    code, out = bash(['tools/slurm_train.sh', 'gpu', 'didb', ADE, '--cfg-options',
                      f'model.backbone.init_cfg.checkpoint={tmp_path}/no.pth'],
                     env)
    assert code == 1 and re.search(
        r"model\.backbone\.init_cfg\.checkpoint='.*/no\.pth' does not exist",
        out)
    code, out = bash(['tools/slurm_test.sh', 'gpu', 'didb', ADE,
                      str(tmp_path / 'iter_1.pth')], env)
    assert code == 1 and 'iter_1.pth does not exist' in out
    assert not log.exists()
    (tmp_path / 'iter_1.pth').touch()
    code, out = bash(['tools/slurm_test.sh', 'gpu', 'didb', ADE,
                      str(tmp_path / 'iter_1.pth'), '--show-dir', 'show'], env)
    assert code == 0, out
    args = log.read_text().splitlines()
    assert args[:2] == ['-p', 'gpu'] and args[10].endswith('tools/test.py')
    assert args[11:] == [ADE, str(tmp_path / 'iter_1.pth'), '--launcher=slurm',
                         '--show-dir', 'show']
