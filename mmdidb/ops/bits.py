"""Bit helpers of the torch reference path: word size, tail masks, popcount.

Everything here is plain torch integer arithmetic so it runs on any device.
Packed words are ``int32`` tensors; to keep the arithmetic free of sign-bit
and overflow surprises, words are widened to ``int64`` holding the unsigned
value in ``[0, 2**32)`` before any shift or subtraction.
"""
import torch

WORD_BITS = 32
_LOW32 = 0xFFFFFFFF


def num_words(length: int) -> int:
    """Number of 32-bit words that hold ``length`` bits.

    Args:
        length: Number of bits (elements along the packed axis).

    Returns:
        ``ceil(length / 32)``.
    """
    return (length + WORD_BITS - 1) // WORD_BITS


def tail_mask(length: int) -> int:
    """Mask of the valid bits of the last word for ``length`` bits.

    Args:
        length: Number of bits along the packed axis.

    Returns:
        The unsigned mask (``0xFFFFFFFF`` when ``length`` is a multiple of 32).
    """
    rest = length % WORD_BITS
    return _LOW32 if rest == 0 else (1 << rest) - 1


def to_unsigned64(words: torch.Tensor, length: int) -> torch.Tensor:
    """Widen packed ``int32`` words to ``int64`` and clear the padding bits.

    Clearing the bits past ``length`` makes every product independent of what
    the padding holds.

    Args:
        words: ``int32`` tensor of packed words, words on the last axis.
        length: Number of valid bits along the last axis.

    Returns:
        A new ``int64`` tensor with values in ``[0, 2**32)``.
    """
    wide = words.to(torch.int64) & _LOW32
    if wide.shape[-1] > 0 and length % WORD_BITS:
        wide[..., -1] &= tail_mask(length)
    return wide


def popcount64(x: torch.Tensor) -> torch.Tensor:
    """Population count of non-negative ``int64`` values below ``2**32``.

    SWAR bit tricks; all intermediates stay non-negative and below ``2**57``,
    so no sign bit or overflow is ever involved.

    Args:
        x: ``int64`` tensor with values in ``[0, 2**32)``.

    Returns:
        ``int64`` tensor of the same shape with the number of set bits.
    """
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return ((x * 0x01010101) >> 24) & 0xFF
