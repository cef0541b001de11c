"""Attention similarity ``Q Kᵀ``: plain binary, or HFSC (docs/method.md)."""
import math
from typing import Callable, Optional, Sequence

import torch
from mmengine.registry import MODELS
from torch import nn

from mmdidb.ops import bmm_pm1_bands

from ..deploy.packed_ops import pack_shifted_heads, sign_product
from .binarizers import RSign
from .haar import StationaryHaarSplit
from .wrapped_linear import apply_activation


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, C) -> (B, heads, N, C // heads)."""
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class _QKBinarizers(nn.Module):
    """RSign for the Q and K entering the binary product (or identity).

    In deploy mode (binary activations only) the ±1 product runs as an
    XNOR-popcount GEMM on packed bits; it is integer-valued either way, so
    both modes give the same numbers. With ``fused_deploy`` (the default,
    see :func:`~mmdidb.models.deploy.switch_to_deploy`) the bits are packed
    straight from ``x + shift``
    (:func:`~mmdidb.models.deploy.packed_ops.shifted_sign_product`) and the
    RSign modules are not called.
    """

    def __init__(self, embed_dims: int, binary_acts: bool):
        super().__init__()
        self.binary_acts = binary_acts
        self.q = RSign(embed_dims) if binary_acts else nn.Identity()
        self.k = RSign(embed_dims) if binary_acts else nn.Identity()
        self.deploy = False
        self.fused_deploy = True

    @property
    def fused(self) -> bool:
        """Whether Q and K are packed straight from ``x + shift``."""
        return self.deploy and self.fused_deploy

    def packed(self, q: torch.Tensor, k: torch.Tensor, num_heads: int):
        """The packed signs of both, per head (fused deploy mode)."""
        return (pack_shifted_heads(q, self.q.beta, num_heads),
                pack_shifted_heads(k, self.k.beta, num_heads))

    def product(self, q: torch.Tensor, k: torch.Tensor,
                num_heads: int) -> torch.Tensor:
        q = split_heads(self.q(q), num_heads)
        k = split_heads(self.k(k), num_heads)
        if self.deploy:
            return sign_product(q, k)
        return q @ k.transpose(-2, -1)

    def switch_to_deploy(self) -> None:
        """Use packed bits for ``Q_b K_bᵀ`` (no-op for float Q and K)."""
        self.deploy = self.binary_acts


@MODELS.register_module()
class DotProductSimilarity(nn.Module):
    """``Sim = Q_b K_bᵀ`` from the projections of the attention input.

    This is the similarity of the naive binary attention (HFSC off).

    Args:
        embed_dims (int): Channels of Q and K.
        num_heads (int): Attention heads.
        binary_acts (bool): Binarize Q and K before the product.
        num_extra_tokens (int): Unused; accepted so both similarities take
            the same arguments.
    """

    def __init__(self, embed_dims: int, num_heads: int, binary_acts: bool = True,
                 num_extra_tokens: int = 1):
        super().__init__()
        self.num_heads = num_heads
        self.binarizers = _QKBinarizers(embed_dims, binary_acts)

    def forward(self, x: torch.Tensor, hw_shape: Optional[Sequence[int]],
                q_proj: Callable, k_proj: Callable,
                kv: Optional[torch.Tensor] = None,
                kv_hw_shape: Optional[Sequence[int]] = None,
                regions: Optional[torch.Tensor] = None,
                scale: Optional[float] = None) -> torch.Tensor:
        """Return (B, heads, N, M) similarities, times ``scale`` if given.

        Keys come from ``kv`` (M tokens on ``kv_hw_shape``; spatial-reduction
        attention) when given, else from ``x``. ``regions`` is accepted for a
        common signature with :class:`HFSC`; a plain product needs no grid.
        """
        kv, kv_hw_shape = (x, hw_shape) if kv is None else (kv, kv_hw_shape)
        q = apply_activation(q_proj, x, hw_shape)
        k = apply_activation(k_proj, kv, kv_hw_shape)
        if self.binarizers.fused:
            q_bits, k_bits = self.binarizers.packed(q, k, self.num_heads)
            return bmm_pm1_bands(q_bits[None], k_bits[None],
                                 q.shape[-1] // self.num_heads,
                                 scale=1.0 if scale is None else scale,
                                 dtype=q.dtype)
        sims = self.binarizers.product(q, k, self.num_heads)
        return sims if scale is None else sims * scale


@MODELS.register_module()
class HFSC(nn.Module):
    """High-Fidelity Similarity Calculation.

    ``Sim = a * Q_low K_lowᵀ + (1 - a) * Q_high K_highᵀ`` with the bands of a
    stationary Haar split of the attention input. The two bands share the
    attention's Q/K projections (our choice, docs/method.md: DeiT-compatible parameters
    and checkpoints); each band has its own activation binarizers because the
    bands' value ranges differ. ``a`` is learnable and kept in [0, 1]; how
    is ``alpha_param`` (:meth:`fusion_weight`).

    Args:
        embed_dims (int): Channels of Q and K.
        num_heads (int): Attention heads.
        binary_acts (bool): Binarize Q and K before the products.
        num_extra_tokens (int): Leading tokens off the patch grid.
        alpha (float): Initial ``a`` in [0, 1]. Defaults to 0.9.
        learnable_alpha (bool): Learn ``a``. Defaults to True.
        alpha_param (str): How the parameter gives ``a``. ``'clamp'``:
            ``a = clamp(p, 0, 1)``; once an update pushes ``p`` outside,
            its gradient is 0 and nothing brings it back. ``'clamp_ste'``:
            the same forward value, but the gradient passes as if there
            were no clamp. ``'sigmoid'``: ``a = sigmoid(p)``, ``p``
            initialised to ``logit(alpha)``, so ``alpha`` must lie strictly
            inside (0, 1). Defaults to ``'clamp'``.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 binary_acts: bool = True,
                 num_extra_tokens: int = 1,
                 alpha: float = 0.9,
                 learnable_alpha: bool = True,
                 alpha_param: str = 'clamp'):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'HFSC: alpha (hfsc_alpha) must be in [0, 1], '
                             f'got {alpha}')
        check_alpha_param(alpha_param, alpha)
        self.alpha_param = alpha_param
        if alpha_param == 'sigmoid':
            alpha = math.log(alpha / (1 - alpha))
        self.num_heads = num_heads
        self.split = StationaryHaarSplit(num_extra_tokens)
        self.low = _QKBinarizers(embed_dims, binary_acts)
        self.high = _QKBinarizers(embed_dims, binary_acts)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)),
                                  requires_grad=learnable_alpha)

    def forward(self, x: torch.Tensor, hw_shape: Optional[Sequence[int]],
                q_proj: Callable, k_proj: Callable,
                kv: Optional[torch.Tensor] = None,
                kv_hw_shape: Optional[Sequence[int]] = None,
                regions: Optional[torch.Tensor] = None,
                scale: Optional[float] = None) -> torch.Tensor:
        """Return (B, heads, N, M) similarities, times ``scale`` if given.

        Args:
            x (Tensor): (B, N, C) attention input (queries).
            hw_shape (tuple[int, int], optional): Grid of ``x``.
            q_proj, k_proj (callable): The attention's Q and K layers.
            kv (Tensor, optional): (B, M, C) key input of spatial-reduction
                attention, split on its own grid ``kv_hw_shape``; None uses
                ``x``.
            kv_hw_shape (tuple[int, int], optional): Grid of ``kv``.
            regions (Tensor, optional): Shift-region labels of window
                attention, see :func:`~mmdidb.models.layers.haar_split_grid`.
            scale (float, optional): Factor applied last (the attention
                scale); in fused deploy mode it is applied in the product's
                epilogue.
        """
        # Both bands go through the shared Q/K layers as one batch (every
        # layer there is token-wise), not as two passes.
        q_in = torch.cat(self.split(x, hw_shape, regions))
        if kv is None:
            kv_hw_shape, k_in = hw_shape, q_in
        else:
            k_in = torch.cat(self.split(kv, kv_hw_shape, regions))
        q = apply_activation(q_proj, q_in, hw_shape)
        k = apply_activation(k_proj, k_in, kv_hw_shape)
        a = self.fusion_weight()
        if self.low.fused:
            bits = [binarizers.packed(q_band, k_band, self.num_heads)
                    for q_band, k_band, binarizers in zip(
                        q.chunk(2), k.chunk(2), (self.low, self.high))]
            return bmm_pm1_bands(
                torch.stack([bits[0][0], bits[1][0]]),
                torch.stack([bits[0][1], bits[1][1]]),
                q.shape[-1] // self.num_heads, torch.stack([a, 1 - a]),
                1.0 if scale is None else scale, dtype=q.dtype)
        if self.low.deploy:
            sims = [binarizers.product(q_band, k_band, self.num_heads)
                    for q_band, k_band, binarizers in zip(
                        q.chunk(2), k.chunk(2), (self.low, self.high))]
            sims = a * sims[0] + (1 - a) * sims[1]
        else:
            sims = self.mixed_product(q, k, torch.stack([a, 1 - a]))
        return sims if scale is None else sims * scale

    def fusion_weight(self) -> torch.Tensor:
        """The weight ``a`` of the low band, in [0, 1]."""
        if self.alpha_param == 'sigmoid':
            return self.alpha.sigmoid()
        a = self.alpha.clamp(0.0, 1.0)
        if self.alpha_param == 'clamp_ste':
            # the clamped value, with the unclamped parameter's gradient
            a = self.alpha + (a - self.alpha).detach()
        return a


    def mixed_product(self, q: torch.Tensor, k: torch.Tensor,
                      weights: torch.Tensor) -> torch.Tensor:
        """``w_0 Q_low K_lowᵀ + w_1 Q_high K_highᵀ`` of binarized bands.

        Args:
            q (Tensor): (2B, N, C) projected queries, low band first.
            k (Tensor): (2B, M, C) projected keys, low band first.
            weights (Tensor): (2, ) the band weights ``(a, 1 - a)``.
        """
        q, k = q.chunk(2), k.chunk(2)
        q = torch.stack([split_heads(self.low.q(q[0]), self.num_heads),
                         split_heads(self.high.q(q[1]), self.num_heads)])
        k = torch.stack([split_heads(self.low.k(k[0]), self.num_heads),
                         split_heads(self.high.k(k[1]), self.num_heads)])
        return _MixedBandProduct.apply(q, k, weights)


class _MixedBandProduct(torch.autograd.Function):
    """``w_0 Q_0 K_0ᵀ + w_1 Q_1 K_1ᵀ`` for band-stacked (2, ..., N, d) Q, K.

    The two products run as one batched GEMM, and the result is formed with
    exactly the operations of ``a * sims[0] + (1 - a) * sims[1]`` (so the
    deployed integer products give the same numbers). Autograd of that
    expression would keep both (B, heads, N, M) products for the gradient of
    ``w``; this node keeps only Q and K and gets ``dL/dw_b = Σ Q_b ⊙ (G K_b)``
    from the product ``G K_b`` that the gradient of ``Q_b`` needs anyway.
    """

    @staticmethod
    def forward(ctx, q, k, weights):
        ctx.save_for_backward(q, k, weights)
        sims = q @ k.transpose(-2, -1)
        return weights[0] * sims[0] + weights[1] * sims[1]

    @staticmethod
    def backward(ctx, grad_output):
        q, k, weights = ctx.saved_tensors
        q, k = q.to(grad_output.dtype), k.to(grad_output.dtype)  # autocast
        # one product per band: a broadcast over the band dimension would
        # copy the (B, heads, N, M) gradient for each band
        grad_q = torch.stack([grad_output @ k_band for k_band in k])
        grad_k = torch.stack([grad_output.transpose(-2, -1) @ q_band
                              for q_band in q])
        grad_w = None
        if ctx.needs_input_grad[2]:
            grad_w = (grad_q * q).flatten(1).sum(1)
        w = weights.view(-1, *([1] * (q.dim() - 1)))
        return grad_q.mul_(w), grad_k.mul_(w), grad_w


ALPHA_PARAMS = ('clamp', 'clamp_ste', 'sigmoid')


def check_alpha_param(alpha_param, alpha: float = 0.9) -> None:
    """Raise a ValueError naming ``hfsc_alpha_param`` if it cannot work."""
    if alpha_param not in ALPHA_PARAMS:
        raise ValueError(f'hfsc_alpha_param must be one of {ALPHA_PARAMS}, '
                         f'got {alpha_param!r}')
    if alpha_param == 'sigmoid' and not 0.0 < alpha < 1.0:
        raise ValueError(f"hfsc_alpha_param='sigmoid' needs hfsc_alpha "
                         f'strictly inside (0, 1) (its logit is the '
                         f'parameter), got {alpha}')
