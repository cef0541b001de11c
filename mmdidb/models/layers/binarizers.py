"""Binarizers of DIDB-ViT (docs/method.md).

Three kinds, each an autograd function with the straight-through gradient
the method states, wrapped in a small module:

* :class:`WeightBinarizer` - ``sign(W - mean_row(W)) * mean_row(|W|)``, one
  detached scale per output channel; gradient: identity where ``|W| <= 1``.
* :class:`RSign` - ``sign(x + beta)`` with a learnable per-channel shift;
  gradient: the ApproxSign polynomial ``2 - 2|u|`` on ``|u| <= 1``.
* :class:`ElasticBinarizer` - attention probabilities to ``{0, alpha}``,
  ``alpha * 1[P >= alpha / 2]`` with one learnable alpha per head and an
  LSQ-style gradient.

``sign(0) = +1`` everywhere, so bit 1 <-> +1 when packing.
"""
import math

import torch
from torch import nn

from mmdidb.ops.training import (  # noqa: F401  (part of this API)
    _sign_,
    approx_sign_slope,
    channel_sum_to,
    shifted_approx_sign,
    sign,
    sum_to,
)


class _WeightSignSTE(torch.autograd.Function):

    @staticmethod
    def forward(ctx, weight):
        ctx.save_for_backward(weight)
        flat = weight.reshape(weight.shape[0], -1)
        centred = flat - flat.mean(dim=1, keepdim=True)
        scale = flat.abs().mean(dim=1, keepdim=True)
        return (sign(centred) * scale).reshape_as(weight)

    @staticmethod
    def backward(ctx, grad_output):
        weight, = ctx.saved_tensors
        return grad_output * (weight.abs() <= 1).to(grad_output.dtype)


def binarize_weight(weight: torch.Tensor) -> torch.Tensor:
    """Binarize a weight (rows = output channels) with its STE gradient."""
    return _WeightSignSTE.apply(weight)


class WeightBinarizer(nn.Module):
    """Module form of :func:`binarize_weight` (one scale per output row)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return binarize_weight(weight)


class _ApproxSign(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad_output):
        x, = ctx.saved_tensors
        return approx_sign_slope(x).mul_(grad_output)


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """``sign`` forward, ApproxSign (``2 - 2|x|`` on ``|x| <= 1``) backward."""
    return _ApproxSign.apply(x)


class RSign(nn.Module):
    """Activation binarizer ``sign(x + beta)`` (ReActNet's RSign).

    Args:
        num_channels (int): Size of the channel dimension (the last one for
            token inputs) that ``beta`` is learned over.
        channel_dim (int): Which dimension holds the channels. Defaults to -1.
    """

    def __init__(self, num_channels: int, channel_dim: int = -1):
        super().__init__()
        self.num_channels = num_channels
        self.channel_dim = channel_dim
        self.beta = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[self.channel_dim] = self.num_channels
        return shifted_approx_sign(x, self.beta.view(shape))

    def extra_repr(self) -> str:
        return f'num_channels={self.num_channels}'


class _ElasticBinarize(torch.autograd.Function):

    # Saves only ``probs`` (which softmax keeps for its own backward pass
    # anyway, so it costs no memory) and ``alpha``; the N x N ratio and mask
    # are recomputed in the backward pass instead of being kept per layer.

    @staticmethod
    def forward(ctx, probs, alpha, grad_scale):
        # alpha broadcasts against probs; probs >= 0 (softmax output)
        ctx.save_for_backward(probs, alpha)
        ctx.grad_scale = grad_scale
        ratio = probs / alpha
        return torch.ge(ratio, 0.5, out=ratio).mul_(alpha)  # alpha * mask

    @staticmethod
    def backward(ctx, grad_output):
        probs, alpha = ctx.saved_tensors
        ratio = probs / alpha
        inside = torch.le(ratio, 1, out=torch.empty_like(ratio))
        grad_probs = grad_output * inside
        # LSQ: d(alpha * round(clip(P / alpha, 0, 1))) / d alpha
        # = inside * (mask - ratio) + (1 - inside)
        d_alpha = torch.ge(ratio, 0.5, out=torch.empty_like(ratio))
        d_alpha.sub_(ratio).mul_(inside)
        d_alpha.add_(inside.neg_().add_(1))  # inside is not needed after
        grad_alpha = d_alpha.mul_(grad_output).mul_(ctx.grad_scale)
        return grad_probs, sum_to(grad_alpha, alpha.shape), None


class ElasticBinarizer(nn.Module):
    """Attention binarizer ``A_hat = alpha * 1[P >= alpha / 2]`` (BiT).

    ``alpha`` is initialised to ``2 / num_tokens``, the LSQ initialisation
    ``2 * mean(|P|)`` for softmax rows (each row of P sums to one), so the
    binarizer first keeps the tokens with above-average attention.

    Args:
        num_heads (int): One ``alpha`` per head.
        num_tokens (int): Token count used for the initial ``alpha``.
        lsq_grad_scale (bool): Scale alpha's gradient by
            ``1 / sqrt(N * N)``, the elements per alpha of one sample, as LSQ
            does. Defaults to True.
    """

    def __init__(self, num_heads: int, num_tokens: int,
                 lsq_grad_scale: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.lsq_grad_scale = lsq_grad_scale
        self.alpha = nn.Parameter(torch.full((num_heads, ), 2.0 / num_tokens))

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """Binarize attention probabilities of shape (B, heads, N, N)."""
        alpha = self.alpha.clamp(min=1e-6).view(1, -1, 1, 1)
        grad_scale = 1.0
        if self.lsq_grad_scale:
            # LSQ counts the features of one sample, not of the batch, so
            # the gradient does not change with the (micro-)batch size
            per_alpha = probs[0].numel() // self.num_heads
            grad_scale = 1.0 / math.sqrt(per_alpha)
        return _ElasticBinarize.apply(probs, alpha, grad_scale)

    def extra_repr(self) -> str:
        return f'num_heads={self.num_heads}'
