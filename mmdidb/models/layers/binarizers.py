"""Binarizers of DIDB-ViT (METHOD.md section 1).

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


def sign(x: torch.Tensor) -> torch.Tensor:
    """``sign`` with ``sign(0) = +1``, values in ``{-1, +1}``."""
    # arithmetic on the comparison: several times faster than torch.where
    return (x >= 0).to(x.dtype) * 2 - 1


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
        slope = (2 - 2 * x.abs()).clamp(min=0)
        return grad_output * slope


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
        return approx_sign(x + self.beta.view(shape))

    def extra_repr(self) -> str:
        return f'num_channels={self.num_channels}'


class _ElasticBinarize(torch.autograd.Function):

    @staticmethod
    def forward(ctx, probs, alpha, grad_scale):
        # alpha broadcasts against probs; probs >= 0 (softmax output)
        ratio = probs / alpha
        mask = (ratio >= 0.5).to(probs.dtype)
        ctx.save_for_backward(ratio, mask)
        ctx.alpha_shape = alpha.shape
        ctx.grad_scale = grad_scale
        return alpha * mask

    @staticmethod
    def backward(ctx, grad_output):
        ratio, mask = ctx.saved_tensors
        inside = (ratio <= 1).to(grad_output.dtype)
        grad_probs = grad_output * inside
        # LSQ: d(alpha * round(clip(P / alpha, 0, 1))) / d alpha
        d_alpha = inside * (mask - ratio) + (1 - inside)
        grad_alpha = grad_output * d_alpha * ctx.grad_scale
        reduce_dims = [
            i for i, size in enumerate(ctx.alpha_shape)
            if size == 1 and grad_alpha.shape[i] != 1
        ]
        reduce_dims += list(range(len(ctx.alpha_shape), grad_alpha.dim()))
        grad_alpha = grad_alpha.sum(dim=reduce_dims, keepdim=True)
        return grad_probs, grad_alpha.reshape(ctx.alpha_shape), None


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
