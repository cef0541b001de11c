"""Hopper's 1-bit warpgroup tensor cores (``wgmma ... b1.and.popc``, sm_90a).

``csrc/bmm_wgmma.cu`` is compiled by nvcc for the architecture-specific
target sm_90a (NVRTC's handling of ``sm_90a`` is not guaranteed) into a
cubin that CuPy loads with ``RawModule(path=...)``. The cubin is built on
first use into a cache folder (``$MMDIDB_CUBIN_DIR``, default
``~/.cache/mmdidb``), keyed by the source's hash, or taken from
``$MMDIDB_WGMMA_CUBIN`` when that names a prebuilt file.

``backend='auto'`` does not pick this path: it runs when named
(``backend='wgmma'``, ``MMDIDB_OPS_BACKEND=wgmma``, :func:`bmm_pm1_wgmma`);
docs/benchmarks.md compares it with the ``mma.sync`` kernel. Named on a GPU
other than compute capability 9.0, or without nvcc / CuPy, it raises.
"""
import hashlib
import os
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from . import compile_check, cuda_backend
from .validation import batch_view, check_pair

SOURCE = cuda_backend.SOURCE_DIR / 'bmm_wgmma.cu'
KERNELS = ('mmdidb_bmm_wgmma_xor', 'mmdidb_bmm_wgmma_and')
ARCH = 'sm_90a'
#: Output tile and block size, as #defined in bmm_wgmma.cu.
TILE = (64, 128, 128)
#: int32 words of one k256 wgmma step and of one shared-memory stage, as
#: #defined in bmm_wgmma.cu.
STEP_WORDS, STAGE_WORDS = 8, 32
#: The no-swizzle K-major layout of bmm_wgmma.cu: leading (K) and stride
#: (8-row group) byte offsets of its core matrices.
LBO, SBO = 128, 256

_lock = threading.Lock()
_functions: Dict[tuple, object] = {}
_reasons: Dict[int, Optional[str]] = {}


def cubin_path() -> Path:
    """Where the sm_90a cubin of the current source is (or will be) cached."""
    override = os.environ.get('MMDIDB_WGMMA_CUBIN')
    if override:
        return Path(override)
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    root = Path(os.environ.get('MMDIDB_CUBIN_DIR',
                               Path.home() / '.cache' / 'mmdidb'))
    return root / f'bmm_wgmma_{ARCH}_{digest}.cubin'


def build_cubin(path: Optional[Path] = None) -> Path:
    """Compile ``bmm_wgmma.cu`` for sm_90a with nvcc (no GPU needed).

    Args:
        path: Output file (default: :func:`cubin_path`).

    Returns:
        The cubin's path.

    Raises:
        FileNotFoundError: No nvcc.
        CudaCompileError: nvcc failed.
    """
    path = Path(path or cubin_path())
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f'.{os.getpid()}.tmp')
    compile_check.compile_with_nvcc(SOURCE, ARCH, output=tmp)
    tmp.replace(path)
    return path


def unusable_reason(device: torch.device) -> Optional[str]:
    """Why the wgmma kernels cannot run on ``device``, or None.

    Loads the cubin on the first call per device (building it if needed).
    """
    index = device.index if device.index is not None else 0
    with _lock:
        if index in _reasons:
            return _reasons[index]
        reason = None
        if not torch.cuda.is_available():
            reason = 'torch reports no CUDA device'
        elif torch.cuda.get_device_capability(index) != (9, 0):
            major, minor = torch.cuda.get_device_capability(index)
            reason = (f'wgmma b1 needs an sm_90 GPU (H100/H200), cuda:{index} '
                      f'is sm_{major}{minor}')
        else:
            reason = cuda_backend.unusable_reason(torch.device('cuda', index))
            if reason is None:
                try:
                    import cupy  # noqa: PLC0415
                    path = build_cubin()
                    with cupy.cuda.Device(index):
                        module = cupy.RawModule(path=str(path))
                        for kernel in KERNELS:
                            _functions[(index, kernel)] = \
                                module.get_function(kernel)
                except Exception as err:  # noqa: BLE001  (nvcc, driver, ...)
                    text = ' '.join(str(err).split())
                    reason = f'{type(err).__name__}: {text[:500]}'
        _reasons[index] = reason
        return reason


def k_steps(words: int) -> int:
    """The k256 wgmma steps that hold the words of a packed row.

    One step multiplies 256 bits (:data:`STEP_WORDS` words); the kernel is
    given this count and issues no step past the last word, so a packed
    width that is not a multiple of :data:`STAGE_WORDS` does not multiply
    the zero padding of its last stage.

    Args:
        words (int): Packed width ``W`` in int32 words.

    Returns:
        int: ``ceil(W / 8)``.
    """
    return -(-words // STEP_WORDS)


def stage_steps(words: int) -> List[int]:
    """The k256 steps the kernel issues for each stage of a packed row.

    Args:
        words (int): Packed width ``W`` in int32 words.

    Returns:
        list[int]: One entry per 32-word stage: 4, and fewer in the last
        stage when ``W`` is not a multiple of 32 (e.g. ``[2]`` for
        ``W = 12``, ``[4, 1]`` for ``W = 40``), as the kernel computes them
        from :func:`k_steps`.
    """
    per_stage = STAGE_WORDS // STEP_WORDS
    total = k_steps(words)
    return [min(per_stage, total - w0 // STEP_WORDS)
            for w0 in range(0, words, STAGE_WORDS)]


def launch_grid(m: int, n: int, matrices: int) -> Tuple[int, int, int]:
    """The grid of one wgmma launch, checked against CUDA's grid limits.

    Args:
        m (int): Rows of ``A`` per matrix.
        n (int): Rows of ``B`` per matrix.
        matrices (int): Matrices in the launch (the broadcast batch).

    Returns:
        tuple[int, int, int]: Blocks along x (column tiles), y (row tiles)
        and z (matrices).

    Raises:
        ValueError: More matrices or more row tiles than a grid holds; the
            message names the limit.
    """
    tile_m, tile_n, _ = TILE
    if matrices > cuda_backend.MAX_GRID_Z:
        raise ValueError(f'at most {cuda_backend.MAX_GRID_Z} matrices per '
                         'call on the wgmma path')
    cuda_backend.check_row_tiles(m, tile_m)
    return (n + tile_n - 1) // tile_n, (m + tile_m - 1) // tile_m, matrices


def launch_bmm(a: torch.Tensor, b: torch.Tensor, k: int, op: str,
               lbo: int = LBO, sbo: int = SBO) -> torch.Tensor:
    """Run a wgmma product on validated operands (see :func:`bmm_pm1_wgmma`)."""
    import numpy as np  # noqa: PLC0415  (a CuPy dependency)

    device = a.device
    m, words = a.shape[-2], a.shape[-1]
    n = b.shape[-2]
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out = torch.empty(tuple(batch) + (m, n), dtype=torch.int32,
                      device=device)
    if out.numel() == 0:
        return out
    if words == 0:
        return out.zero_()
    a3, stride_a = batch_view(a, batch, m, words)
    b3, stride_b = batch_view(b, batch, n, words)
    out3 = out.view(-1, m, n)
    grid = launch_grid(m, n, out3.shape[0])
    threads = TILE[2]
    cupy = cuda_backend._cupy()
    function = _functions[(device.index or 0, f'mmdidb_bmm_wgmma_{op}')]
    with cupy.cuda.Device(device.index), cuda_backend._stream(device):
        function(grid, (threads, ),
                 (np.uint64(a3.data_ptr()), np.uint64(b3.data_ptr()),
                  np.uint64(out3.data_ptr()), np.int32(m), np.int32(n),
                  np.int32(words), np.int32(k), np.int32(k_steps(words)),
                  np.int64(stride_a), np.int64(stride_b), np.uint32(lbo),
                  np.uint32(sbo)))
    return out


def bmm_pm1_wgmma(a_packed: torch.Tensor, b_packed: torch.Tensor, k: int,
                  op: str = 'xor', lbo: int = LBO,
                  sbo: int = SBO) -> torch.Tensor:
    """:func:`~mmdidb.ops.bmm_pm1` (``op='xor'``) or ``bmm_mask_pm1``
    (``op='and'``) on the wgmma kernels; sm_90 only, raises elsewhere.

    Args:
        a_packed: ``int32`` ``(..., M, W)``, contiguous, CUDA.
        b_packed: ``int32`` ``(..., N, W)``, contiguous, same device.
        k: Reduction length in bits.
        op: ``'xor'`` (±1 x ±1) or ``'and'`` ({0,1} x ±1).
        lbo: Leading byte offset of the descriptors (layout probe only).
        sbo: Stride byte offset of the descriptors (layout probe only).

    Returns:
        ``int32`` ``broadcast(...) + (M, N)``.

    Raises:
        RuntimeError: The wgmma kernels cannot run here (the reason says
            why: not sm_90, no nvcc, no CuPy).
        ValueError: Bad operands (see :func:`~mmdidb.ops.bmm_pm1`).
    """
    k, _ = check_pair(a_packed, b_packed, k, 'a_packed', 'b_packed')
    if op not in ('xor', 'and'):
        raise ValueError(f"op must be 'xor' or 'and', got {op!r}")
    if a_packed.device.type != 'cuda':
        raise ValueError('the wgmma kernels need CUDA tensors, got '
                         f'{a_packed.device}')
    reason = unusable_reason(a_packed.device)
    if reason is not None:
        raise RuntimeError(f'mmdidb.ops.wgmma: unusable ({reason})')
    return launch_bmm(a_packed, b_packed, k, op, lbo, sbo)
