"""The binary products of a deployed DIDB-ViT, on packed bits (``mmdidb.ops``).

Each function takes the tensors the training graph multiplies (the ±1
activations its binarizers produce, the {0, alpha} attention) and returns
the same product, computed as an exact integer product of packed bits
(``bmm_pm1`` / ``bmm_mask_pm1``: XNOR/AND + popcount) with the
full-precision scales applied after it. So the integer part equals the
training graph's float product of ±1 values exactly; the only difference
left is the rounding of the scale multiplications (the training graph
multiplies ±scale terms inside the sum, the deployed graph multiplies the
integer sum once).

Weights are packed once (:func:`pack_binary_weight`): bit 1 <-> +1 of
``sign(W - mean_row(W))`` (``sign(0) = +1``), 32 per ``int32`` word along the
input channels, and the per-row scale ``mean_row(|W|)`` kept apart.
"""
from typing import Optional, Tuple

import torch

from mmdidb.ops import (
    bmm_mask_pm1,
    bmm_pm1,
    pack_mask,
    pack_shifted_signs,
    pack_signs,
    sign_linear,
    unpack_signs,
)


def weight_signs_and_scale(
        weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``sign(W - mean_row W)`` and ``mean_row |W|``, rows = output channels.

    The same arithmetic as :func:`mmdidb.models.layers.binarize_weight`, so
    ``signs * scale`` is the training graph's binarized weight bit for bit.

    Args:
        weight (Tensor): (out, ...) full-precision weight.

    Returns:
        tuple[Tensor, Tensor]: the centred weight flattened to (out, K)
        (its signs are the binary weight) and the (out,) scales.
    """
    flat = weight.detach().reshape(weight.shape[0], -1)
    centred = flat - flat.mean(dim=1, keepdim=True)
    scale = flat.abs().mean(dim=1)
    return centred, scale


def pack_binary_weight(
        weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pack a binary layer's weight: 1 bit per weight plus one scale per row.

    Args:
        weight (Tensor): (out, in) full-precision weight of a binary linear.

    Returns:
        tuple[Tensor, Tensor]: ``int32`` words (out, ceil(in / 32)) and the
        (out,) float scales.
    """
    centred, scale = weight_signs_and_scale(weight)
    return pack_signs(centred).contiguous(), scale.contiguous()


def binary_linear(x_pm1: torch.Tensor, weight_packed: torch.Tensor,
                  weight_scale: torch.Tensor, bias: Optional[torch.Tensor],
                  in_features: int) -> torch.Tensor:
    """``x_pm1 @ (sign(W) * scale).T + bias`` from packed weights.

    Args:
        x_pm1 (Tensor): (..., in) binarized (±1) input.
        weight_packed (Tensor): (out, ceil(in / 32)) packed weight signs.
        weight_scale (Tensor): (out,) per-row scales.
        bias (Tensor, optional): (out,) bias.
        in_features (int): ``in``, the reduction length in bits.

    Returns:
        Tensor: (..., out) in the dtype of ``x_pm1``.
    """
    lead = x_pm1.shape[:-1]
    # one 2-D product over all tokens: the weight is shared, so batching it
    # per image would only add launches
    bits = pack_signs(x_pm1.reshape(-1, in_features))
    counts = bmm_pm1(bits, weight_packed, in_features)
    # |counts| <= in_features: exact in float32, and in float16 up to 2048
    out = counts.to(x_pm1.dtype) * weight_scale.to(x_pm1.dtype)
    if bias is not None:
        out = out + bias
    return out.reshape(*lead, -1)


def binary_linear_fused(x: torch.Tensor, shift: torch.Tensor,
                        weight_packed: torch.Tensor,
                        weight_scale: torch.Tensor,
                        bias: Optional[torch.Tensor],
                        in_features: int) -> torch.Tensor:
    """RSign + :func:`binary_linear` as one op, :func:`mmdidb.ops.sign_linear`.

    ``x + shift >= 0`` is packed in one pass (no ±1 tensor; on the CPU
    straight into the GEMM's buffer) and the scale and the bias are applied
    in the GEMM's epilogue; this equals the unfused path bit for bit, so it
    returns exactly ``binary_linear(sign(x + shift), ...)``.

    Args:
        x (Tensor): (..., in) input *before* the binarizer.
        shift (Tensor): (in,) the binarizer's shift (RSign's ``beta``).
        weight_packed (Tensor): (out, ceil(in / 32)) packed weight signs.
        weight_scale (Tensor): (out,) per-row scales.
        bias (Tensor, optional): (out,) bias.
        in_features (int): ``in``.

    Returns:
        Tensor: (..., out) in the dtype of ``x``.
    """
    return sign_linear(x, shift.to(x.dtype), weight_packed,
                       weight_scale.to(x.dtype), bias)


def sign_product(q_pm1: torch.Tensor, k_pm1: torch.Tensor) -> torch.Tensor:
    """``q_pm1 @ k_pm1.transpose(-2, -1)`` of ±1 tensors, via XNOR-popcount.

    Args:
        q_pm1 (Tensor): (..., N, d) ±1 queries (heads split).
        k_pm1 (Tensor): (..., N, d) ±1 keys.

    Returns:
        Tensor: (..., N, N) integer-valued, in the dtype of ``q_pm1``.
    """
    dims = q_pm1.shape[-1]
    counts = bmm_pm1(pack_signs(q_pm1), pack_signs(k_pm1), dims)
    return counts.to(q_pm1.dtype)


def pack_shifted_heads(x: torch.Tensor, shift: torch.Tensor,
                       num_heads: int) -> torch.Tensor:
    """The signs of ``x + shift`` packed per head: RSign, head split, pack.

    The signs are packed straight from ``x`` (no ±1 tensor); the heads are
    split on the packed words when the head size is a multiple of 32 bits,
    else on the shifted floats.

    Args:
        x (Tensor): (B, N, C) queries or keys before their binarizer.
        shift (Tensor): (C,) their RSign shift.
        num_heads (int): Heads; ``C`` is a multiple of it.

    Returns:
        Tensor: ``int32`` (B, heads, N, ceil(C / heads / 32)).
    """
    dims = x.shape[-1] // num_heads
    shift = shift.reshape(-1).to(x.dtype)
    if dims % 32 == 0:
        words = pack_shifted_signs(x, shift)
        return words.unflatten(-1, (num_heads, -1)).transpose(1,
                                                               2).contiguous()
    b, n, _ = x.shape
    heads = (x + shift).reshape(b, n, num_heads, dims).transpose(1, 2)
    return pack_signs(heads)


def shifted_sign_product(q: torch.Tensor, q_shift: torch.Tensor,
                         k: torch.Tensor, k_shift: torch.Tensor,
                         num_heads: int) -> torch.Tensor:
    """Per-head ``sign(q + q_shift) @ sign(k + k_shift)ᵀ`` via XNOR-popcount.

    Equal to :func:`sign_product` of the RSign outputs, packed with
    :func:`pack_shifted_heads`.

    Args:
        q (Tensor): (B, N, C) queries before their binarizer.
        q_shift (Tensor): (C,) the queries' RSign shift.
        k (Tensor): (B, M, C) keys before their binarizer.
        k_shift (Tensor): (C,) the keys' RSign shift.
        num_heads (int): Heads; ``C`` is a multiple of it.

    Returns:
        Tensor: (B, heads, N, M) integer-valued, in the dtype of ``q``.
    """
    dims = q.shape[-1] // num_heads
    return bmm_pm1(pack_shifted_heads(q, q_shift, num_heads),
                   pack_shifted_heads(k, k_shift, num_heads),
                   dims).to(q.dtype)


def mask_value_product(attn: torch.Tensor, alpha: torch.Tensor,
                       v_pm1: torch.Tensor) -> torch.Tensor:
    """``attn @ v_pm1`` for a binarized attention ``attn = alpha * mask``.

    The mask (``attn != 0``) is packed along the keys, the ±1 values along
    the tokens, and ``alpha`` multiplies the integer product afterwards.

    Args:
        attn (Tensor): (B, heads, N, N) attention in ``{0, alpha}``.
        alpha (Tensor): (1, heads, 1, 1) positive per-head values.
        v_pm1 (Tensor): (B, heads, N, d) ±1 values, or (B, N, heads * d)
            with the heads not yet split.

    Returns:
        Tensor: (B, heads, N, d) in the dtype of ``v_pm1``.
    """
    tokens = attn.shape[-1]
    if v_pm1.dim() == 3:
        # (B, M, C) with the heads still merged: pack along the tokens in
        # place, then split the heads on the packed words (no copy of V)
        v_bits = pack_signs(v_pm1, dim=-2).unflatten(
            1, (attn.shape[1], -1))
    else:
        v_bits = pack_signs(v_pm1, dim=-2)
    counts = bmm_mask_pm1(pack_mask(attn), v_bits, tokens)
    return alpha.to(v_pm1.dtype) * counts.to(v_pm1.dtype)


def pack_kernel(weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pack a depthwise kernel (C, 1, t, t) into ``C*t*t`` bits + C scales.

    All channels go into one bit string, so the storage is exactly one bit
    per weight (a 3x3 kernel per channel would waste 23 of 32 bits).

    Args:
        weight (Tensor): (C, 1, t, t) full-precision kernel.

    Returns:
        tuple[Tensor, Tensor]: ``int32`` (1, ceil(C*t*t / 32)) words and the
        (C,) scales.
    """
    centred, scale = weight_signs_and_scale(weight)
    return pack_signs(centred.reshape(1, -1)).contiguous(), scale.contiguous()


def unpack_kernel(packed: torch.Tensor, shape: torch.Size,
                  dtype: torch.dtype) -> torch.Tensor:
    """The ±1 kernel of shape ``shape`` from :func:`pack_kernel`'s words."""
    length = 1
    for size in shape:
        length *= size
    return unpack_signs(packed, length, dtype=dtype).reshape(shape)
