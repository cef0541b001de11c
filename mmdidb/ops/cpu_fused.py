"""Fused element-wise passes of the float training graph on CPU.

The straight-through binarizers and IRPReLU are chains of element-wise
operations; on CPU torch runs each as its own pass over memory, and these
chains, not the matrix products, took most of a training step (profile in
docs/benchmarks.md, "Training step"). ``csrc/cpu_fused.c`` does each chain
in one pass (its channels can be split over threads:
:func:`mmdidb.ops.native.kernel_threads`).
It is plain C, built and loaded by :mod:`mmdidb.ops.native`.

The values written are torch's, bit for bit (same float operations, no
fused multiply-add); parameter gradients (column sums) are accumulated in
double, so they equal torch's float sums to rounding. The callers in
:mod:`mmdidb.models.layers` use these functions for contiguous float32 CPU
tensors when :func:`available` is true and keep the torch formulation
otherwise (no C compiler, other dtypes, CUDA), which computes the same
numbers. ``MMDIDB_CPU_KERNELS=0`` turns the C path off.
"""
import ctypes
from pathlib import Path
from typing import Optional, Tuple

import torch

from . import native
from .native import CpuKernelBuildError  # noqa: F401  (part of the API)

SOURCE = native.CSRC / 'cpu_fused.c'
#: -ffp-contract=off: no fused multiply-add, so results match torch's;
#: -fno-trapping-math lets the selects vectorize (FP exceptions are not
#: observed; no arithmetic changes)
CFLAGS = ('-O3', '-std=c99', '-fPIC', '-shared', '-pthread',
          '-ffp-contract=off', '-fno-trapping-math')
LIBS = ('-lm', )

_state = {}


def library_path() -> Path:
    """Where the shared library of the current source is (or will be)."""
    return native.library_path(SOURCE, CFLAGS)


def build(path: Optional[Path] = None) -> Path:
    """Compile ``cpu_fused.c`` into a shared library (once per source).

    Raises:
        CpuKernelBuildError: No C compiler, or it failed (its output is in
            the message).
    """
    return native.build(SOURCE, CFLAGS, LIBS, path)


def _load():
    if 'lib' in _state:
        return _state['lib']
    lib = native.load(SOURCE, CFLAGS, LIBS,
                      what='fused CPU kernels of the training graph')
    if lib is not None:
        p, i, n = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        lib.sign_shift_fwd.argtypes = [p, p, p, i, i, n]
        lib.approx_sign_bwd.argtypes = [p, p, p, p, p, i, i, n]
        lib.approx_sign_bwd.restype = ctypes.c_int
        lib.shifted_prelu_bwd.restype = ctypes.c_int
        lib.shifted_prelu_fwd.argtypes = [p, p, p, p, p, i, i, i, n]
        lib.shifted_prelu_bwd.argtypes = [p, p, p, p, p, p, p, p, i, i, i, n]
        lib.sign_shift_fwd.restype = None
        lib.shifted_prelu_fwd.restype = None
    _state['lib'] = lib
    return lib


def _threads() -> int:
    return native.kernel_threads()


def available() -> bool:
    """Whether the C kernels are built and loaded (builds them once)."""
    return _load() is not None


def applies(x: torch.Tensor, channel_params=(), others=()) -> bool:
    """Whether the C path takes ``x`` (channels last) with these
    per-channel parameters (``C`` or 1 values along the last dimension) and
    other tensors: all float32 on CPU, the kernels available, and not being
    traced by torch.compile."""
    # under torch.compile the torch formulation is traced instead: an
    # opaque ctypes call would split the graph at every binarizer
    channels = x.shape[-1] if x.dim() else 0
    return (x.dim() >= 1
            and all(p.numel() in (1, channels)
                    and (p.dim() == 0 or p.shape[-1] == p.numel())
                    for p in channel_params)
            and all(t.device.type == 'cpu' and t.dtype == torch.float32
                    for t in (x, *channel_params, *others))
            and not torch.compiler.is_compiling() and available())


def _check(status: int) -> None:
    if status != 0:
        raise MemoryError('mmdidb.ops.cpu_fused: out of memory for the '
                          'per-channel sums')


def _ptr(t: torch.Tensor):
    # only the address: the caller keeps ``t`` alive over the C call
    return ctypes.c_void_p(t.data_ptr())


def _channels(param: torch.Tensor, channels: int) -> torch.Tensor:
    """A per-channel parameter (``C`` or 1 values) as ``C`` contiguous."""
    return param.reshape(-1).expand(channels).contiguous()


def sign_shift(x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``sign(x + beta)`` (values ±1, ``sign(0) = +1``) in one pass.

    Args:
        x (Tensor): float32 CPU tensor, channels last (``C``).
        beta (Tensor): ``C`` or 1 values (any shape that broadcasts so).
    """
    x = x.contiguous()
    channels = x.shape[-1]
    out = torch.empty_like(x)
    beta = _channels(beta, channels)  # kept alive: C reads its memory
    _load().sign_shift_fwd(_ptr(x), _ptr(beta), _ptr(out),
                           x.numel() // channels, channels, _threads())
    return out


def approx_sign_backward_(grad: torch.Tensor, x: torch.Tensor,
                          beta: torch.Tensor, want_signs: bool = False
                          ) -> Tuple[torch.Tensor, torch.Tensor,
                                     Optional[torch.Tensor]]:
    """ApproxSign gradient of ``sign(x + beta)``, written into ``grad``.

    Args:
        grad (Tensor): Upstream gradient, shaped like ``x``, contiguous;
            overwritten with the gradient of ``x``.
        x (Tensor): The binarizer's input (channels last).
        beta (Tensor): Its shift (``C`` or 1 values).
        want_signs (bool): Also return ``sign(x + beta)``.

    Returns:
        tuple: ``grad`` (now ``dL/dx``), the per-channel sum of it (float64,
        ``C`` values; ``dL/dbeta`` before reducing to ``beta``'s shape) and
        the signs or None.
    """
    assert grad.is_contiguous() and grad.shape == x.shape
    x = x.contiguous()
    channels = x.shape[-1]
    gbeta = torch.zeros(channels, dtype=torch.float64)
    signs = torch.empty_like(x) if want_signs else None
    beta = _channels(beta, channels)
    _check(_load().approx_sign_bwd(
        _ptr(x), _ptr(beta), _ptr(grad),
        _ptr(signs) if want_signs else None, _ptr(gbeta),
        x.numel() // channels, channels, _threads()))
    return grad, gbeta, signs


def _shift_rows(shift: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``shift`` (broadcasting against ``x``'s last two dims at most) as a
    contiguous (T, C) table; row ``r`` of ``x`` viewed as (rows, C) takes
    row ``r % T``."""
    channels = x.shape[-1]
    if shift.dim() >= 2 and shift.shape[-2] != 1:
        if shift.dim() > 2 and shift.numel() != shift.shape[-2] * \
                shift.shape[-1]:
            raise ValueError(f'shift of shape {tuple(shift.shape)}: only '
                             'per-token and per-channel offsets are fused')
        return shift.reshape(shift.shape[-2], -1).expand(
            x.shape[-2], channels).contiguous()
    return shift.reshape(-1).expand(channels).contiguous().view(1, channels)


def shifted_prelu(x: torch.Tensor, gamma: torch.Tensor, slope: torch.Tensor,
                  shift: torch.Tensor) -> torch.Tensor:
    """``PReLU_slope(x - gamma) + shift`` in one pass (see
    :class:`~mmdidb.models.layers.IRPReLU`)."""
    x = x.contiguous()
    channels = x.shape[-1]
    table = _shift_rows(shift, x)
    out = torch.empty_like(x)
    gamma, slope = _channels(gamma, channels), _channels(slope, channels)
    _load().shifted_prelu_fwd(
        _ptr(x), _ptr(gamma), _ptr(slope), _ptr(table), _ptr(out),
        x.numel() // channels, channels, table.shape[0], _threads())
    return out


def shifted_prelu_backward(grad_output: torch.Tensor, x: torch.Tensor,
                           gamma: torch.Tensor, slope: torch.Tensor,
                           shift_shape: torch.Size):
    """Gradients of :func:`shifted_prelu` in one pass.

    Returns:
        tuple: ``dL/dx`` and, float64 and not yet reduced to the
        parameters' shapes, the per-channel sum of ``dL/dx`` (``-dL/dgamma``),
        the per-channel ``dL/dslope`` and the (T, C) table of ``dL/dshift``.
    """
    x = x.contiguous()
    grad_output = grad_output.contiguous()
    channels = x.shape[-1]
    rows = (x.shape[-2] if len(shift_shape) >= 2 and shift_shape[-2] != 1
            else 1)
    gx = torch.empty_like(x)
    gsum = torch.zeros(channels, dtype=torch.float64)
    gslope = torch.zeros(channels, dtype=torch.float64)
    gshift = torch.zeros(rows, channels, dtype=torch.float64)
    gamma, slope = _channels(gamma, channels), _channels(slope, channels)
    _check(_load().shifted_prelu_bwd(
        _ptr(x), _ptr(gamma), _ptr(slope), _ptr(grad_output), _ptr(gx),
        _ptr(gsum), _ptr(gslope), _ptr(gshift), x.numel() // channels,
        channels, rows, _threads()))
    return gx, gsum, gslope, gshift
