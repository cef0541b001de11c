"""Public binary matrix products on packed operands.

Both operands are packed along the reduction axis (``k`` bits, ``W =
ceil(k / 32)`` words per row), so the right factor is given transposed: its
``N`` columns are the rows of the packed tensor. Leading (batch) dims
broadcast like ``torch.matmul``'s; on CUDA an operand holding a single
matrix is broadcast for free, any other broadcast is materialised first.
"""
from typing import Optional

import torch

from . import cpu_bits, cuda_backend, library
from .backend import resolve_product_backend
from .reference import bmm_mask_pm1_torch, bmm_pm1_torch
from .validation import check_pair


def bmm_pm1(a_packed: torch.Tensor, b_packed: torch.Tensor, k: int,
            backend: Optional[str] = None) -> torch.Tensor:
    """Exact product of two +-1 matrices given as packed sign bits.

    Computes ``k - 2 * popcount(a XOR b)`` for every pair of rows, which
    equals ``A_pm1 @ B_pm1.T`` of the unpacked +-1 tensors exactly.

    Args:
        a_packed: ``int32`` ``(..., M, W)``, rows of ``A`` packed with
            :func:`~mmdidb.ops.pack_signs`; contiguous.
        b_packed: ``int32`` ``(..., N, W)``, rows of ``B`` (the columns of the
            right factor) packed the same way; contiguous, same device.
        k: Length of the reduction axis in bits; ``W == ceil(k / 32)``. Bits
            past ``k`` in the last word are ignored.
        backend: ``None``/``'auto'``, ``'torch'``, ``'cpu'`` (the native
            C kernels, CPU tensors), ``'mma'`` (tensor cores, sm_80+),
            ``'popc'`` (CUDA cores) or ``'wgmma'`` (Hopper's warpgroup
            tensor cores, sm_90); see :mod:`mmdidb.ops.backend`.

    Returns:
        ``int32`` tensor ``broadcast(...) + (M, N)`` on the operands' device.

    Raises:
        TypeError: An operand is not an ``int32`` tensor, or ``k`` is not an
            int.
        ValueError: Word counts differ or do not match ``k``, an operand is
            not contiguous, the devices differ, or the batch dims do not
            broadcast.
        RuntimeError: A forced CUDA backend cannot run.
    """
    k, batch = check_pair(a_packed, b_packed, k, 'a_packed', 'b_packed')
    if backend is None and library.tracing():
        return _bmm_pm1_op(a_packed, b_packed, k)
    path = resolve_product_backend(backend, a_packed.device)
    if path == 'torch':
        return bmm_pm1_torch(a_packed, b_packed, k)
    if path == 'cpu':
        return cpu_bits.bgemm(a_packed, b_packed, k, 'xor', batch)
    if path == 'wgmma':
        from . import wgmma  # noqa: PLC0415  (sm_90 only, loaded late)
        return wgmma.launch_bmm(a_packed, b_packed, k, 'xor')
    return cuda_backend.bmm(a_packed, b_packed, k, batch, path, 'xor')


def bmm_mask_pm1(mask_packed: torch.Tensor, v_packed: torch.Tensor, k: int,
                 backend: Optional[str] = None) -> torch.Tensor:
    """Exact product of a {0, 1} matrix and a +-1 matrix, both packed.

    Computes ``2 * popcount(mask AND v) - popcount(mask)`` for every pair of
    rows, which equals ``Mask @ V`` exactly, with ``V`` of shape ``(k, N)``
    packed along ``k`` (``pack_signs(V, dim=-2)`` gives ``(N, W)``).

    Args:
        mask_packed: ``int32`` ``(..., M, W)``, rows of the mask packed with
            :func:`~mmdidb.ops.pack_mask`; contiguous.
        v_packed: ``int32`` ``(..., N, W)``, the columns of ``V`` packed with
            :func:`~mmdidb.ops.pack_signs`; contiguous, same device.
        k: Length of the reduction axis in bits; ``W == ceil(k / 32)``.
        backend: As for :func:`bmm_pm1`.

    Returns:
        ``int32`` tensor ``broadcast(...) + (M, N)``.

    Raises:
        TypeError: As for :func:`bmm_pm1`.
        ValueError: As for :func:`bmm_pm1`.
        RuntimeError: A forced CUDA backend cannot run.
    """
    k, batch = check_pair(mask_packed, v_packed, k, 'mask_packed', 'v_packed')
    if backend is None and library.tracing():
        return _bmm_mask_pm1_op(mask_packed, v_packed, k)
    path = resolve_product_backend(backend, mask_packed.device)
    if path == 'torch':
        return bmm_mask_pm1_torch(mask_packed, v_packed, k)
    if path == 'cpu':
        return cpu_bits.bgemm(mask_packed, v_packed, k, 'and', batch)
    if path == 'wgmma':
        from . import wgmma  # noqa: PLC0415  (sm_90 only, loaded late)
        return wgmma.launch_bmm(mask_packed, v_packed, k, 'and')
    return cuda_backend.bmm(mask_packed, v_packed, k, batch, path, 'and')


@torch.library.custom_op('mmdidb::bmm_pm1', mutates_args=())
def _bmm_pm1_op(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    return bmm_pm1(a, b, k)


@_bmm_pm1_op.register_fake
def _(a, b, k):
    return a.new_empty(library.product_shape(a, b))


@torch.library.custom_op('mmdidb::bmm_mask_pm1', mutates_args=())
def _bmm_mask_pm1_op(a: torch.Tensor, b: torch.Tensor,
                     k: int) -> torch.Tensor:
    return bmm_mask_pm1(a, b, k)


@_bmm_mask_pm1_op.register_fake
def _(a, b, k):
    return a.new_empty(library.product_shape(a, b))
