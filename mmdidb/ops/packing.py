"""Bit packing: 32 signs (or mask bits) per ``int32`` word, LSB first.

Conventions (docs/method.md, "Where each piece lives"):

- bit 1 <-> +1, bit 0 <-> -1, and ``sign(0) = +1``: the bit is ``x >= 0``
  (so ``-0.0`` packs as +1 too). NaN packs as -1 (bit 0), as ``NaN >= 0`` is
  False; bool tensors pack True as +1 and False as -1.
- Mask tensors pack ``m != 0`` (NaN as 1).
- Element ``32 * w + j`` of the packed axis goes to bit ``j`` of word ``w``
  (bit 0 is the least significant); the unused bits of the last word are 0.
- The packed axis is moved to the last position: packing ``(B, K, N)`` along
  ``dim=1`` gives ``(B, N, ceil(K / 32))``. Unpacking puts it back.
"""
from typing import Optional

import torch

from . import cpu_bits, cuda_backend, library
from .backend import resolve_pack_backend
from .bits import WORD_BITS, num_words
from .validation import check_length, check_tensor, check_words


def _bits_to_words(bits: torch.Tensor) -> torch.Tensor:
    """Pack a bool tensor ``(..., K)`` into ``int32`` words ``(..., W)``."""
    length = bits.shape[-1]
    words = num_words(length)
    pad = words * WORD_BITS - length
    if pad:
        zeros = bits.new_zeros(bits.shape[:-1] + (pad,))
        bits = torch.cat([bits, zeros], dim=-1)
    bits = bits.reshape(bits.shape[:-1] + (words, WORD_BITS))
    # One pass per bit position keeps the memory at one int32 per word.
    # Bits 0..30 sum to at most 2**31 - 1; bit 31 is the sign bit, set with
    # a multiplication by -2**31 (no shift into the sign bit, no overflow).
    out = torch.zeros(bits.shape[:-1], dtype=torch.int32, device=bits.device)
    for j in range(WORD_BITS - 1):
        out |= bits[..., j].to(torch.int32) << j
    out |= bits[..., WORD_BITS - 1].to(torch.int32) * (-2**31)
    return out


def _check_dim(dim, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f'dim must be an int, got {type(dim).__name__}')
    if not -ndim <= dim < ndim:
        raise ValueError(f'dim={dim} is out of range for a {ndim}-d tensor')
    return dim


def _sign_bits(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.bool:
        return x
    if x.is_complex():
        raise TypeError(f'x must be a real tensor, got {x.dtype}')
    return x >= 0


def _pack(x: torch.Tensor, dim: int, mode: str,
          backend: Optional[str]) -> torch.Tensor:
    if x.dim() == 0:
        raise ValueError('cannot pack a 0-d tensor')
    dim = _check_dim(dim, x.dim()) % x.dim()
    if backend is None and library.tracing():
        op = _pack_signs_op if mode == 'sign' else _pack_mask_op
        return op(x.detach(), dim)
    x = x.detach()
    path = resolve_pack_backend(backend, x.device)
    if path == 'cpu' and x.dtype == torch.float32:
        if dim == x.dim() - 2:
            # along the tokens of a (..., N, C) tensor: read it row by row
            # instead of transposing it first
            return cpu_bits.pack_cols(x, mask=mode == 'mask')
        return cpu_bits.pack_rows(x.movedim(dim, -1), mask=mode == 'mask')
    if path == 'cpu' and backend == 'cpu':
        raise TypeError("backend='cpu' packs float32 tensors, got "
                        f'{x.dtype}; use the torch backend')
    x = x.movedim(dim, -1)
    if path == 'cuda':
        if x.dtype in cuda_backend.PACK_DTYPES:
            return cuda_backend.pack_rows(x.contiguous(), mode)
        if backend == 'cuda':
            raise TypeError(
                "backend='cuda' packs float16/bfloat16/float32/float64/bool "
                f'tensors, got {x.dtype}; use the torch backend')
        # 'auto': integer dtypes take the torch path.
    bits = _sign_bits(x) if mode == 'sign' else x != 0
    return _bits_to_words(bits)


def pack_signs(x: torch.Tensor, dim: int = -1,
               backend: Optional[str] = None) -> torch.Tensor:
    """Pack the signs of ``x`` along ``dim``, 32 per ``int32`` word.

    Args:
        x: Real (float, integer) or bool tensor; ``bit = x >= 0`` (so
            ``sign(0) = +1``), for bool ``bit = x``.
        dim: Axis to pack; it becomes the last axis of the result.
        backend: ``None``/``'auto'`` (the C kernel for CPU float32 tensors,
            the CUDA kernel for CUDA float/bool tensors when CuPy works,
            else torch; integer dtypes always use torch), ``'torch'``,
            ``'cpu'`` or ``'cuda'``. See :mod:`mmdidb.ops.backend`.

    Returns:
        ``int32`` tensor: ``x`` with ``dim`` moved last and its ``K`` elements
        replaced by ``ceil(K / 32)`` words (LSB first, tail bits 0).

    Raises:
        TypeError: ``x`` is not a tensor or is complex.
        ValueError: ``x`` is 0-d, or ``dim`` is out of range.
    """
    check_tensor(x, 'x')
    return _pack(x, dim, 'sign', backend)


def pack_mask(m: torch.Tensor, dim: int = -1,
              backend: Optional[str] = None) -> torch.Tensor:
    """Pack a {0, 1} mask along ``dim``, 32 bits per ``int32`` word.

    Args:
        m: Tensor of any real dtype or bool; ``bit = m != 0``.
        dim: Axis to pack; it becomes the last axis of the result.
        backend: As for :func:`pack_signs`.

    Returns:
        ``int32`` tensor: ``m`` with ``dim`` moved last and packed.

    Raises:
        TypeError: ``m`` is not a tensor.
        ValueError: ``m`` is 0-d, or ``dim`` is out of range.
    """
    check_tensor(m, 'm')
    return _pack(m, dim, 'mask', backend)


def _unpack_bits(packed: torch.Tensor, length, dim: int) -> torch.Tensor:
    check_tensor(packed, 'packed')
    if packed.dtype != torch.int32:
        raise TypeError(f'packed must have dtype torch.int32, got {packed.dtype}')
    if packed.dim() == 0:
        raise ValueError('packed must have at least 1 dimension')
    length = check_length(length, 'length')
    check_words(packed.shape[-1], length, 'length', 'packed')
    # An arithmetic right shift followed by & 1 reads bit j of an int32
    # correctly for every j, the sign bit included.
    shifts = torch.arange(WORD_BITS, dtype=torch.int32, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    bits = bits.reshape(packed.shape[:-1] + (-1,))[..., :length]
    return bits.movedim(-1, _check_dim(dim, bits.dim()))


def unpack_signs(packed: torch.Tensor, length: int, dim: int = -1,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unpack sign bits into a +-1 tensor; inverse of :func:`pack_signs`.

    Args:
        packed: ``int32`` tensor, words on the last axis.
        length: Number of elements ``K`` that were packed
            (``packed.shape[-1]`` must be ``ceil(K / 32)``).
        dim: Where the unpacked axis goes in the result.
        dtype: Result dtype.

    Returns:
        Tensor of +1 (bit 1) and -1 (bit 0).

    Raises:
        TypeError: ``packed`` is not an ``int32`` tensor, or ``length`` is
            not an int.
        ValueError: ``length`` does not match the number of words.
    """
    bits = _unpack_bits(packed, length, dim)
    return (bits * 2 - 1).to(dtype)


def unpack_mask(packed: torch.Tensor, length: int, dim: int = -1,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unpack mask bits into a {0, 1} tensor; inverse of :func:`pack_mask`.

    Args:
        packed: ``int32`` tensor, words on the last axis.
        length: Number of elements ``K`` that were packed.
        dim: Where the unpacked axis goes in the result.
        dtype: Result dtype.

    Returns:
        Tensor of 1 (bit 1) and 0 (bit 0).

    Raises:
        TypeError: ``packed`` is not an ``int32`` tensor, or ``length`` is
            not an int.
        ValueError: ``length`` does not match the number of words.
    """
    return _unpack_bits(packed, length, dim).to(dtype)


@torch.library.custom_op('mmdidb::pack_signs', mutates_args=())
def _pack_signs_op(x: torch.Tensor, dim: int) -> torch.Tensor:
    return pack_signs(x, dim)


@_pack_signs_op.register_fake
def _(x, dim):
    return x.new_empty(library.packed_shape(x, dim), dtype=torch.int32)


@torch.library.custom_op('mmdidb::pack_mask', mutates_args=())
def _pack_mask_op(x: torch.Tensor, dim: int) -> torch.Tensor:
    return pack_mask(x, dim)


@_pack_mask_op.register_fake
def _(x, dim):
    return x.new_empty(library.packed_shape(x, dim), dtype=torch.int32)
