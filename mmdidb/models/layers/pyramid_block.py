"""The DIDBBinaryViT block: DIBA with spatial reduction, FFN, pooling branches."""
from typing import Optional, Sequence

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn

from .channel_affine import ChannelAffine
from .ffn import BinaryFFN
from .pooling_branches import PoolingBranches
from .sr_diba import SRDIBA


@MODELS.register_module()
class DIDBPyramidBlock(BaseModule):
    """A BinaryViT block with the DIDB modules.

    ``x = x + ls1(SRDIBA(LN1(x)))``, then, with ``h = LN2(x)``,
    ``x = x + ls2(FFN(h)) + PoolingBranches(h)``, where ``ls`` are
    :class:`ChannelAffine` layer scales (BinaryViT's affine before each
    residual).

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        hw_shape (tuple[int, int]): Patch grid at the configured input size.
        ffn_ratio (int): FFN expansion.
        sr_ratio (int): Key/value pooling of :class:`SRDIBA`.
        drop_path (float): Stochastic depth. Defaults to 0.
        pool_kernels (Sequence[int]): Pooling branches; empty turns them
            off. Defaults to (3, 5).
        layer_scale (float, optional): Initial scale of ``ls1``/``ls2``;
            None turns them off. Defaults to 0.1.
        norm_cfg (dict): Norms. Defaults to LN.
        attn_cfg (dict): Switches of :class:`SRDIBA`.
        ffn_cfg (dict): Binary options of :class:`BinaryFFN`.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 hw_shape: Sequence[int],
                 ffn_ratio: int,
                 sr_ratio: int,
                 drop_path: float = 0.,
                 pool_kernels: Sequence[int] = (3, 5),
                 layer_scale: Optional[float] = 0.1,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 attn_cfg: dict = dict(),
                 ffn_cfg: dict = dict(),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        num_tokens = int(hw_shape[0]) * int(hw_shape[1])
        self.ln1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = SRDIBA(embed_dims, num_heads, hw_shape, sr_ratio,
                           **attn_cfg)
        self.ln2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = BinaryFFN(embed_dims, embed_dims * ffn_ratio,
                             num_tokens=num_tokens, num_extra_tokens=0,
                             token_grid=tuple(hw_shape), **ffn_cfg)

        def scale():
            return ChannelAffine(embed_dims, layer_scale) \
                if layer_scale is not None else nn.Identity()

        self.ls1, self.ls2 = scale(), scale()
        self.pool = PoolingBranches(embed_dims, pool_kernels) \
            if pool_kernels else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.ln1(x), hw_shape)))
        h = self.ln2(x)
        x = x + self.drop_path(self.ls2(self.ffn(h, hw_shape)))
        if self.pool is not None:
            x = x + self.pool(h, hw_shape)
        return x
