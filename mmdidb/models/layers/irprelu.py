"""IRPReLU: RPReLU with a learnable token-wise offset (METHOD.md section 5)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn

from mmdidb.ops import cpu_fused

from .binarizers import channel_sum_to, sum_to
from .token_grid import resize_token_param, tile_window_param


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


@MODELS.register_module()
class IRPReLU(nn.Module):
    """``y_t = PReLU_c(x_t - gamma_c) + zeta_c + b_t``.

    With ``num_tokens=None`` the token offset ``b`` is off and the layer is
    ReActNet's RPReLU, so ``act_cfg=dict(type='IRPReLU')`` works anywhere a
    channel-last activation does (one shared channel parameter by default,
    like ``nn.PReLU``). Inside DIDB-ViT the backbone passes the channel and
    token counts.

    The token offset ``b`` has one value per token (shape ``(N, 1)``) and is
    initialised to 0, so IRPReLU starts as RPReLU. For an input with another
    token count (another image size), ``b`` is resized on the patch grid like
    the position embedding, the extra (class) tokens kept apart; the same
    happens when a checkpoint made at another size is loaded.

    Args:
        num_channels (int): Channels (last dimension) of the input. 1 shares
            gamma, zeta and the slope over all channels. Defaults to 1.
        num_tokens (int, optional): Tokens the offset is learned for
            (extra tokens included). None turns the offset off.
        num_extra_tokens (int): Leading tokens not on the patch grid (class
            token). Defaults to 1.
        init_slope (float): Initial PReLU slope. Defaults to 0.25.
        interpolate_mode (str): Mode used to resize ``b``. Defaults to
            'bicubic', as for the position embedding.
        token_grid (tuple[int, int], optional): The patch grid ``b`` is
            learned on; None means square. The layer that builds the
            activation passes it (see
            :func:`~mmdidb.models.layers.wrapped_linear.build_token_activation`).
        window_size (int, optional): Window-attention backbones (DIDBSwin)
            learn ``b`` per position inside a window (``num_tokens`` is then
            ``window_size**2``, no extra tokens); a whole feature map gets
            ``b`` tiled window by window instead of resized. Passed like
            ``token_grid``.
    """

    takes_hw_shape = True

    def __init__(self,
                 num_channels: int = 1,
                 num_tokens: Optional[int] = None,
                 num_extra_tokens: int = 1,
                 init_slope: float = 0.25,
                 interpolate_mode: str = 'bicubic',
                 token_grid: Optional[Sequence[int]] = None,
                 window_size: Optional[int] = None):
        super().__init__()
        self.token_grid = token_grid
        self.window_size = window_size
        self.num_channels = num_channels
        self.num_extra_tokens = num_extra_tokens
        self.interpolate_mode = interpolate_mode
        self.gamma = nn.Parameter(torch.zeros(num_channels))
        self.zeta = nn.Parameter(torch.zeros(num_channels))
        self.slope = nn.Parameter(torch.full((num_channels, ), init_slope))
        if num_tokens is not None:
            if num_tokens <= num_extra_tokens:
                raise ValueError(
                    f'IRPReLU: num_tokens={num_tokens} must exceed '
                    f'num_extra_tokens={num_extra_tokens}')
            self.token_offset = nn.Parameter(torch.zeros(num_tokens, 1))
            self._register_load_state_dict_pre_hook(self._resize_on_load)
        else:
            self.token_offset = None

    def offset_for(self, num_tokens: int,
                   hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        """The ``(num_tokens, 1)`` offset, resized to ``hw_shape`` if needed."""
        if num_tokens == self.token_offset.shape[0]:
            return self.token_offset
        if self.window_size is not None:
            if hw_shape is None:
                raise ValueError(
                    f'IRPReLU: {num_tokens} tokens with per-window-position '
                    f'offsets (window_size={self.window_size}) need hw_shape')
            return tile_window_param(self.token_offset, self.window_size,
                                     hw_shape)
        return resize_token_param(self.token_offset, num_tokens, hw_shape,
                                  self.num_extra_tokens,
                                  self.interpolate_mode, self.token_grid)

    def forward(self,
                x: torch.Tensor,
                hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Apply to channel-last ``x``; tokens on dim -2 when the offset is on.

        Args:
            x (Tensor): Input of shape (..., N, C) (or (..., C) without the
                token offset).
            hw_shape (tuple[int, int], optional): Patch grid of ``x``, needed
                only when its token count differs from ``num_tokens`` and the
                grid is not square.
        """
        shift = self.zeta
        if self.token_offset is not None:
            shift = shift + self.offset_for(x.shape[-2], hw_shape)
        return _ShiftedPReLU.apply(x, self.gamma, self.slope, shift)

    def _resize_on_load(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'token_offset'
        if key in state_dict and self.token_offset is not None \
                and self.window_size is None:
            src = state_dict[key]
            if src.shape != self.token_offset.shape:
                state_dict[key] = resize_token_param(
                    src, self.token_offset.shape[0], None,
                    self.num_extra_tokens, self.interpolate_mode)

    def extra_repr(self) -> str:
        tokens = None if self.token_offset is None else len(self.token_offset)
        return f'num_channels={self.num_channels}, num_tokens={tokens}'

