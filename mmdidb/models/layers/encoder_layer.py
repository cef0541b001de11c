"""The DIDB-ViT encoder layer: pre-norm DIBA + binary FFN (DeiT topology)."""
from typing import Optional, Sequence

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .diba import DIBA
from .ffn import BinaryFFN


@MODELS.register_module()
class DIDBTransformerEncoderLayer(BaseModule):
    """``x + DIBA(LN(x))`` then ``x + FFN(LN(x))``.

    Parameter names follow mmpretrain's ``TransformerEncoderLayer``
    (``ln1``, ``attn``, ``ln2``, ``ffn``) so DeiT checkpoints load.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        feedforward_channels (int): FFN hidden channels.
        num_tokens (int): Tokens at the configured input size.
        num_extra_tokens (int): Extra (class) tokens. Defaults to 1.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        norm_cfg (dict): Pre-norms. Defaults to LN.
        attn_cfg (dict): Extra arguments of :class:`DIBA` (switches).
        ffn_cfg (dict): Extra arguments of :class:`BinaryFFN`.
        token_grid (tuple[int, int], optional): The patch grid at the
            configured input size, for IRPReLU's offsets; None means square.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 feedforward_channels: int,
                 num_tokens: int,
                 num_extra_tokens: int = 1,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 attn_cfg: dict = dict(),
                 ffn_cfg: dict = dict(),
                 token_grid: Optional[Sequence[int]] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        tokens = dict(num_tokens=num_tokens, num_extra_tokens=num_extra_tokens,
                      token_grid=token_grid)
        self.ln1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = DIBA(embed_dims, num_heads, **tokens, **attn_cfg)
        self.ln2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = BinaryFFN(embed_dims, feedforward_channels, **tokens,
                             **ffn_cfg)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 \
            else torch.nn.Identity()

    def forward(self, x: torch.Tensor,
                hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.ln1(x), hw_shape))
        return x + self.drop_path(self.ffn(self.ln2(x), hw_shape))
