"""Bit packing and exact binary matrix products (docs/method.md).

Importing this package needs torch alone; CuPy is imported lazily, the first
time a CUDA tensor comes in. CPU tensors use native C kernels
(:mod:`mmdidb.ops.cpu_bits`: AVX-512, AVX2 or portable C, built on first use
with the system C compiler; the torch path after one warning when none is
there, or with ``MMDIDB_CPU_KERNELS=0``); CUDA tensors use CuPy/NVRTC
kernels (tensor cores on sm_80+, ``__popc`` below), and fall back, with one
warning, to the torch path when CuPy or NVRTC is unusable (an error instead
with ``MMDIDB_OPS_STRICT=1``). The pure-torch path
(:mod:`mmdidb.ops.reference`) is the reference every kernel is tested
against. See :mod:`mmdidb.ops.backend` for forcing a backend; while
``torch.compile`` or ``torch.export`` traces, each call is one custom op
(:mod:`mmdidb.ops.library`).

Conventions: bit 1 <-> +1, ``sign(0) = +1``, 32 bits per ``int32`` word, LSB
first, tail bits 0; both operands of a product are packed along the reduction
axis. Example::

    a = pack_signs(x)               # x: (M, K) float -> (M, ceil(K/32))
    b = pack_signs(w)               # w: (N, K) float -> (N, ceil(K/32))
    y = bmm_pm1(a, b, k=x.shape[-1])  # == sign(x) @ sign(w).T, int32 (M, N)

Fused forms of the deployed linear layer (:mod:`mmdidb.ops.fused`):
``pack_shifted_signs(x, beta)`` (RSign + pack in one pass) and
``bmm_pm1_scaled(a, b, k, scale, bias)`` (scale and bias in the GEMM's
epilogue) and ``sign_linear(x, shift, w, scale, bias)`` (both in one call),
equal to the unfused formulas bit for bit.
"""
from .backend import PACK_BACKENDS, PRODUCT_BACKENDS
from .fused import (
    bmm_pm1_bands,
    bmm_pm1_scaled,
    pack_shifted_signs,
    sign_linear,
)
from .packing import pack_mask, pack_signs, unpack_mask, unpack_signs
from .products import bmm_mask_pm1, bmm_pm1

__all__ = [
    'PACK_BACKENDS', 'PRODUCT_BACKENDS', 'bmm_mask_pm1', 'bmm_pm1',
    'bmm_pm1_bands',
    'bmm_pm1_scaled', 'pack_mask', 'pack_shifted_signs', 'pack_signs',
    'sign_linear', 'unpack_mask', 'unpack_signs'
]
