"""CUDA kernels of :mod:`mmdidb.ops`, compiled at run time by CuPy (NVRTC).

CuPy is imported lazily, on the first CUDA tensor, so ``import mmdidb.ops``
needs torch alone. The kernel sources are the ``.cu`` files in ``csrc/``; they
are compiled once per device (CuPy also caches the binaries on disk).

Interop is zero-copy: torch tensors are handed to the kernels as raw device
pointers, outputs are allocated by torch (its caching allocator), and every
kernel runs on torch's current stream of the tensors' device, so it is
ordered with the surrounding torch work without any synchronisation, and a
forward pass can be captured into a CUDA graph
(:mod:`mmdidb.models.deploy.graph_runtime`).
"""
import threading
import warnings
from pathlib import Path
from typing import Dict, Optional

import torch

from .validation import batch_view

SOURCE_DIR = Path(__file__).resolve().parent / 'csrc'
SOURCES = {
    'pack': 'pack.cu',
    'popc': 'bmm_popc.cu',
    'mma': 'bmm_mma.cu',
    # nvcc-built sm_90a cubin, loaded by mmdidb.ops.wgmma (not by NVRTC)
    'wgmma': 'bmm_wgmma.cu',
}
KERNELS = {
    'pack': ('mmdidb_pack_f32_sign', 'mmdidb_pack_f32_mask',
             'mmdidb_pack_f64_sign', 'mmdidb_pack_f64_mask',
             'mmdidb_pack_f16_sign', 'mmdidb_pack_f16_mask',
             'mmdidb_pack_bf16_sign', 'mmdidb_pack_bf16_mask',
             'mmdidb_pack_u8_nonzero', 'mmdidb_pack_shift_f32',
             'mmdidb_pack_shift_f16'),
    'popc': ('mmdidb_bmm_popc_xor', 'mmdidb_bmm_popc_and'),
    'mma': ('mmdidb_bmm_mma_xor', 'mmdidb_bmm_mma_and',
            'mmdidb_bmm_mma_xor_f32', 'mmdidb_bmm_mma_xor_f16'),
    'wgmma': ('mmdidb_bmm_wgmma_xor', 'mmdidb_bmm_wgmma_and'),
}
#: Dtypes of the fused kernels (sign-shift + pack, GEMM + scale + bias).
FUSED_DTYPES = {torch.float32: ('f32', torch.int32),
                torch.float16: ('f16', torch.int16)}
# Tile sizes and block sizes, as #defined in the .cu files.
PRODUCT_TILE = {'popc': (64, 64, 256), 'mma': (64, 64, 128)}
PACK_THREADS = 256
# blockIdx.z (the batch index) is limited to 65535 blocks.
MAX_GRID_Z = 65535
# blockIdx.y (the row tile of a product) is limited to 65535 blocks too.
MAX_GRID_Y = 65535

# For the packing kernels: input dtype -> (kernel suffix, raw view dtype).
PACK_DTYPES = {
    torch.float32: ('f32', torch.int32),
    torch.float64: ('f64', torch.int64),
    torch.float16: ('f16', torch.int16),
    torch.bfloat16: ('bf16', torch.int16),
    torch.bool: ('u8', torch.uint8),
}

_lock = threading.Lock()
_reasons: Dict[int, Optional[str]] = {}
_functions: Dict[tuple, object] = {}
_streams: Dict[tuple, object] = {}


def read_source(name: str) -> str:
    """Return the text of one kernel source.

    Args:
        name: A key of :data:`SOURCES` (``'pack'``, ``'popc'`` or ``'mma'``).

    Returns:
        The CUDA source code.
    """
    return (SOURCE_DIR / SOURCES[name]).read_text()


def _cupy():
    import cupy  # noqa: PLC0415  (lazy: only CUDA tensors need CuPy)
    return cupy


def _modules_for(device: torch.device):
    """Sources needed on ``device``: the mma kernels only on sm_80+."""
    major, minor = torch.cuda.get_device_capability(device)
    names = ['pack', 'popc']
    if (major, minor) >= (8, 0):
        names.append('mma')
    return names


def _compile(device: torch.device) -> None:
    """Compile and load every module for ``device``; raises on failure."""
    cupy = _cupy()
    index = device.index if device.index is not None else 0
    with cupy.cuda.Device(index):
        for name in _modules_for(device):
            module = cupy.RawModule(code=read_source(name))
            for kernel in KERNELS[name]:
                _functions[(index, kernel)] = module.get_function(kernel)


def unusable_reason(device: torch.device) -> Optional[str]:
    """Why the CUDA kernels cannot run on ``device``, or None if they can.

    The first call per device imports CuPy and compiles all kernels, so a
    broken NVRTC or kernel shows up here, once, instead of mid-model.

    Args:
        device: A CUDA device.

    Returns:
        None when usable, else a one-line reason.
    """
    index = device.index if device.index is not None else 0
    with _lock:
        if index in _reasons:
            return _reasons[index]
        reason = None
        if not torch.cuda.is_available():
            reason = 'torch reports no CUDA device'
        else:
            try:
                _compile(torch.device('cuda', index))
            except ImportError as err:
                reason = f'cupy is not importable: {err}'
            except Exception as err:  # noqa: BLE001  (NVRTC, driver, ...)
                text = ' '.join(str(err).split())
                reason = f'{type(err).__name__}: {text[:1000]}'
        _reasons[index] = reason
        return reason


def _function(device: torch.device, kernel: str):
    index = device.index if device.index is not None else 0
    return _functions[(index, kernel)]


def _stream(device: torch.device):
    """CuPy view of torch's current stream on ``device`` (cached)."""
    cupy = _cupy()
    torch_stream = torch.cuda.current_stream(device)
    key = (device.index, torch_stream.cuda_stream)
    stream = _streams.get(key)
    if stream is None:
        if hasattr(cupy.cuda.Stream, 'from_external') and hasattr(
                torch_stream, '__cuda_stream__'):
            stream = cupy.cuda.Stream.from_external(torch_stream)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', DeprecationWarning)
                stream = cupy.cuda.ExternalStream(torch_stream.cuda_stream,
                                                  device.index)
        _streams[key] = stream
    return stream


def _launch(device: torch.device, kernel: str, grid, block, args) -> None:
    """Launch on torch's current stream; tensors in ``args`` go zero-copy.

    A tensor is passed as its raw device pointer (a 64-bit value, what a
    ``T*`` parameter holds): no CuPy array is built, so a launch neither
    allocates nor queries the pointer's attributes, which keeps it cheap and
    legal inside a CUDA-graph capture (torch's current stream is then the
    capturing stream, and the launch is recorded into the graph).
    """
    import numpy as np  # noqa: PLC0415  (a CuPy dependency)

    cupy = _cupy()
    with cupy.cuda.Device(device.index), _stream(device):
        converted = tuple(
            np.uint64(arg.data_ptr()) if isinstance(arg, torch.Tensor)
            else arg for arg in args)
        _function(device, kernel)(grid, block, converted)


def pack_rows(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Pack a contiguous CUDA tensor ``(..., K)`` along its last axis.

    Args:
        x: Contiguous CUDA tensor of a dtype in :data:`PACK_DTYPES`.
        mode: ``'sign'`` (bit = x >= 0; bool: bit = x) or ``'mask'``
            (bit = x != 0).

    Returns:
        ``int32`` tensor ``(..., ceil(K / 32))``.
    """
    import numpy as np  # noqa: PLC0415  (a CuPy dependency)

    suffix, raw = PACK_DTYPES[x.dtype]
    kernel = ('mmdidb_pack_u8_nonzero' if suffix == 'u8' else
              f'mmdidb_pack_{suffix}_{mode}')
    length = x.shape[-1]
    words = (length + 31) // 32
    out = torch.empty(x.shape[:-1] + (words,), dtype=torch.int32,
                      device=x.device)
    total = out.numel()
    if total == 0:
        return out
    rows = total // words
    warps = PACK_THREADS // 32
    sms = torch.cuda.get_device_properties(x.device).multi_processor_count
    blocks = max(1, min((total + warps - 1) // warps, sms * 32))
    _launch(x.device, kernel, (blocks,), (PACK_THREADS,),
            (x.detach().view(raw), out, np.int64(rows), np.int32(length),
             np.int32(words)))
    return out


def _pack_grid(x: torch.Tensor, total: int):
    warps = PACK_THREADS // 32
    sms = torch.cuda.get_device_properties(x.device).multi_processor_count
    return (max(1, min((total + warps - 1) // warps, sms * 32)), )


def pack_shift_rows(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Pack ``x + shift >= 0`` along the last axis in one pass.

    Args:
        x: Contiguous CUDA ``(..., K)`` float32 / float16 tensor.
        shift: Contiguous ``(K,)`` tensor of the same dtype and device.

    Returns:
        ``int32`` tensor ``(..., ceil(K / 32))``.
    """
    import numpy as np  # noqa: PLC0415  (a CuPy dependency)

    suffix, raw = FUSED_DTYPES[x.dtype]
    length = x.shape[-1]
    words = (length + 31) // 32
    out = torch.empty(x.shape[:-1] + (words,), dtype=torch.int32,
                      device=x.device)
    total = out.numel()
    if total == 0:
        return out
    _launch(x.device, f'mmdidb_pack_shift_{suffix}', _pack_grid(x, total),
            (PACK_THREADS,),
            (x.detach().view(raw), shift.detach().view(raw), out,
             np.int64(total // words), np.int32(length), np.int32(words)))
    return out


def bmm_scaled(a: torch.Tensor, b: torch.Tensor, k: int,
               scale: torch.Tensor, bias: Optional[torch.Tensor],
               dtype: torch.dtype) -> torch.Tensor:
    """``(k - 2 popc(a ^ b)) * scale + bias`` on the tensor cores.

    Args:
        a: ``int32`` ``(M, W)`` on a CUDA device (sm_80+), contiguous.
        b: ``int32`` ``(N, W)``, contiguous, same device.
        k: Number of valid bits.
        scale: ``(N,)`` contiguous, of ``dtype``.
        bias: ``(N,)`` contiguous, of ``dtype``, or None.
        dtype: ``torch.float32`` or ``torch.float16``.

    Returns:
        ``(M, N)`` tensor of ``dtype``.
    """
    import numpy as np  # noqa: PLC0415  (a CuPy dependency)

    m, words = a.shape
    n = b.shape[0]
    out = torch.empty((m, n), dtype=dtype, device=a.device)
    if out.numel() == 0:
        return out
    if words == 0:
        counts = torch.zeros((m, n), dtype=dtype, device=a.device)
        out = counts * scale
        return out + bias if bias is not None else out
    tile_m, tile_n, threads = PRODUCT_TILE['mma']
    check_row_tiles(m, tile_m)
    suffix = FUSED_DTYPES[dtype][0]
    grid = ((n + tile_n - 1) // tile_n, (m + tile_m - 1) // tile_m, 1)
    _launch(a.device, f'mmdidb_bmm_mma_xor_{suffix}', grid, (threads,),
            (a, b, out, np.int32(m), np.int32(n), np.int32(words),
             np.int32(k), np.int64(0), np.int64(0), scale,
             bias if bias is not None else np.uint64(0)))
    return out


def check_row_tiles(m: int, tile_m: int) -> None:
    """Refuse more rows than one launch of a product kernel covers.

    The product kernels put the row tiles of a matrix on ``blockIdx.y``,
    which CUDA limits to :data:`MAX_GRID_Y` blocks: a larger grid would
    fail at launch with an unhelpful driver error.

    Args:
        m (int): Rows of the left operand, per matrix.
        tile_m (int): Rows of the kernel's output tile.

    Raises:
        ValueError: ``m`` is more than ``MAX_GRID_Y * tile_m``; the message
            names that limit.
    """
    if (m + tile_m - 1) // tile_m > MAX_GRID_Y:
        raise ValueError(f'a_packed has {m} rows; the CUDA kernels take at '
                         f'most {MAX_GRID_Y * tile_m} rows per matrix')


def bmm(a: torch.Tensor, b: torch.Tensor, k: int, batch: torch.Size,
        path: str, op: str) -> torch.Tensor:
    """Run a product kernel; the operands are validated by the caller.

    Args:
        a: ``int32`` ``(..., M, W)`` on a CUDA device, contiguous.
        b: ``int32`` ``(..., N, W)`` on the same device, contiguous.
        k: Number of valid bits along the reduction axis.
        batch: Broadcast leading shape of ``a`` and ``b``.
        path: ``'mma'`` or ``'popc'``.
        op: ``'xor'`` (+-1 x +-1) or ``'and'`` ({0,1} x +-1).

    Returns:
        ``int32`` tensor ``batch + (M, N)``.
    """
    import numpy as np  # noqa: PLC0415  (a CuPy dependency)

    m, words = a.shape[-2], a.shape[-1]
    n = b.shape[-2]
    out = torch.empty(tuple(batch) + (m, n), dtype=torch.int32,
                      device=a.device)
    if out.numel() == 0:
        return out
    if words == 0:
        return out.zero_()
    a3, stride_a = batch_view(a, batch, m, words)
    b3, stride_b = batch_view(b, batch, n, words)
    out3 = out.view(-1, m, n)
    tile_m, tile_n, threads = PRODUCT_TILE[path]
    check_row_tiles(m, tile_m)
    kernel = f'mmdidb_bmm_{path}_{op}'
    total = out3.shape[0]
    for start in range(0, total, MAX_GRID_Z):
        stop = min(total, start + MAX_GRID_Z)
        a_part = a3[start:stop] if stride_a else a3
        b_part = b3[start:stop] if stride_b else b3
        grid = ((n + tile_n - 1) // tile_n, (m + tile_m - 1) // tile_m,
                stop - start)
        _launch(a.device, kernel, grid, (threads,),
                (a_part, b_part, out3[start:stop], np.int32(m), np.int32(n),
                 np.int32(words), np.int32(k), np.int64(stride_a),
                 np.int64(stride_b)))
    return out
