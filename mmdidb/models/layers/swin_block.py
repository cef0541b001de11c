"""The DIDBSwin block: pre-norm (shifted-)window DIBA + binary FFN."""
from typing import Optional, Sequence

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .ffn import BinaryFFN
from .window_diba import ShiftWindowDIBA


@MODELS.register_module()
class DIDBSwinBlock(BaseModule):
    """``x + W-DIBA(LN(x))`` then ``x + FFN(LN(x))``, Swin's block made binary.

    Parameter names follow mmpretrain's ``SwinBlock`` (``norm1``, ``attn``,
    ``norm2``, ``ffn``). The FFN's IRPReLU offsets are one per window
    position, tiled over the feature map.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        window_size (int): Window side. Defaults to 7.
        shift (bool): Shifted windows (shift of ``window_size // 2``).
            Defaults to False.
        ffn_ratio (float): FFN expansion. Defaults to 4.
        drop_path (float): Stochastic depth. Defaults to 0.
        pad_small_map (bool): See :class:`ShiftWindowDIBA`.
        pad_to_window (bool): See :class:`ShiftWindowDIBA`.
        norm_cfg (dict): Norms. Defaults to LN.
        attn_cfg (dict): Switches of :class:`WindowDIBA`.
        ffn_cfg (dict): Binary options of :class:`BinaryFFN`.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int = 7,
                 shift: bool = False,
                 ffn_ratio: float = 4.,
                 drop_path: float = 0.,
                 pad_small_map: bool = False,
                 pad_to_window: bool = True,
                 norm_cfg: dict = dict(type='LN'),
                 attn_cfg: dict = dict(),
                 ffn_cfg: dict = dict(),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = ShiftWindowDIBA(
            embed_dims, num_heads, window_size,
            shift_size=window_size // 2 if shift else 0,
            pad_small_map=pad_small_map, pad_to_window=pad_to_window,
            **attn_cfg)
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = BinaryFFN(embed_dims, int(embed_dims * ffn_ratio),
                             num_tokens=window_size**2, num_extra_tokens=0,
                             window_size=window_size, **ffn_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else torch.nn.Identity()

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw_shape))
        return x + self.drop_path(self.ffn(self.norm2(x), hw_shape))
