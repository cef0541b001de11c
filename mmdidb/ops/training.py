"""Training-graph ops of the binary layers, with their custom gradients.

Each is one autograd node for a chain of element-wise operations (or an
element-wise chain and a product) that the layers in
:mod:`mmdidb.models.layers` would otherwise build from several torch ops:
it saves fewer full-size tensors for the backward pass, and on float32 CPU
tensors it runs the chain in one pass of the fused C kernels
(:mod:`mmdidb.ops.cpu_fused`, which write torch's values bit for bit);
elsewhere (CUDA, other dtypes, no C compiler, under ``torch.compile``) it
runs the torch formulation. The layers call these functions and read as
their maths.

- :func:`shifted_approx_sign`: ``sign(x + beta)`` with the ApproxSign
  gradient (RSign);
- :func:`signed_linear`: RSign's output times a weight, with RSign's
  gradient (the binary linear layer's input binarizer and product);
- :func:`shifted_prelu`: ``PReLU_slope(x - gamma) + shift`` (IRPReLU).

``sign(0) = +1`` everywhere.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from . import cpu_fused


def sign(x: torch.Tensor) -> torch.Tensor:
    """``sign`` with ``sign(0) = +1``, values in ``{-1, +1}`` (float ``x``)."""
    return _sign_(torch.empty_like(x), x)


def _sign_(out: torch.Tensor, x: Optional[torch.Tensor] = None
           ) -> torch.Tensor:
    """:func:`sign` of ``x`` (default: ``out`` itself) written into ``out``."""
    # the comparison written straight into a float tensor: one cheap pass.
    # A bool result converted to float costs several passes on CPU, and
    # torch.sign/torch.where are slower still.
    return torch.ge(out if x is None else x, 0, out=out).mul_(2).sub_(1)


def approx_sign_slope(u: torch.Tensor) -> torch.Tensor:
    """ApproxSign's derivative ``max(2 - 2|u|, 0)``, a new tensor."""
    # 2 * relu(1 - |u|) is the same number: scaling by 2 is exact
    return torch.abs(u).neg_().add_(1).relu_().mul_(2)


def channel_sum_to(channel_sum: torch.Tensor, shape: torch.Size,
                   dtype: torch.dtype) -> torch.Tensor:
    """A per-channel (last dimension) gradient sum at a parameter's shape."""
    if len(shape) == 0:
        return channel_sum.sum().to(dtype)
    grad = channel_sum.view((1, ) * (len(shape) - 1) + (-1, ))
    return sum_to(grad, shape).to(dtype)


def sum_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a gradient over the dimensions a broadcast ``shape`` expanded."""
    return grad.sum_to_size(shape) if grad.shape != shape else grad


class _ShiftedApproxSign(torch.autograd.Function):
    """``sign(x + beta)`` with the ApproxSign gradient, for ``x`` and ``beta``.

    Saves ``x`` and ``beta`` only: ``x + beta`` (a full-size float tensor
    when the shift and the sign are separate autograd nodes) is recomputed
    in the backward pass.
    """

    @staticmethod
    def forward(ctx, x, beta):
        ctx.save_for_backward(x, beta)
        if cpu_fused.applies(x, (beta, )):
            return cpu_fused.sign_shift(x, beta)
        return _sign_(x + beta)

    @staticmethod
    def backward(ctx, grad_output):
        x, beta = ctx.saved_tensors
        if cpu_fused.applies(x, (beta, ), (grad_output, )):
            grad_u, grad_beta, _ = cpu_fused.approx_sign_backward_(
                grad_output.clone(memory_format=torch.contiguous_format), x,
                beta)
            grad_beta = channel_sum_to(grad_beta, beta.shape, beta.dtype) \
                if ctx.needs_input_grad[1] else None
            return grad_u, grad_beta
        grad_u = approx_sign_slope(x + beta).mul_(grad_output)
        grad_beta = sum_to(grad_u, beta.shape) \
            if ctx.needs_input_grad[1] else None
        return grad_u, grad_beta


def shifted_approx_sign(x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``approx_sign(x + beta)`` as one autograd node (``beta`` broadcasts)."""
    return _ShiftedApproxSign.apply(x, beta)


class _SignedInputLinear(torch.autograd.Function):
    """``F.linear(signs, weight, bias)`` with ``signs = sign(x + beta)``.

    One autograd node for RSign and the product, with RSign's ApproxSign
    gradient for ``x`` and ``beta``. It saves ``x``, ``beta`` and ``weight``
    only: separate nodes keep both ``x + beta`` and the ±1 input (two
    full-size float tensors); the backward pass recomputes them from ``x``,
    which is cheap next to the products. ``signs`` (computed by the RSign
    module without autograd, so that its hooks see them) gets no gradient.
    """

    @staticmethod
    def forward(ctx, x, beta, signs, weight, bias):
        ctx.save_for_backward(x, beta, weight)
        ctx.has_bias = bias is not None
        return F.linear(signs, weight, bias)

    @staticmethod
    def backward(ctx, grad_output):
        x, beta, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_2d = grad_output.reshape(-1, grad_output.shape[-1])
        grad_weight = grad_bias = grad_u = grad_beta = None
        if cpu_fused.applies(x, (beta, ), (grad_output, weight)):
            return _SignedInputLinear._fused_backward(ctx, grad_2d, x, beta,
                                                      weight)
        u = x + beta
        # the products in the gradient's dtype: under autocast F.linear ran
        # in half precision, and autograd casts each result back to its
        # input's dtype
        dtype = grad_output.dtype
        if needs[3]:
            signs = _sign_(torch.empty_like(u, dtype=dtype), u)
            grad_weight = grad_2d.t().mm(signs.reshape(-1, signs.shape[-1]))
            del signs
        if needs[4] and ctx.has_bias:
            grad_bias = grad_2d.sum(0)
        if needs[0] or needs[1]:
            grad_u = (grad_output @ weight.to(dtype)).to(u.dtype).mul_(
                approx_sign_slope(u))
            if needs[1]:
                grad_beta = sum_to(grad_u, beta.shape)
        return grad_u, grad_beta, None, grad_weight, grad_bias

    @staticmethod
    def _fused_backward(ctx, grad_2d, x, beta, weight):
        """The same gradients with the element-wise chain (shift, sign,
        ApproxSign slope, beta's sum) as one C pass on float32 CPU tensors."""
        needs = ctx.needs_input_grad
        grad_weight = grad_bias = grad_u = grad_beta = None
        signs = None
        if needs[0] or needs[1]:
            grad_u = grad_2d.mm(weight).view(x.shape)
            grad_u, grad_beta, signs = cpu_fused.approx_sign_backward_(
                grad_u, x, beta, want_signs=needs[3])
            grad_beta = channel_sum_to(grad_beta, beta.shape, beta.dtype) \
                if needs[1] else None
        if needs[3]:
            if signs is None:
                signs = cpu_fused.sign_shift(x, beta)
            grad_weight = grad_2d.t().mm(signs.view(-1, signs.shape[-1]))
        if needs[4] and ctx.has_bias:
            grad_bias = grad_2d.sum(0)
        return grad_u, grad_beta, None, grad_weight, grad_bias


def signed_linear(x: torch.Tensor, beta: torch.Tensor, signs: torch.Tensor,
                  weight: torch.Tensor,
                  bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``F.linear(signs, weight, bias)`` with ``signs = sign(x + beta)``.

    The gradient reaches ``x`` and ``beta`` through ApproxSign, and
    ``weight`` and ``bias`` as in ``F.linear``; ``signs`` (computed by the
    caller, e.g. an RSign module whose hooks should see them) gets none.
    """
    return _SignedInputLinear.apply(x, beta, signs, weight, bias)


class _ShiftedPReLU(torch.autograd.Function):
    """``PReLU_slope(x - gamma) + shift`` for channel-last ``x``, one node.

    Saves ``x`` and the parameters only (``x - gamma`` is recomputed), and
    replaces torch's CPU PReLU backward kernel, which is several times
    slower than the element-wise passes below for a per-channel slope.
    Gradients are those of torch's PReLU, including its choice at 0
    (``slope``).
    """

    @staticmethod
    def forward(ctx, x, gamma, slope, shift):
        ctx.save_for_backward(x, gamma, slope)
        ctx.shift_shape = shift.shape
        if cpu_fused.applies(x, (gamma, slope), (shift, )):
            return cpu_fused.shifted_prelu(x, gamma, slope, shift)
        # F.prelu takes channels on dim 1: a 2-D view puts them there.
        y = F.prelu((x - gamma).reshape(-1, x.shape[-1]), slope)
        return y.view_as(x).add_(shift)

    @staticmethod
    def backward(ctx, grad_output):
        x, gamma, slope = ctx.saved_tensors
        if cpu_fused.applies(x, (gamma, slope), (grad_output, )):
            return _fused_backward(ctx, grad_output, x, gamma, slope)
        shifted = x - gamma
        # 1[x - gamma <= 0], where torch's PReLU takes the slope
        neg_grad = torch.le(shifted, 0, out=torch.empty_like(shifted))
        neg_grad.mul_(grad_output)
        # grad * (slope if x - gamma <= 0 else 1); one summand is 0: exact
        grad_x = torch.addcmul(grad_output - neg_grad, neg_grad, slope)
        needs = ctx.needs_input_grad
        grad_gamma = grad_slope = grad_shift = None
        if needs[1]:
            grad_gamma = sum_to(grad_x, gamma.shape).neg()
        if needs[2]:
            grad_slope = sum_to(neg_grad.mul_(shifted), slope.shape)
        if needs[3]:
            grad_shift = sum_to(grad_output, ctx.shift_shape)
        return grad_x, grad_gamma, grad_slope, grad_shift


def _fused_backward(ctx, grad_output, x, gamma, slope):
    """:meth:`_ShiftedPReLU.backward` as one C pass (same ``dL/dx``, the
    parameter sums to float rounding)."""
    grad_x, grad_sum, grad_slope, grad_shift = \
        cpu_fused.shifted_prelu_backward(grad_output, x, gamma, slope,
                                         ctx.shift_shape)
    needs = ctx.needs_input_grad
    dtype = x.dtype
    return (grad_x,
            channel_sum_to(grad_sum.neg(), gamma.shape, dtype)
            if needs[1] else None,
            channel_sum_to(grad_slope, slope.shape, dtype)
            if needs[2] else None,
            sum_to(grad_shift.to(dtype).reshape(
                _table_shape(ctx.shift_shape, grad_shift)), ctx.shift_shape)
            if needs[3] else None)


def _table_shape(shift_shape, table):
    """The (T, C) table of shift gradients at ``shift_shape``'s rank."""
    if len(shift_shape) < 2:
        return table.shape[-1:]
    return (1, ) * (len(shift_shape) - 2) + tuple(table.shape)


def shifted_prelu(x: torch.Tensor, gamma: torch.Tensor, slope: torch.Tensor,
                  shift: torch.Tensor) -> torch.Tensor:
    """``PReLU_slope(x - gamma) + shift`` for channel-last ``x``.

    ``gamma`` and ``slope`` hold one value per channel (or one in all),
    ``shift`` broadcasts against ``x``'s last two dimensions (per channel
    and per token). Gradients are those of torch's PReLU, including its
    choice at 0 (``slope``).
    """
    return _ShiftedPReLU.apply(x, gamma, slope, shift)
