"""Binary feed-forward network of the DIDB-ViT block."""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .wrapped_linear import WrappedBinaryLinear

# mmcv's FFN (used by mmpretrain's ViT) names its layers like this.
_MMCV_FFN_KEYS = (('layers.0.0.', 'fc1.'), ('layers.1.', 'fc2.'))


@MODELS.register_module()
class BinaryFFN(BaseModule):
    """``fc2(fc1(x))`` with both layers wrapped binary linears.

    The expansion's shortcut repeats channels, the reduction's averages
    groups of channels (see :class:`WrappedBinaryLinear`). A checkpoint of
    mmcv's ``FFN`` (``layers.0.0``/``layers.1``) loads into ``fc1``/``fc2``.

    Args:
        embed_dims (int): Channels in and out.
        feedforward_channels (int): Hidden channels (a multiple of
            ``embed_dims``).
        num_tokens (int, optional): Tokens for IRPReLU offsets.
        num_extra_tokens (int): Extra tokens. Defaults to 1.
        token_grid (tuple[int, int], optional): Patch grid of the offsets
            (see :class:`WrappedBinaryLinear`).
        window_size (int, optional): Offsets per window position (see
            :class:`WrappedBinaryLinear`).
        binary_weights (bool): 1-bit weights. Defaults to True.
        binary_acts (bool): 1-bit activations. Defaults to True.
        act_cfg (dict): Activation of both layers. Defaults to IRPReLU.
        norm_cfg (dict): Norm of both layers. Defaults to LN.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 feedforward_channels: int,
                 num_tokens: Optional[int] = None,
                 num_extra_tokens: int = 1,
                 binary_weights: bool = True,
                 binary_acts: bool = True,
                 act_cfg: dict = dict(type='IRPReLU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 token_grid: Optional[Sequence[int]] = None,
                 window_size: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        args = dict(binary_weights=binary_weights, binary_acts=binary_acts,
                    norm_cfg=norm_cfg, act_cfg=act_cfg, num_tokens=num_tokens,
                    num_extra_tokens=num_extra_tokens, token_grid=token_grid,
                    window_size=window_size)
        self.fc1 = WrappedBinaryLinear(embed_dims, feedforward_channels, True,
                                       **args)
        self.fc2 = WrappedBinaryLinear(feedforward_channels, embed_dims, True,
                                       **args)
        self._register_load_state_dict_pre_hook(
            _rename_mmcv_ffn_keys, with_module=True)

    def forward(self, x: torch.Tensor,
                hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        return self.fc2(self.fc1(x, hw_shape), hw_shape)


def _rename_mmcv_ffn_keys(module, state_dict, prefix, *args, **kwargs):
    for key in [k for k in state_dict if k.startswith(prefix)]:
        for old, new in _MMCV_FFN_KEYS:
            if key.startswith(prefix + old):
                state_dict[prefix + new + key[len(prefix + old):]] = \
                    state_dict.pop(key)
