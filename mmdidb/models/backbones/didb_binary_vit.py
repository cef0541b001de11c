"""DIDBBinaryViT: BinaryViT's pyramid with the DIDB modules."""
from typing import Optional, Sequence, Union

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.model import ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from torch import nn

from ..layers import BinaryPatchMerging, DIDBPyramidBlock
from .deployable import DeployableMixin
from .pretrained import PretrainedMixin, pretrained_init_cfg
from .stage_arch import parse_stage_arch, parse_stage_indices
from .switches import build_switches

_ARCH_KEYS = {'embed_dims', 'depths', 'num_heads', 'ffn_ratios', 'sr_ratios'}


class DIDBPyramidStage(nn.Module):
    """``merge`` (stages after the first) then ``blocks``."""

    def __init__(self, merge: Optional[nn.Module],
                 blocks: Sequence[nn.Module]):
        super().__init__()
        self.merge = merge
        self.blocks = ModuleList(blocks)


@MODELS.register_module()
class DIDBBinaryViT(PretrainedMixin, DeployableMixin, BaseBackbone):
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
    of each stage's grid. Where BinaryViT differs from METHOD.md (its
    activation binarizer, its attention binarizer), METHOD.md wins. The
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
        diba, theta, hfsc, hfsc_alpha, irprelu, binary_weights, binary_acts,
        act_cfg, qkv_bias, diba_self_term, d_init_scale, hfsc_alpha_param:
            The DIDB switches, as in :class:`DIDBViT`.
        pad_to_patch (bool): Pad inputs that are not a multiple of
            ``patch_size`` at the bottom/right (as mmseg's ViT and Swin
            do); False makes such sizes an error. Defaults to True.
        pretrained (str, optional): A checkpoint, as mmseg's backbones take
            it. Defaults to None.
        deploy (bool): Build in deploy mode. Defaults to False.
        init_cfg (dict, optional): Initialisation config.
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
                 diba: bool = True,
                 theta: int = 3,
                 hfsc: bool = True,
                 hfsc_alpha: float = 0.9,
                 irprelu: bool = True,
                 binary_weights: bool = True,
                 binary_acts: bool = True,
                 act_cfg: Optional[dict] = None,
                 qkv_bias: bool = True,
                 diba_self_term: str = 'paper',
                 d_init_scale: float = 0.0,
                 hfsc_alpha_param: str = 'clamp',
                 pad_to_patch: bool = True,
                 pretrained: Optional[str] = None,
                 deploy: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            pretrained_init_cfg('DIDBBinaryViT', pretrained, init_cfg))
        self.from_pretrained_arg = pretrained is not None
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
        self.out_indices = parse_stage_indices('DIDBBinaryViT', out_indices,
                                               self.num_layers)
        cfgs = build_switches('DIDBBinaryViT', diba, theta, hfsc, hfsc_alpha,
                              irprelu, binary_weights, binary_acts, act_cfg,
                              norm_cfg, qkv_bias, diba_self_term,
                              d_init_scale, hfsc_alpha_param)
        self.switches = cfgs['switches']

        self.patch_size = patch_size
        self.pad_to_patch = pad_to_patch
        # padding='corner' (mmcv's default) pads to whole patches
        self.patch_embed = PatchEmbed(
            in_channels=in_channels, input_size=img_size,
            embed_dims=self.embed_dims[0], conv_type='Conv2d',
            kernel_size=patch_size, stride=patch_size,
            norm_cfg=dict(type='LN'))
        grid = tuple(self.patch_embed.init_out_size)
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
                    num_tokens=grid[0] * grid[1], **cfgs['binary'])
                for module in merge.modules():
                    if getattr(module, 'token_offset', None) is not None:
                        module.token_grid = grid
            self.stage_grids.append(grid)
            self.pos_embed.append(
                nn.Parameter(torch.zeros(1, grid[0] * grid[1], dims)))
            blocks = [
                DIDBPyramidBlock(
                    dims, arch['num_heads'][i], grid, arch['ffn_ratios'][i],
                    arch['sr_ratios'][i], dpr.pop(0), pool_kernels,
                    layer_scale, norm_cfg, cfgs['attn'], cfgs['binary'])
                for _ in range(depth)
            ]
            self.stages.append(DIDBPyramidStage(merge, blocks))
        for i in self.out_indices:
            self.add_module(f'norm{i}',
                            build_norm_layer(norm_cfg, self.embed_dims[i])[1])
        self._register_load_state_dict_pre_hook(self._resize_pos_embed)
        self._init_deploy(deploy)

    def train(self, mode: bool = True):
        super().train(mode)
        return self

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
        if not self.pad_to_patch and (x.shape[-2] % self.patch_size
                                      or x.shape[-1] % self.patch_size):
            raise ValueError(
                f'DIDBBinaryViT: input size {tuple(x.shape[-2:])} is not '
                f'divisible by patch_size={self.patch_size}; resize or crop '
                'the input, or set pad_to_patch=True')
        x, hw_shape = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.stages):
            if stage.merge is not None:
                x, hw_shape = stage.merge(x, hw_shape)
            x = x + resize_pos_embed(self.pos_embed[i], self.stage_grids[i],
                                     hw_shape, self.interpolate_mode, 0)
            for block in stage.blocks:
                x = block(x, hw_shape)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                if self.out_type == 'avg_featmap':
                    out = out.mean(dim=1)
                else:
                    out = out.view(-1, *hw_shape, out.shape[-1]).permute(
                        0, 3, 1, 2).contiguous()
                outs.append(out)
        return tuple(outs)
