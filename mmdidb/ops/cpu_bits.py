"""Native CPU binary products and packing (``csrc/cpu_bits.c``).

The products of :mod:`mmdidb.ops` on CPU tensors run here when the C
library builds (see :mod:`mmdidb.ops.native`); the torch reference path
(:mod:`mmdidb.ops.reference`) stays the definition they are tested against.

Three instruction-set paths give the same integers:

- ``'avx512'``: AVX-512 with ``vpopcntd`` (AVX512_VPOPCNTDQ), 16 output
  channels per vector;
- ``'avx2'``: the nibble-lookup popcount (``vpshufb``), 8 channels per
  vector;
- ``'portable'``: plain C, any CPU.

The best one the CPU supports is used unless ``isa`` (or the environment
variable ``MMDIDB_CPU_ISA``) names another; naming one the CPU lacks is an
error, never a silent downgrade. The work can be split over threads
(:func:`mmdidb.ops.native.kernel_threads`, one by default).
"""
import ctypes
import os
from typing import Optional, Tuple

import torch

from . import native
from .validation import batch_view

SOURCE = native.CSRC / 'cpu_bits.c'
#: -ffp-contract=off: the float epilogue makes torch's two roundings (no
#: fused multiply-add); each vector path carries its own target attribute,
#: so the library loads on any x86-64 CPU.
CFLAGS = ('-O3', '-std=c11', '-fPIC', '-shared', '-pthread',
          '-ffp-contract=off', '-fno-trapping-math')
ISAS = ('portable', 'avx2', 'avx512')
ENV_ISA = 'MMDIDB_CPU_ISA'
_OPS = {'xor': 0, 'and': 1}
_state = {}


def _load():
    if 'lib' in _state:
        return _state['lib']
    lib = native.load(SOURCE, CFLAGS, what='native binary CPU kernels')
    if lib is not None:
        p, i, c = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        lib.mmdidb_best_isa.argtypes = []
        lib.mmdidb_best_isa.restype = c
        lib.mmdidb_bgemm.argtypes = [p, p, i, c, c, i, i, i, i, c, p, p, p, p,
                                     c, c]
        lib.mmdidb_bgemm.restype = c
        lib.mmdidb_pack_rows.argtypes = [p, p, p, i, i, c, c]
        lib.mmdidb_pack_rows.restype = c
        lib.mmdidb_pack_cols.argtypes = [p, p, p, i, i, i, c]
        lib.mmdidb_pack_cols.restype = c
        lib.mmdidb_sign_linear.argtypes = [p, p, i, i, p, i, p, p, p, c, c]
        lib.mmdidb_sign_linear.restype = c
        f = ctypes.c_float
        lib.mmdidb_bgemm_bands.argtypes = [p, p, p, p, i, c, c, i, i, i, i, f,
                                           f, f, p, c, c]
        lib.mmdidb_bgemm_bands.restype = c
    _state['lib'] = lib
    return lib


def available() -> bool:
    """Whether the native kernels are enabled, built and loaded."""
    return _load() is not None


def best_isa() -> str:
    """The fastest path this CPU runs (``'portable'`` without the library)."""
    lib = _load()
    return ISAS[lib.mmdidb_best_isa()] if lib is not None else 'portable'


def resolve_isa(isa: Optional[str] = None) -> str:
    """The path to run: ``isa``, else ``$MMDIDB_CPU_ISA``, else the best.

    Raises:
        ValueError: An unknown name.
        RuntimeError: A path this CPU cannot run.
    """
    name = isa or os.environ.get(ENV_ISA, '').strip().lower() or None
    best = best_isa()
    if name is None:
        return best
    if name not in ISAS:
        raise ValueError(f'isa ({ENV_ISA}) must be one of {ISAS}, got '
                         f'{name!r}')
    if ISAS.index(name) > ISAS.index(best):
        raise RuntimeError(f'isa={name!r} is not supported by this CPU (its '
                           f'best is {best!r})')
    return name


def _ptr(t: Optional[torch.Tensor]):
    # only the address: the caller keeps ``t`` alive over the C call
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _check(status: int, what: str) -> None:
    if status == -1:
        raise MemoryError(f'mmdidb.ops.cpu_bits.{what}: out of memory')
    if status != 0:
        raise RuntimeError(f'mmdidb.ops.cpu_bits.{what}: the kernel refused '
                           f'its arguments (status {status})')


def bgemm(a: torch.Tensor, b: torch.Tensor, k: int, op: str,
          batch: torch.Size, scale: Optional[torch.Tensor] = None,
          bias: Optional[torch.Tensor] = None, isa: Optional[str] = None,
          threads: Optional[int] = None) -> torch.Tensor:
    """The binary product of two packed operands on the CPU.

    The operands are validated by the caller (:func:`mmdidb.ops.bmm_pm1`).

    Args:
        a (Tensor): ``int32`` ``(..., M, W)``, contiguous, on the CPU.
        b (Tensor): ``int32`` ``(..., N, W)``, contiguous, on the CPU.
        k (int): Valid bits along the reduction axis.
        op (str): ``'xor'`` (±1 x ±1) or ``'and'`` ({0,1} x ±1).
        batch (torch.Size): The broadcast leading shape.
        scale (Tensor, optional): ``(N,)`` float32: return float32
            ``dot * scale (+ bias)`` instead of the ``int32`` dots.
        bias (Tensor, optional): ``(N,)`` float32, with ``scale``.
        isa (str, optional): See :func:`resolve_isa`.
        threads (int, optional): Defaults to
            :func:`mmdidb.ops.native.kernel_threads`.

    Returns:
        Tensor: ``batch + (M, N)``, ``int32``, or float32 with ``scale``.
    """
    lib = _load()
    m, words, n = a.shape[-2], a.shape[-1], b.shape[-2]
    dtype = torch.int32 if scale is None else torch.float32
    out = torch.empty(tuple(batch) + (m, n), dtype=dtype)
    if out.numel() == 0:
        return out
    if words == 0:  # k = 0: every dot is 0
        out.zero_()
        return out if scale is None else out * scale + (
            0 if bias is None else bias)
    a3, a_stride = batch_view(a, batch, m, words)
    b3, b_stride = batch_view(b, batch, n, words)
    scale = None if scale is None else scale.contiguous()
    bias = None if bias is None else bias.contiguous()
    status = lib.mmdidb_bgemm(
        _ptr(a3), _ptr(b3), out.numel() // (m * n), int(a_stride != 0),
        int(b_stride != 0), m, n, words, k, _OPS[op],
        _ptr(out) if scale is None else None,
        _ptr(out) if scale is not None else None, _ptr(scale), _ptr(bias),
        ISAS.index(resolve_isa(isa)),
        native.kernel_threads() if threads is None else threads)
    _check(status, 'bgemm')
    return out


def bgemm_bands(a: torch.Tensor, b: torch.Tensor, k: int,
                batch: torch.Size, weights: Optional[Tuple[float, float]],
                post: float, isa: Optional[str] = None,
                threads: Optional[int] = None) -> torch.Tensor:
    """Similarity of binary attention from band-stacked ±1 operands.

    ``bands = a.shape[0]`` is 1 or 2; with 2, ``out = (w0 * dot0 + w1 *
    dot1) * post``, else ``out = dot0 * post``, in float32 with torch's
    roundings (see ``mmdidb_bgemm_bands`` in ``csrc/cpu_bits.c``). The
    operands are validated by the caller
    (:func:`mmdidb.ops.bmm_pm1_bands`).

    Args:
        a (Tensor): ``int32`` ``(bands, ..., M, W)``, contiguous.
        b (Tensor): ``int32`` ``(bands, ..., N, W)``, contiguous.
        k (int): Valid bits along the reduction axis.
        batch (torch.Size): Broadcast leading shape (without the bands).
        weights (tuple[float, float], optional): ``(w0, w1)``, two bands.
        post (float): Factor applied last.
        isa (str, optional): See :func:`resolve_isa`.
        threads (int, optional): Defaults to
            :func:`mmdidb.ops.native.kernel_threads`.

    Returns:
        Tensor: float32 ``batch + (M, N)``.
    """
    bands = a.shape[0]
    m, words, n = a.shape[-2], a.shape[-1], b.shape[-2]
    out = torch.empty(tuple(batch) + (m, n), dtype=torch.float32)
    if out.numel() == 0:
        return out
    views = [batch_view(x[i], batch, rows, words)
             for x, rows in ((a, m), (b, n)) for i in range(bands)]
    a_views, b_views = views[:bands], views[bands:]
    w0, w1 = weights if weights is not None else (1.0, 0.0)
    _check(_load().mmdidb_bgemm_bands(
        _ptr(a_views[0][0]), _ptr(b_views[0][0]),
        _ptr(a_views[1][0]) if bands == 2 else None,
        _ptr(b_views[1][0]) if bands == 2 else None,
        out.numel() // (m * n), int(a_views[0][1] != 0),
        int(b_views[0][1] != 0), m,
        n, words, k, w0, w1, post, _ptr(out), ISAS.index(resolve_isa(isa)),
        native.kernel_threads() if threads is None else threads),
        'bgemm_bands')
    return out


def sign_linear(x: torch.Tensor, shift: torch.Tensor,
                weight_packed: torch.Tensor, scale: torch.Tensor,
                bias: Optional[torch.Tensor] = None,
                isa: Optional[str] = None,
                threads: Optional[int] = None) -> torch.Tensor:
    """The deployed binary linear layer in one C call.

    ``sign(x + shift)`` is packed straight into the product's buffer, and
    ``dot * scale + bias`` is written as float32: equal to
    ``bmm_pm1_scaled(pack_shifted_signs(x, shift), weight_packed, K, scale,
    bias)``. The arguments are validated by the caller
    (:func:`mmdidb.ops.sign_linear`).

    Args:
        x (Tensor): float32 ``(M, K)`` on the CPU.
        shift (Tensor): float32 ``(K,)``.
        weight_packed (Tensor): ``int32`` ``(N, ceil(K / 32))``, contiguous.
        scale (Tensor): float32 ``(N,)``.
        bias (Tensor, optional): float32 ``(N,)``.
        isa (str, optional): See :func:`resolve_isa`.
        threads (int, optional): Defaults to
            :func:`mmdidb.ops.native.kernel_threads`.

    Returns:
        Tensor: float32 ``(M, N)``.
    """
    x = x.contiguous()
    rows, length = x.shape
    n = weight_packed.shape[0]
    out = torch.empty(rows, n, dtype=torch.float32)
    shift, scale = shift.contiguous(), scale.contiguous()
    bias = None if bias is None else bias.contiguous()
    _check(_load().mmdidb_sign_linear(
        _ptr(x), _ptr(shift), rows, length, _ptr(weight_packed), n,
        _ptr(out), _ptr(scale), _ptr(bias), ISAS.index(resolve_isa(isa)),
        native.kernel_threads() if threads is None else threads),
        'sign_linear')
    return out


def pack_rows(x: torch.Tensor, shift: Optional[torch.Tensor] = None,
              mask: bool = False, isa: Optional[str] = None) -> torch.Tensor:
    """Pack the last axis of a float32 CPU tensor (``x (+ shift) >= 0``, or
    ``x != 0`` with ``mask``), 32 bits per ``int32`` word.

    Args:
        x (Tensor): float32 ``(..., K)`` on the CPU.
        shift (Tensor, optional): float32 ``(K,)`` added before the sign.
        mask (bool): Pack ``x != 0`` instead of signs.
        isa (str, optional): See :func:`resolve_isa`.

    Returns:
        Tensor: ``int32`` ``(..., ceil(K / 32))``.
    """
    x = x.contiguous()
    length = x.shape[-1]
    out = torch.empty(x.shape[:-1] + ((length + 31) // 32, ),
                      dtype=torch.int32)
    shift = None if shift is None else shift.contiguous()
    rows = x.numel() // length if length else 0
    _check(_load().mmdidb_pack_rows(_ptr(x), _ptr(shift), _ptr(out), rows,
                                    length, int(mask),
                                    ISAS.index(resolve_isa(isa))),
           'pack_rows')
    return out


def pack_cols(x: torch.Tensor, shift: Optional[torch.Tensor] = None,
              mask: bool = False) -> torch.Tensor:
    """Pack the second-to-last axis: float32 ``(..., N, C)`` ->
    ``int32`` ``(..., C, ceil(N / 32))``.

    Args:
        x (Tensor): float32 CPU tensor, at least 2-D.
        shift (Tensor, optional): float32 ``(C,)`` added before the sign.
        mask (bool): Pack ``x != 0`` instead of signs.

    Returns:
        Tensor: ``int32`` ``(..., C, ceil(N / 32))``.
    """
    x = x.contiguous()
    tokens, channels = x.shape[-2], x.shape[-1]
    out = torch.empty(x.shape[:-2] + (channels, (tokens + 31) // 32),
                      dtype=torch.int32)
    per = tokens * channels
    batch = x.numel() // per if per else 0
    shift = None if shift is None else shift.contiguous()
    _check(_load().mmdidb_pack_cols(_ptr(x), _ptr(shift), _ptr(out), batch,
                                    tokens, channels, int(mask)), 'pack_cols')
    return out
