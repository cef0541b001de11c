"""Backend choice: CPU always torch; CUDA fallback warns once or raises."""
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from mmdidb.ops import backend, cuda_backend

CUDA0 = torch.device('cuda', 0)
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(backend.ENV_BACKEND, raising=False)
    monkeypatch.delenv(backend.ENV_STRICT, raising=False)
    monkeypatch.setattr(backend, '_warned', set())


def _unusable(monkeypatch, reason='cupy is not importable: test'):
    monkeypatch.setattr(cuda_backend, 'unusable_reason', lambda device: reason)


def test_cpu_tensors_use_the_c_kernels_or_torch(monkeypatch):
    cpu = torch.device('cpu')
    assert backend.resolve_product_backend(None, cpu) == 'cpu'
    assert backend.resolve_pack_backend(None, cpu) == 'cpu'
    monkeypatch.setenv(backend.ENV_BACKEND, 'mma')  # env only affects CUDA
    assert backend.resolve_product_backend(None, cpu) == 'cpu'
    assert backend.resolve_product_backend('torch', cpu) == 'torch'
    assert backend.resolve_pack_backend('torch', cpu) == 'torch'
    with pytest.raises(ValueError, match="backend='cpu' needs CPU"):
        backend.resolve_product_backend('cpu', torch.device('meta'))


def test_unusable_cuda_falls_back_with_one_warning(monkeypatch):
    _unusable(monkeypatch)
    with pytest.warns(RuntimeWarning, match='falling back'):
        assert backend.resolve_product_backend(None, CUDA0) == 'torch'
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a second warning would raise
        assert backend.resolve_product_backend('auto', CUDA0) == 'torch'
        assert backend.resolve_pack_backend(None, CUDA0) == 'torch'


def test_strict_mode_raises(monkeypatch):
    _unusable(monkeypatch)
    monkeypatch.setenv(backend.ENV_STRICT, '1')
    with pytest.raises(RuntimeError, match='cupy is not importable'):
        backend.resolve_product_backend(None, CUDA0)
    with pytest.raises(RuntimeError, match='packing'):
        backend.resolve_pack_backend(None, CUDA0)


def test_forced_backend_raises_instead_of_falling_back(monkeypatch):
    _unusable(monkeypatch)
    with pytest.raises(RuntimeError):
        backend.resolve_product_backend('popc', CUDA0)
    monkeypatch.setenv(backend.ENV_BACKEND, 'mma')
    with pytest.raises(RuntimeError):
        backend.resolve_product_backend(None, CUDA0)
    assert backend.resolve_product_backend('torch', CUDA0) == 'torch'


def test_env_torch_and_bad_env(monkeypatch):
    monkeypatch.setenv(backend.ENV_BACKEND, 'torch')
    assert backend.resolve_product_backend(None, CUDA0) == 'torch'
    assert backend.resolve_pack_backend(None, CUDA0) == 'torch'
    monkeypatch.setenv(backend.ENV_BACKEND, 'fastest')
    with pytest.raises(ValueError, match='MMDIDB_OPS_BACKEND'):
        backend.resolve_product_backend(None, CUDA0)


@pytest.mark.parametrize('capability, expected', [((9, 0), 'mma'),
                                                  ((8, 0), 'mma'),
                                                  ((7, 5), 'popc')])
def test_auto_picks_by_compute_capability(monkeypatch, capability, expected):
    _unusable(monkeypatch, None)
    monkeypatch.setattr(torch.cuda, 'get_device_capability',
                        lambda device=None: capability)
    assert backend.resolve_product_backend(None, CUDA0) == expected
    assert backend.resolve_pack_backend(None, CUDA0) == 'cuda'
    if capability < (8, 0):
        with pytest.raises(RuntimeError, match='compute capability'):
            backend.resolve_product_backend('mma', CUDA0)


def test_unusable_reason_without_cuda():
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    assert 'no CUDA' in cuda_backend.unusable_reason(CUDA0)


def test_import_needs_torch_alone():
    """``mmdidb.ops`` imports no CuPy and no OpenMMLab package."""
    out = subprocess.run([sys.executable, '-c', _ISOLATED_IMPORT],
                         capture_output=True, text=True, check=True,
                         cwd=REPO_ROOT)
    assert out.stdout.strip().splitlines()[-1] == '[]', out.stdout + out.stderr


# mmdidb/__init__ may import OpenMMLab on purpose, so the parent package is
# replaced by a bare one and only mmdidb.ops itself is imported.
_ISOLATED_IMPORT = r"""
import importlib.util, sys, types
spec = importlib.util.find_spec('mmdidb')
parent = types.ModuleType('mmdidb')
parent.__path__ = list(spec.submodule_search_locations)
sys.modules['mmdidb'] = parent
import mmdidb.ops
x = mmdidb.ops.pack_signs(mmdidb.ops.unpack_signs(
    mmdidb.ops.pack_signs(__import__('torch').ones(3, 40)), 40))
heavy = ('cupy', 'mmengine', 'mmcv', 'mmpretrain', 'mmseg', 'torchvision')
print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))
"""


def test_wgmma_backend_needs_sm90_and_is_never_auto(monkeypatch):
    from mmdidb.ops import wgmma
    _unusable(monkeypatch, None)
    with pytest.raises(ValueError, match="backend='wgmma' needs CUDA"):
        backend.resolve_product_backend('wgmma', torch.device('cpu'))
    monkeypatch.setattr(torch.cuda, 'get_device_capability',
                        lambda device=None: (8, 9))
    with pytest.raises(RuntimeError, match='needs compute capability 9.0'):
        backend.resolve_product_backend('wgmma', CUDA0)
    monkeypatch.setattr(torch.cuda, 'get_device_capability',
                        lambda device=None: (9, 0))
    monkeypatch.setattr(wgmma, 'unusable_reason', lambda device: 'no nvcc')
    with pytest.raises(RuntimeError, match='wgmma is unusable: no nvcc'):
        backend.resolve_product_backend('wgmma', CUDA0)
    monkeypatch.setattr(wgmma, 'unusable_reason', lambda device: None)
    assert backend.resolve_product_backend('wgmma', CUDA0) == 'wgmma'
    assert backend.resolve_product_backend(None, CUDA0) == 'mma'  # not auto
    monkeypatch.setenv(backend.ENV_BACKEND, 'wgmma')
    assert backend.resolve_product_backend(None, CUDA0) == 'wgmma'
    assert backend.resolve_pack_backend(None, CUDA0) == 'cuda'
