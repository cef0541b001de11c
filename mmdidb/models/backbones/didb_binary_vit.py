"""DIDBBinaryViT: BinaryViT's pyramid with the DIDB modules."""
from typing import Optional, Sequence, Union

import torch
from mmengine.model import ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from torch import nn

from ..layers import BinaryPatchMerging, DIDBPyramidBlock
from .base_didb import DIDBBackbone, DIDBStage
from .stage_arch import parse_stage_arch

_ARCH_KEYS = {'embed_dims', 'depths', 'num_heads', 'ffn_ratios', 'sr_ratios'}


@MODELS.register_module()
class DIDBBinaryViT(DIDBBackbone):
    """BinaryViT's pyramid (Le & Li, CVPRW 2023) made DIDB.

    Follows BinaryViT's pyramid variant ("binaryvit-small-patch4"):

    - a full-precision 4x4 patch embedding (conv + LN), then 4 stages of
      64-128-256-512 channels, 3-4-8-4 blocks, 1-2-4-8 heads, FFN ratios
      8-8-4-4;
    - between stages a binary 2x2 patch merging whose shortcut is the 2x2
      average pooling of the input, channels repeated
      (:class:`BinaryPatchMerging`), and a position embedding per stage;
    - attention keys/values pooled 8x8 and 4x4 in the first two stages
      (spatial reduction, :class:`SRDIBA`);
    - per block, horizontal and vertical average-pooling branches of sizes
      3 and 5 (:class:`PoolingBranches`) and an affine layer scale before
      each residual (:class:`ChannelAffine`);
    - no class token: the last stage is averaged over tokens (global
      average pooling) after a final LayerNorm.

    DIDB-ViT's modules replace BinaryViT's attention and activations: DIBA
    (on the spatially reduced keys/values, see :class:`SRDIBA` for how the
    self term and ``D(V)`` use them), HFSC, IRPReLU with one offset per token
    of each stage's grid. Where BinaryViT differs from docs/method.md (its
    activation binarizer, its attention binarizer), docs/method.md wins. The
    2x2 merge is a binary linear on the unfolded 2x2 neighbourhood (the same
    maths as BinaryViT's 2x2 stride-2 binary convolution) with the
    LayerNorm on the unfolded features, as Swin's merging (our choice, so
    one module serves both backbones).

    Args:
        arch (str | dict): 'mini' (2 stages of 32/64 channels, 2 blocks
            each: the Fashion-MNIST demo) or 'small'
            (BinaryViT-S), or a dict with ``embed_dims``, ``depths``,
            ``num_heads``, ``ffn_ratios`` and ``sr_ratios`` (lists, one entry
            per stage; each stage's channels a multiple of the previous).
            Defaults to 'small'.
        img_size (int | tuple): Input size the position embeddings and token
            offsets are made for. Defaults to 224.
        patch_size (int): Stem patch size. Defaults to 4.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (Sequence[int]): Stages to return. Defaults to (-1, ),
            the last.
        out_type (str): 'avg_featmap' (B, C) or 'featmap' (B, C, H, W).
            Defaults to 'avg_featmap'.
        pool_kernels (Sequence[int]): Pooling branches, () for none.
            Defaults to (3, 5).
        layer_scale (float, optional): Initial layer scale, None for none.
            Defaults to 0.1.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        interpolate_mode (str): Resize mode of position embeddings and
            offsets for other input sizes. Defaults to 'bicubic'.
        norm_cfg (dict): Norms. Defaults to LN with eps 1e-6.
        pad_to_patch (bool): Pad inputs that are not a multiple of
            ``patch_size`` at the bottom/right (as mmseg's ViT and Swin
            do); False makes such sizes an error. Defaults to True.
        pretrained (str, optional): A checkpoint, as mmseg's backbones take
            it. Defaults to None.
        deploy (bool): Build in deploy mode. Defaults to False.
        init_cfg (dict, optional): Initialisation config.
        **switches: The DIDB switches, see :class:`DIDBBackbone`.
    """
    arch_zoo = {
        'mini': dict(embed_dims=[32, 64], depths=[2, 2], num_heads=[1, 2],
                     ffn_ratios=[4, 4], sr_ratios=[2, 1]),
        'small': dict(embed_dims=[64, 128, 256, 512], depths=[3, 4, 8, 4],
                      num_heads=[1, 2, 4, 8], ffn_ratios=[8, 8, 4, 4],
                      sr_ratios=[8, 4, 1, 1]),
    }
    OUT_TYPES = ('avg_featmap', 'featmap')
    num_extra_tokens = 0

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (-1, ),
                 out_type: str = 'avg_featmap',
                 pool_kernels: Sequence[int] = (3, 5),
                 layer_scale: Optional[float] = 0.1,
                 drop_path_rate: float = 0.,
                 interpolate_mode: str = 'bicubic',
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 pad_to_patch: bool = True,
                 pretrained: Optional[str] = None,
                 deploy: bool = False,
                 init_cfg: Optional[dict] = None,
                 **switches):
        super().__init__(patch_size, pad_to_patch, norm_cfg, switches,
                         pretrained, init_cfg)
        arch = parse_stage_arch('DIDBBinaryViT', arch, self.arch_zoo,
                                _ARCH_KEYS)
        if not isinstance(arch['embed_dims'], (list, tuple)) or \
                len(arch['embed_dims']) != len(arch['depths']):
            raise ValueError('DIDBBinaryViT: arch embed_dims must be a list '
                             'with one entry per stage (depths), got '
                             f'{arch["embed_dims"]!r}')
        for i in range(1, len(arch['embed_dims'])):
            if arch['embed_dims'][i] % arch['embed_dims'][i - 1]:
                raise ValueError(
                    f'DIDBBinaryViT: arch embed_dims[{i}]='
                    f'{arch["embed_dims"][i]} must be a multiple of '
                    f'embed_dims[{i - 1}]={arch["embed_dims"][i - 1]} (the '
                    'patch-merging shortcut repeats channels)')
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'DIDBBinaryViT: out_type must be one of '
                             f'{self.OUT_TYPES}, got {out_type!r}')
        self.arch_settings = arch
        self.embed_dims = list(arch['embed_dims'])
        self.depths = list(arch['depths'])
        self.num_layers = len(self.depths)
        self.out_type = out_type
        self.interpolate_mode = interpolate_mode
        self.out_indices = self.parse_out_indices(out_indices, self.num_layers)
        grid = tuple(self.build_patch_embed(in_channels, img_size,
                                            self.embed_dims[0],
                                            dict(type='LN')))
        self.stage_grids = []
        self.pos_embed = nn.ParameterList()
        self.stages = ModuleList()
        dpr = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        for i, depth in enumerate(self.depths):
            dims = self.embed_dims[i]
            merge = None
            if i > 0:
                grid = tuple(-(-s // 2) for s in grid)
                merge = BinaryPatchMerging(
                    self.embed_dims[i - 1], dims,
                    num_tokens=grid[0] * grid[1], token_grid=grid,
                    **self.didb_cfgs['binary'])
            self.stage_grids.append(grid)
            self.pos_embed.append(
                nn.Parameter(torch.zeros(1, grid[0] * grid[1], dims)))
            blocks = [
                DIDBPyramidBlock(
                    dims, arch['num_heads'][i], grid, arch['ffn_ratios'][i],
                    arch['sr_ratios'][i], dpr.pop(0), pool_kernels,
                    layer_scale, norm_cfg, self.didb_cfgs['attn'],
                    self.didb_cfgs['binary'])
                for _ in range(depth)
            ]
            self.stages.append(DIDBStage(blocks, merge=merge))
        self.add_out_norms(norm_cfg, self.embed_dims)
        self._register_load_state_dict_pre_hook(self._resize_pos_embed)
        self._init_deploy(deploy)

    ckpt_family = 'pyramid'

    def init_extra_weights(self):
        # a checkpoint, if any, is loaded afterwards and overwrites them
        for pos_embed in self.pos_embed:
            trunc_normal_(pos_embed, std=0.02)

    def _resize_pos_embed(self, state_dict, prefix, *args, **kwargs):
        """Load position embeddings made for another input size."""
        for i, grid in enumerate(self.stage_grids):
            key = f'{prefix}pos_embed.{i}'
            if key in state_dict and \
                    state_dict[key].shape != self.pos_embed[i].shape:
                side = int(state_dict[key].shape[1]**0.5)
                state_dict[key] = resize_pos_embed(
                    state_dict[key], (side, side), grid,
                    self.interpolate_mode, 0)

    def forward(self, x: torch.Tensor) -> tuple:
        x, hw_shape = self.embed_patches(x)
        outs = []
        for i, stage in enumerate(self.stages):
            if stage.merge is not None:
                x, hw_shape = stage.merge(x, hw_shape)
            x = x + resize_pos_embed(self.pos_embed[i], self.stage_grids[i],
                                     hw_shape, self.interpolate_mode, 0)
            x = stage(x, hw_shape)
            if i in self.out_indices:
                outs.append(self.format_stage_output(i, x, hw_shape))
        return tuple(outs)
