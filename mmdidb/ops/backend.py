"""Choice of the implementation (backend) behind each call.

Backends of the products:

- ``'torch'``: the pure-torch reference (:mod:`mmdidb.ops.reference`); runs on
  any device, CUDA tensors included.
- ``'cpu'``: the native C kernels (:mod:`mmdidb.ops.cpu_bits`: AVX-512,
  AVX2 or portable C, picked from the CPU at run time); the default for CPU
  tensors whenever the library builds (``MMDIDB_CPU_KERNELS=0`` turns it
  off; without a C compiler the torch path runs after one warning).
- ``'mma'``: CuPy kernel on the 1-bit tensor cores (``mma.sync ... b1
  .and.popc``); needs compute capability 8.0 or newer.
- ``'popc'``: CuPy kernel on the CUDA cores (``__popc``); any CUDA GPU.
- ``'wgmma'``: Hopper's warpgroup tensor cores (``wgmma ... b1.and.popc``,
  an nvcc-built sm_90a cubin, :mod:`mmdidb.ops.wgmma`); compute capability
  9.0 only, and never picked by ``'auto'`` until measured faster.
- ``'auto'``: ``'mma'`` on sm_80+, ``'popc'`` below, for CUDA tensors.

Packing has ``'torch'``, ``'cpu'`` (the C packing kernels, float32 only),
``'cuda'`` (the CuPy packing kernel) and ``'auto'``.

Environment variables:

- ``MMDIDB_OPS_BACKEND``: overrides ``'auto'`` (``torch``, ``mma``, ``popc``,
  ``wgmma``, ``cuda``; ``mma``/``popc``/``wgmma`` also select the CUDA
  packing kernel, ``cuda`` selects ``auto`` for the products). Applies to
  CUDA tensors only.
- ``MMDIDB_OPS_STRICT=1``: when CuPy / NVRTC is unusable for a CUDA tensor,
  raise instead of warning once and falling back to the torch path.

A backend named explicitly (argument or environment) is always strict: if it
cannot run, the call raises ``RuntimeError`` rather than measuring or testing
another implementation by accident.
"""
import os
import warnings
from typing import Optional

import torch

from . import cpu_bits, cuda_backend

PRODUCT_BACKENDS = ('auto', 'torch', 'cpu', 'mma', 'popc', 'wgmma')
PACK_BACKENDS = ('auto', 'torch', 'cpu', 'cuda')
ENV_BACKEND = 'MMDIDB_OPS_BACKEND'
ENV_STRICT = 'MMDIDB_OPS_STRICT'

_warned = set()


def strict_mode() -> bool:
    """Whether ``MMDIDB_OPS_STRICT`` asks for errors instead of fallbacks.

    Returns:
        True when the variable is set to ``1``, ``true`` or ``yes``.
    """
    return os.environ.get(ENV_STRICT, '').strip().lower() in ('1', 'true',
                                                              'yes')


def _requested(backend: Optional[str], allowed) -> tuple:
    """Return ``(name, forced)`` from the argument or the environment."""
    if backend is not None and not isinstance(backend, str):
        raise TypeError(f'backend must be a str or None, got '
                        f'{type(backend).__name__}')
    if backend not in (None, 'auto'):
        if backend not in allowed:
            raise ValueError(f'backend must be one of {allowed}, got {backend!r}')
        return backend, True
    env = os.environ.get(ENV_BACKEND, '').strip().lower()
    if env in ('', 'auto'):
        return 'auto', False
    if env not in ('torch', 'mma', 'popc', 'wgmma', 'cuda'):
        raise ValueError(f'{ENV_BACKEND} must be one of auto, torch, mma, popc, '
                         f'wgmma, cuda; got {env!r}')
    return env, True


def _fallback(reason: str, forced: bool, what: str) -> str:
    """Warn once and return ``'torch'``, or raise when strict or forced."""
    message = (f'mmdidb.ops: the CUDA {what} kernels are unusable ({reason})')
    if forced or strict_mode():
        raise RuntimeError(message)
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(message + '; falling back to the slower torch path. '
                      f'Set {ENV_STRICT}=1 to make this an error.',
                      RuntimeWarning, stacklevel=4)
    return 'torch'


def _cpu_backend(backend: Optional[str], device: torch.device) -> str:
    """``'cpu'`` (the C kernels) or ``'torch'`` for tensors off CUDA.

    ``MMDIDB_OPS_BACKEND`` concerns CUDA tensors only, so only the argument
    counts here; ``backend='cpu'`` raises when the C kernels cannot run.
    """
    if backend == 'torch' or device.type != 'cpu':
        if backend == 'cpu':
            raise ValueError(f"backend='cpu' needs CPU tensors, got {device}")
        return 'torch'
    if cpu_bits.available():
        return 'cpu'
    if backend == 'cpu':
        raise RuntimeError(
            "backend='cpu': the native CPU kernels are unavailable "
            f'({cpu_bits.native.ENV_SWITCH}=0, or no C compiler; see the '
            'warning logged by mmdidb.ops.native)')
    return 'torch'


def resolve_product_backend(backend: Optional[str],
                            device: torch.device) -> str:
    """Pick the implementation of ``bmm_pm1`` / ``bmm_mask_pm1``.

    Args:
        backend: ``None``/``'auto'``, ``'torch'``, ``'mma'``, ``'popc'`` or
            ``'wgmma'``.
        device: Device of the operands.

    Returns:
        ``'torch'``, ``'cpu'``, ``'mma'``, ``'popc'`` or ``'wgmma'``.

    Raises:
        ValueError: Unknown backend, or a CUDA backend named in the argument
            for CPU tensors.
        RuntimeError: A forced (or strict-mode) CUDA backend cannot run.
    """
    explicit = backend not in (None, 'auto')
    name, forced = _requested(backend, PRODUCT_BACKENDS)
    if name == 'cuda':
        name = 'auto'
    if device.type != 'cuda':
        if explicit and name in ('mma', 'popc', 'wgmma'):
            raise ValueError(
                f'backend={name!r} needs CUDA tensors, got tensors on {device}')
        return _cpu_backend(backend, device)
    if explicit and name == 'cpu':
        raise ValueError(f"backend='cpu' needs CPU tensors, got tensors on "
                         f'{device}')
    if name == 'torch':
        return 'torch'
    reason = cuda_backend.unusable_reason(device)
    if reason is not None:
        return _fallback(reason, forced, 'product')
    major, minor = torch.cuda.get_device_capability(device)
    if name == 'wgmma':
        if (major, minor) != (9, 0):
            raise RuntimeError(
                f'backend wgmma needs compute capability 9.0 (H100/H200), '
                f'{device} has {major}.{minor}; use mma')
        from . import wgmma  # noqa: PLC0415  (imports the products)
        reason = wgmma.unusable_reason(device)
        if reason is not None:
            raise RuntimeError(f'backend wgmma is unusable: {reason}')
        return 'wgmma'
    has_mma = (major, minor) >= (8, 0)
    if name == 'auto':
        return 'mma' if has_mma else 'popc'
    if name == 'mma' and not has_mma:
        raise RuntimeError(
            f'backend mma needs compute capability >= 8.0, {device} has '
            f'{major}.{minor}; use popc')
    return name


def resolve_pack_backend(backend: Optional[str], device: torch.device) -> str:
    """Pick the implementation of the packing functions.

    Args:
        backend: ``None``/``'auto'``, ``'torch'`` or ``'cuda'``.
        device: Device of the input.

    Returns:
        ``'torch'``, ``'cpu'`` or ``'cuda'``.

    Raises:
        ValueError: Unknown backend, or ``'cuda'`` named for a CPU tensor.
        RuntimeError: A forced (or strict-mode) CUDA kernel cannot run.
    """
    explicit = backend not in (None, 'auto')
    name, forced = _requested(backend, PACK_BACKENDS)
    if name in ('mma', 'popc', 'wgmma'):
        name = 'cuda'
    if device.type != 'cuda':
        if explicit and name == 'cuda':
            raise ValueError(
                f"backend='cuda' needs a CUDA tensor, got a tensor on {device}")
        return _cpu_backend(backend, device)
    if explicit and name == 'cpu':
        raise ValueError(f"backend='cpu' needs a CPU tensor, got a tensor on "
                         f'{device}')
    if name == 'torch':
        return 'torch'
    reason = cuda_backend.unusable_reason(device)
    if reason is not None:
        return _fallback(reason, forced, 'packing')
    return 'cuda'
