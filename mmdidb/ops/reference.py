"""Pure-torch binary products: the reference and the CPU implementation.

Both products reduce to counting bits of packed words:

- +-1 x +-1: ``dot = k - 2 * popcount(a XOR b)``
- {0,1} x +-1: ``dot = 2 * popcount(a AND v) - popcount(a)``

The padding bits past ``k`` are cleared first (see
:func:`mmdidb.ops.bits.to_unsigned64`), so they never change a result. The
work is chunked over the rows of ``a`` so that the ``(rows, N, W)``
intermediate stays below :data:`CHUNK_ELEMENTS` elements.
"""
import torch

from .bits import popcount64, to_unsigned64

# About 32 MiB per int64 intermediate.
CHUNK_ELEMENTS = 1 << 22


def _count(a: torch.Tensor, b: torch.Tensor, k: int, op: str) -> torch.Tensor:
    """Return ``popcount(a op b)`` summed over words, shape ``(..., M, N)``.

    Args:
        a: ``int32`` ``(..., M, W)``.
        b: ``int32`` ``(..., N, W)``; leading dims broadcast with ``a``'s.
        k: Number of valid bits.
        op: ``'xor'`` or ``'and'``.

    Returns:
        ``int64`` tensor of bit counts.
    """
    a64 = to_unsigned64(a, k)
    b64 = to_unsigned64(b, k).unsqueeze(-3)  # (..., 1, N, W)
    m, n, words = a.shape[-2], b.shape[-2], a.shape[-1]
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    batch_size = 1
    for size in batch:
        batch_size *= size
    per_row = max(1, batch_size * n * words)
    step = max(1, CHUNK_ELEMENTS // per_row)
    parts = []
    for start in range(0, m, step):
        rows = a64[..., start:start + step, :].unsqueeze(-2)  # (..., r, 1, W)
        both = rows ^ b64 if op == 'xor' else rows & b64
        parts.append(popcount64(both).sum(-1))
    if not parts:
        return torch.zeros(tuple(batch) + (0, n), dtype=torch.int64,
                           device=a.device)
    return torch.cat(parts, dim=-2)


def bmm_pm1_torch(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """``k - 2 * popcount(a XOR b)``: the product of two +-1 matrices.

    Args:
        a: Packed +-1 rows, ``int32`` ``(..., M, W)``.
        b: Packed +-1 rows, ``int32`` ``(..., N, W)``.
        k: Length of the reduction axis in bits.

    Returns:
        ``int32`` ``(..., M, N)``.
    """
    return (k - 2 * _count(a, b, k, 'xor')).to(torch.int32)


def bmm_mask_pm1_torch(mask: torch.Tensor, v: torch.Tensor,
                       k: int) -> torch.Tensor:
    """``2 * popcount(mask AND v) - popcount(mask)``: {0,1} times +-1.

    Args:
        mask: Packed {0,1} rows, ``int32`` ``(..., M, W)``.
        v: Packed +-1 columns of the right factor, ``int32`` ``(..., N, W)``.
        k: Length of the reduction axis in bits.

    Returns:
        ``int32`` ``(..., M, N)``.
    """
    ones = popcount64(to_unsigned64(mask, k)).sum(-1, keepdim=True)
    return (2 * _count(mask, v, k, 'and') - ones).to(torch.int32)
