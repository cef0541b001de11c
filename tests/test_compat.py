"""mmdidb.compat: each fix works, is a no-op where not needed, can be off."""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mmdidb import compat

from helpers import REPO_ROOT


def run_python(code, **env):
    result = subprocess.run(
        [sys.executable, '-c', textwrap.dedent(code)], cwd=REPO_ROOT,
        env=dict(os.environ, **env), capture_output=True, text=True,
        timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_fixes_needed_here_are_applied_and_logged():
    applied = compat.applied_fixes()
    # this machine: mmcv-lite, PyPI torchvision beside CPU torch, no CUDA
    assert set(applied) == set(compat.FIXES)
    assert 'placeholder mmcv._ext' in applied['mmcv_ext']


def test_mmseg_models_import_and_pure_torch_mmcv_ops_work():
    import mmseg.models  # noqa: F401
    from mmcv.ops import point_sample
    feats = torch.arange(16.).view(1, 1, 4, 4)
    # the centre of pixel (row 1, col 2) in [0, 1] coordinates
    points = torch.tensor([[[2.5 / 4, 1.5 / 4]]])
    assert point_sample(feats, points).item() == pytest.approx(6.0)


def test_compiled_mmcv_op_raises_a_clear_error():
    from mmcv.ops import nms
    with pytest.raises(compat.MissingCompiledOpError, match='mmcv-lite'):
        nms(torch.rand(3, 4), torch.rand(3), 0.5)


def test_torchvision_imports_and_its_compiled_ops_refuse():
    import torchvision.ops
    with pytest.raises(RuntimeError):
        torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)


def test_turning_a_fix_off_brings_the_original_failure_back():
    code = '''
        import mmdidb
        from mmdidb import compat
        assert 'mmcv_ext' not in compat.applied_fixes()
        import mmseg.models
    '''
    rc, out = run_python(code, MMDIDB_COMPAT_SKIP='mmcv_ext')
    assert rc != 0 and "No module named 'mmcv._ext'" in out
    rc, out = run_python('import mmdidb, torchvision',
                         MMDIDB_COMPAT_SKIP='all')
    assert rc != 0 and 'torchvision::nms does not exist' in out
    rc, out = run_python('import mmdidb', MMDIDB_COMPAT_SKIP='mmcv_ext,nope')
    assert rc != 0 and "unknown fixes ['nope']" in out


def test_fixes_are_no_ops_where_the_real_thing_works():
    code = '''
        import importlib.machinery, importlib.util, sys, types
        import torch
        # the module alone, so importing the package applies nothing first
        spec = importlib.util.spec_from_file_location(
            'compat_alone', 'mmdidb/compat.py')
        compat = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compat)
        real = types.ModuleType('mmcv._ext')
        real.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)
        sys.modules['mmcv._ext'] = real  # as if compiled ops were installed
        compat._fix_mmcv_ext()
        compat._torchvision_c_loads = lambda: True
        compat._fix_torchvision_ops()
        torch.cuda.is_available = lambda: True
        compat._fix_cpu_distributed()
        assert compat.applied_fixes() == {}, compat.applied_fixes()
        assert sys.modules['mmcv._ext'] is real
        print('NO-OPS OK')
    '''
    rc, out = run_python(code)
    assert rc == 0 and 'NO-OPS OK' in out, out


def test_apply_all_is_idempotent():
    before = dict(compat.applied_fixes())
    assert compat.apply_all() == before


def test_mmengine_checkpoint_globals_load_with_weights_only(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.runner import CheckpointLoader
    buffer = HistoryBuffer()
    buffer.update(1.5)
    ckpt = {'state_dict': {'w': torch.ones(2)},
            'message_hub': {'log_scalars': {'loss': buffer},
                            'runtime_info': {'np': np.float64(2.5),
                                             'arr': np.arange(3)}}}
    path = tmp_path / 'ok.pth'
    torch.save(ckpt, path)
    loaded = CheckpointLoader.load_checkpoint(str(path))
    assert loaded['message_hub']['log_scalars']['loss'].mean() == 1.5
    assert loaded['message_hub']['runtime_info']['np'] == 2.5


class _RunsShell:

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null', ))


class _WalksGetattr:
    """getattr is allowed for HistoryBuffer's methods only, not as a gadget."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


@pytest.mark.parametrize('payload', [_RunsShell(), _WalksGetattr()])
def test_malicious_checkpoint_is_refused(tmp_path, payload):
    from mmengine.runner import CheckpointLoader
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': payload}, path)
    with pytest.raises(compat.UnsafeCheckpointError,
                       match='Refused to load checkpoint .*evil.pth'):
        CheckpointLoader.load_checkpoint(str(path))
    assert isinstance(compat.UnsafeCheckpointError('x'),
                      pickle.UnpicklingError)


def test_cpu_distributed_uses_gloo_plain_bn_and_no_device_ids():
    code = '''
        import os, torch
        import mmdidb
        from mmengine.dist import init_dist
        from mmengine.model import MMDistributedDataParallel
        # port 0: the only rank's store binds a free port itself (no race)
        os.environ.update(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
                          MASTER_ADDR='127.0.0.1', MASTER_PORT='0')
        init_dist('pytorch', backend='nccl')
        assert torch.distributed.get_backend() == 'gloo'
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1),
                                  torch.nn.SyncBatchNorm(2))
        ddp = MMDistributedDataParallel(module=net, device_ids=[0])
        bn = ddp.module[1]
        assert isinstance(bn, torch.nn.modules.batchnorm._BatchNorm)
        assert not isinstance(bn, torch.nn.SyncBatchNorm)
        ddp(torch.randn(2, 1, 3, 3)).sum().backward()
        print('DIST OK')
    '''
    rc, out = run_python(code)
    assert rc == 0 and 'DIST OK' in out, out
