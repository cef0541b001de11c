"""IRPReLU: RPReLU with a learnable token-wise offset (docs/method.md)."""
from typing import Optional, Sequence

import torch
from mmengine.registry import MODELS
from torch import nn

from mmdidb.ops.training import shifted_prelu

from .token_grid import resize_token_param, tile_window_param


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
        return shifted_prelu(x, self.gamma, self.slope, shift)

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

