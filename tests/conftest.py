import os

import pytest
import torch
from hypothesis import settings
from mmengine.registry import DefaultScope

import mmdidb  # noqa: F401  (applies mmdidb.compat before anything else)


def _share_cores_between_workers():
    """Give each pytest-xdist worker its share of the cores.

    Without this every worker (and every tool a test starts) runs as many
    threads as there are cores, and the workers fight over them.
    """
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(threads)
        os.environ.setdefault('OMP_NUM_THREADS', str(threads))


_share_cores_between_workers()

# Property tests draw the same examples on every run and machine (a failure
# they find is reproducible, never a one-off), with no time limit per
# example (a loaded machine must not fail them).
settings.register_profile('mmdidb', derandomize=True, deadline=None,
                          database=None)
settings.load_profile('mmdidb')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _fresh_default_scope():
    """Forget the default scopes that runners of earlier tests set.

    Every Runner makes its ``default_scope`` the current one for the rest of
    the process; a segmentation test would otherwise send later mmpretrain
    builds to mmseg's registries.
    """
    yield
    DefaultScope._instance_dict.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.when == 'call':
        item.mmdidb_call_passed = report.passed


@pytest.fixture(autouse=True)
def _drop_checkpoints_of_passing_tests(request):
    """Delete the ``.pth`` files a passing test left in its ``tmp_path``.

    The config tests save a checkpoint of every model they train (up to
    hundreds of MB each, optimizer state included); pytest keeps the last
    three runs' temporary folders, so without this a few suite runs fill
    the disk. A failing test keeps its files for inspection.
    """
    tmp_path = (request.getfixturevalue('tmp_path')
                if 'tmp_path' in request.fixturenames else None)
    yield
    if tmp_path is not None and getattr(request.node, 'mmdidb_call_passed',
                                        False):
        for checkpoint in tmp_path.rglob('*.pth'):
            checkpoint.unlink()
