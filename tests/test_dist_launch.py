"""Multi-process launches: clean exits, and workers killed by a signal.

A run that succeeded must exit 0 every time (rank 0 used to abort at exit
now and then, "terminate called without an active exception", because the
gloo process group was never destroyed). A worker that dies by a signal is
named with its signal, and SIGKILL with its usual cause, memory.
"""
import os
import re
import shutil
import signal
import subprocess

import pytest

from helpers import REPO_ROOT, load_tool, make_fashion_mnist

dist_launch = load_tool('tools/dist_launch.py')
describe_failure, exit_status = (dist_launch.describe_failure,
                                 dist_launch.exit_status)

CONFIG = 'configs/didbvit/vit-mini_fashion-mnist.py'


def launch(cmd, **env):
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=600,
                            env=dict(os.environ, PYTHONUNBUFFERED='1', **env))
    return result.returncode, result.stdout + result.stderr


def test_describe_failure_names_rank_signal_and_cause():
    line = describe_failure(1, -signal.SIGKILL)
    assert line.startswith('rank 1 was killed by SIGKILL (signal 9)')
    assert 'out-of-memory' in line
    assert 'SIGABRT (signal 6)' in describe_failure(0, -6)
    assert 'after another one failed' in describe_failure(0, -15)
    assert describe_failure(3, 2) == 'rank 3 exited with status 2'
    assert exit_status(-9) == 137 and exit_status(2) == 2


def test_dist_train_reports_a_worker_killed_by_sigkill(tmp_path):
    # dist_train.sh as shipped, beside a train.py whose rank 1 is killed
    tools = tmp_path / 'tools'
    tools.mkdir()
    for name in ('dist_train.sh', 'dist_launch.py'):
        shutil.copy(os.path.join(REPO_ROOT, 'tools', name), tools / name)
    # the launcher alone: the checkpoint check before it has nothing to do
    (tools / 'misc').mkdir()
    (tools / 'misc' / 'check_checkpoints.py').write_text('')
    (tools / 'train.py').write_text(
        'import os, signal\n'
        "if os.environ['RANK'] == '1':\n"
        '    os.kill(os.getpid(), signal.SIGKILL)\n')
    rc, out = launch(['bash', str(tools / 'dist_train.sh'), 'cfg.py', '2'])
    assert rc == 128 + signal.SIGKILL, out
    assert re.search(r'rank 1 was killed by SIGKILL \(signal 9\): the usual '
                     r"cause is the kernel's out-of-memory killer", out), out


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_fashion_mnist(str(tmp_path_factory.mktemp('fmnist')), 16, 16)


def tiny_options(data_root):
    opts = ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1']
    for loader in ('train', 'val', 'test'):
        opts += [f'{loader}_dataloader.batch_size=8',
                 f'{loader}_dataloader.dataset.data_prefix={data_root}']
    return ['--cfg-options'] + opts


def dist_test(checkpoint, work, data_root):
    rc, out = launch(['bash', 'tools/dist_test.sh', CONFIG, str(checkpoint),
                      '2', '--work-dir', str(work)] + tiny_options(data_root))
    assert rc == 0, out[-4000:]
    assert 'terminate called' not in out
    assert re.search(r'Test metrics .*accuracy/top1', out)


def test_two_process_runs_exit_zero_one_after_another(data_root, tmp_path):
    """dist_train + dist_test, then two_stage_train.sh with 2 processes per
    stage + dist_test: five launches in a row, each must exit 0. No PORT is
    set: torchrun binds a free port itself, so nothing races for one."""
    work = tmp_path / 'dist'
    rc, out = launch(['bash', 'tools/dist_train.sh', CONFIG, '2',
                      '--work-dir', str(work)] + tiny_options(data_root))
    assert rc == 0, out[-4000:]
    assert 'Distributed training: True' in out
    assert re.search(r'world_size: 2|GPU number: 2', out)
    assert 'terminate called' not in out
    assert re.search(r'Final validation metrics .*accuracy/top1', out)
    assert (work / 'epoch_1.pth').is_file()
    dist_test(work / 'epoch_1.pth', tmp_path / 'test1', data_root)

    stage1 = tmp_path / 'mini-stage1.py'
    stage1.write_text(f"_base_ = ['{os.path.join(REPO_ROOT, CONFIG)}']\n"
                      'model = dict(backbone=dict(binary_weights=False))\n')
    stage2 = tmp_path / 'mini-stage2.py'
    stage2.write_text(f"_base_ = ['{os.path.join(REPO_ROOT, CONFIG)}']\n")
    rc, out = launch(['bash', 'tools/two_stage_train.sh', str(stage1),
                      str(stage2), '2'] + tiny_options(data_root),
                     WORK_ROOT=str(tmp_path / 'work'))
    assert rc == 0, out[-4000:]
    assert 'terminate called' not in out
    stage1_ckpt = tmp_path / 'work' / 'mini-stage1' / 'epoch_1.pth'
    assert f'stage 2 ({stage2}) from {stage1_ckpt}' in out
    assert len(re.findall(r'Final validation metrics', out)) == 2
    dist_test(tmp_path / 'work' / 'mini-stage2' / 'epoch_1.pth',
              tmp_path / 'test2', data_root)
