"""BinaryViT-style wrapped linear: ``act(Norm(BinaryLinear(x)) + shortcut(x))``."""
from typing import Optional, Sequence

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer

from .binary_linear import BinaryLinear


class WrappedBinaryLinear(BinaryLinear):
    """A binary linear layer with its own norm, shortcut and activation.

    As in BinaryViT, every binary linear layer of the block is wrapped as
    ``y = act(Norm(BinaryLinear(x)) + shortcut(x))``. The shortcut is the
    identity for square layers, a channel repeat for an expansion ``d -> r*d``
    (each channel repeated ``r`` times in place, ``repeat_interleave``) and
    the average of each group of ``r`` consecutive channels for a reduction
    ``r*d -> d``, so that a reduction's shortcut undoes an expansion's.

    The layer is a :class:`BinaryLinear` itself, so its ``weight``/``bias``
    keep the state-dict names of the ``nn.Linear`` it replaces.

    Args:
        in_features (int): Input channels.
        out_features (int): Output channels; must equal, divide or be a
            multiple of ``in_features``.
        bias (bool): Learn a bias. Defaults to True.
        binary_weights (bool): 1-bit weights. Defaults to True.
        binary_acts (bool): 1-bit input activations. Defaults to True.
        norm_cfg (dict): Norm after the product. Defaults to LayerNorm.
        act_cfg (dict, optional): Activation at the end, None for none.
            ``IRPReLU`` receives ``num_channels`` and the token layout
            (``num_tokens``, ``num_extra_tokens``, ``token_grid``,
            ``window_size``) from here.
        num_tokens (int, optional): Token count for IRPReLU's offsets.
        num_extra_tokens (int): Extra (class) tokens. Defaults to 1.
        token_grid (tuple[int, int], optional): The patch grid IRPReLU's
            offsets are learned on; None means square.
        window_size (int, optional): Offsets one per window position, tiled
            over a feature map (window-attention backbones).
    """

    takes_hw_shape = True

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 bias: bool = True,
                 binary_weights: bool = True,
                 binary_acts: bool = True,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 act_cfg: Optional[dict] = dict(type='IRPReLU'),
                 num_tokens: Optional[int] = None,
                 num_extra_tokens: int = 1,
                 token_grid: Optional[Sequence[int]] = None,
                 window_size: Optional[int] = None):
        super().__init__(in_features, out_features, bias, binary_weights,
                         binary_acts)
        if out_features % in_features and in_features % out_features:
            raise ValueError(
                f'WrappedBinaryLinear: out_features={out_features} and '
                f'in_features={in_features} must be equal or one a multiple '
                'of the other for the shortcut')
        self.norm = build_norm_layer(norm_cfg, out_features)[1]
        self.act = build_token_activation(act_cfg, out_features, num_tokens,
                                          num_extra_tokens, token_grid,
                                          window_size)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.out_features > self.in_features:
            # = x.repeat_interleave(ratio, dim=-1); expand + reshape is one
            # copy, and its backward a plain sum (repeat_interleave's is an
            # index_add)
            ratio = self.out_features // self.in_features
            return x.unsqueeze(-1).expand(*x.shape, ratio).flatten(-2)
        if self.out_features < self.in_features:
            ratio = self.in_features // self.out_features
            groups = x.unflatten(-1, (self.out_features, ratio))
            if ratio > 4:
                return groups.mean(-1)
            # = groups.mean(-1): torch's reduction adds up to 4 values in
            # order, so this gives the same numbers (tests/models/
            # test_wrapped_linear_maths.py); a reduction over a dimension
            # of 4 is several times slower than these element-wise adds
            total = groups[..., 0]
            for i in range(1, ratio):
                total = total + groups[..., i]
            return total / ratio
        return x

    def forward(self,
                x: torch.Tensor,
                hw_shape: Optional[Sequence[int]] = None,
                shortcut: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``act(Norm(BinaryLinear(x)) + shortcut)``.

        Args:
            x (Tensor): (..., in_features) input.
            hw_shape (tuple[int, int], optional): Grid of the output tokens,
                for IRPReLU.
            shortcut (Tensor, optional): The shortcut branch when it is not
                a function of ``x`` alone (patch merging's pooled input);
                defaults to :meth:`shortcut` of ``x``.
        """
        y = self.norm(super().forward(x))
        if shortcut is not None:
            y = y + shortcut
        elif self.out_features > self.in_features:
            # the repeated channels broadcast in the addition instead of
            # being copied first: the same sums
            ratio = self.out_features // self.in_features
            y = (y.unflatten(-1, (self.in_features, ratio))
                 + x.unsqueeze(-1)).flatten(-2)
        else:
            y = y + self.shortcut(x)
        return apply_activation(self.act, y, hw_shape)


def build_token_activation(act_cfg: Optional[dict], num_channels: int,
                           num_tokens: Optional[int],
                           num_extra_tokens: int,
                           token_grid: Optional[Sequence[int]] = None,
                           window_size: Optional[int] = None):
    """Build ``act_cfg``, filling in the channels and token layout of IRPReLU.

    The layout (see :class:`~mmdidb.models.layers.IRPReLU`) is passed at
    construction, so the offsets know their grid from the start; entries
    that ``act_cfg`` sets itself win.
    """
    if act_cfg is None:
        return None
    act_cfg = dict(act_cfg)
    if act_cfg['type'] in ('IRPReLU', 'RPReLU'):
        if act_cfg['type'] == 'RPReLU':
            act_cfg.update(type='IRPReLU', num_tokens=None)
        layout = dict(num_channels=num_channels, num_tokens=num_tokens,
                      num_extra_tokens=num_extra_tokens,
                      token_grid=token_grid, window_size=window_size)
        act_cfg = {**layout, **act_cfg}
    return build_activation_layer(act_cfg)


def apply_activation(act, x: torch.Tensor,
                     hw_shape: Optional[Sequence[int]] = None):
    """Call ``act``, passing the patch grid to activations that take it."""
    if act is None:
        return x
    if getattr(act, 'takes_hw_shape', False):
        return act(x, hw_shape)
    return act(x)
