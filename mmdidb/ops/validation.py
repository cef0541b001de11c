"""Argument checks shared by the packing and product functions.

Every check raises with the argument's name in the message, so a wrong call
fails loudly instead of returning a silently wrong number.
"""
import operator
from typing import Tuple

import torch

from .bits import num_words


def check_tensor(x, name: str) -> None:
    """Raise ``TypeError`` unless ``x`` is a ``torch.Tensor``.

    Args:
        x: The value to check.
        name: Argument name used in the message.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, got {type(x).__name__}')


def check_packed(x, name: str) -> None:
    """Check a packed operand: an ``int32``, contiguous tensor, 2-D or more.

    Args:
        x: The packed operand.
        name: Argument name used in the messages.

    Raises:
        TypeError: Not a tensor, or its dtype is not ``torch.int32``.
        ValueError: Fewer than 2 dimensions, or not contiguous.
    """
    check_tensor(x, name)
    if x.dtype != torch.int32:
        raise TypeError(
            f'{name} must have dtype torch.int32 (packed words), got {x.dtype}')
    if x.dim() < 2:
        raise ValueError(
            f'{name} must have shape (..., rows, words), got {tuple(x.shape)}')
    if not x.is_contiguous():
        raise ValueError(
            f'{name} must be contiguous; call .contiguous() on it first '
            '(the kernels read raw row-major memory)')


def check_length(length, name: str) -> int:
    """Check a bit count: a non-negative integer (not a bool).

    Args:
        length: The value to check.
        name: Argument name used in the messages.

    Returns:
        ``length`` as a Python int.

    Raises:
        TypeError: Not an integer.
        ValueError: Negative.
    """
    if isinstance(length, bool):
        raise TypeError(f'{name} must be an int, got bool')
    try:
        value = operator.index(length)
    except TypeError:
        raise TypeError(
            f'{name} must be an int, got {type(length).__name__}') from None
    if value < 0:
        raise ValueError(f'{name} must be >= 0, got {value}')
    return value


def check_words(words: int, length: int, length_name: str,
                words_name: str) -> None:
    """Check that ``words`` 32-bit words hold exactly ``length`` bits.

    Args:
        words: Size of the packed (last) axis.
        length: Claimed number of bits.
        length_name: Name of the bit-count argument.
        words_name: Name of the packed argument.

    Raises:
        ValueError: ``words != ceil(length / 32)``.
    """
    expected = num_words(length)
    if words != expected:
        raise ValueError(
            f'{length_name}={length} needs ceil({length}/32)={expected} words '
            f'per row, but {words_name} has {words} on its last axis')


def check_same_device(a: torch.Tensor, b: torch.Tensor, a_name: str,
                      b_name: str) -> None:
    """Raise ``ValueError`` unless both tensors live on the same device.

    Args:
        a: First tensor.
        b: Second tensor.
        a_name: Name of the first argument.
        b_name: Name of the second argument.
    """
    if a.device != b.device:
        raise ValueError(
            f'{a_name} is on {a.device} but {b_name} is on {b.device}; '
            'move both to the same device')


def batch_view(x: torch.Tensor, batch: torch.Size, rows: int, words: int):
    """Flatten a packed operand to ``(b, rows, words)`` for a kernel.

    Args:
        x: ``(..., rows, words)``, contiguous.
        batch: The broadcast leading shape of the product.
        rows: Rows per matrix.
        words: Words per row.

    Returns:
        ``(view, stride)``: the operand as ``(b, rows, words)`` and the
        words between its matrices; an operand holding a single matrix is
        shared by the batch for free (stride 0), any other broadcast is
        materialised.
    """
    lead = x.shape[:-2]
    if tuple(lead) == tuple(batch):
        return x.reshape(-1, rows, words), rows * words
    if lead.numel() == 1:
        return x.reshape(1, rows, words), 0
    full = x.expand(tuple(batch) + (rows, words)).contiguous()
    return full.reshape(-1, rows, words), rows * words


def check_pair(a: torch.Tensor, b: torch.Tensor, k, a_name: str,
               b_name: str) -> Tuple[int, torch.Size]:
    """Check the two packed operands of a binary product.

    Args:
        a: Left operand, ``(..., M, W)``.
        b: Right operand, ``(..., N, W)``.
        k: Number of valid bits along the reduction axis.
        a_name: Name of the left argument.
        b_name: Name of the right argument.

    Returns:
        ``(k, batch_shape)``: ``k`` as an int and the broadcast leading shape.

    Raises:
        TypeError: Wrong type or dtype (see :func:`check_packed`).
        ValueError: Bad shapes, word counts, devices or contiguity.
    """
    check_packed(a, a_name)
    check_packed(b, b_name)
    k = check_length(k, 'k')
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f'{a_name} has {a.shape[-1]} words per row but {b_name} has '
            f'{b.shape[-1]}; both must be packed along the same reduction axis')
    check_words(a.shape[-1], k, 'k', a_name)
    check_same_device(a, b, a_name, b_name)
    try:
        batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f'leading (batch) dims of {a_name} {tuple(a.shape[:-2])} and '
            f'{b_name} {tuple(b.shape[:-2])} do not broadcast') from None
    return k, batch
