"""DIDBSwin: the fully binary Swin Transformer with the DIDB modules."""
from typing import Optional, Sequence, Union

import torch
from mmengine.model import ModuleList
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from mmpretrain.models.backbones.swin_transformer import SwinTransformer
from mmpretrain.registry import MODELS
from torch import nn

from ..layers import BinaryPatchMerging, DIDBSwinBlock
from ..layers.window_diba import check_window_fit
from .base_didb import DIDBBackbone, DIDBStage
from .stage_arch import parse_stage_arch


@MODELS.register_module()
class DIDBSwin(DIDBBackbone):
    """DIDB-ViT's modules on the Swin Transformer topology.

    Swin (Liu et al. 2021): patch embedding, stages of (shifted-)window
    blocks, patch merging between stages, multi-level outputs. Made binary
    as DIDB-ViT (docs/method.md, sections 1-5):

    - every linear layer of every block is a wrapped binary linear (Q, K, V,
      output projection, both FFN layers), and so is the patch-merging
      reduction (with BinaryViT's average-pooling shortcut,
      :class:`BinaryPatchMerging`);
    - attention is DIBA inside each window (:class:`WindowDIBA`): binary
      ``Q·Kᵀ`` and ``A·V``, the self term, and the θ×θ local term on the
      window's token grid; Swin's relative position bias stays full
      precision;
    - HFSC splits each window's grid into Haar bands;
    - IRPReLU's token offsets are one per window position (``window_size²``
      values), tiled over whole maps in the FFN and the patch merging;
    - in shifted windows, tokens of different shift regions neither attend
      to each other (Swin's mask) nor count as neighbours for the Haar split
      and ``D(V)``.

    Full precision: patch embedding, LayerNorms, softmax, relative position
    bias, residuals, all scales and shifts. State-dict keys follow
    mmpretrain's :class:`SwinTransformer` (``qkv`` is split on load), so
    ``init_cfg=dict(type='Pretrained', checkpoint=<FP Swin>)`` (or mmseg's
    ``pretrained``) initialises every binary layer from mmpretrain's,
    mmseg's converted, the official Swin release's or timm's (>= 0.9) keys
    (see :mod:`.ckpt_convert`); only the binarizers', wrappers' norms' and
    activations' own parameters are new.

    Inputs that are not a multiple of the patch size are padded at the
    bottom and right and maps that are not a multiple of the window are
    padded inside each block and cropped back after it, as mmseg's Swin
    does; stage outputs are returned on the patch grid of the padded input.

    Args:
        arch (str | dict): 'mini' (2 stages of 32/64 channels, 2 blocks
            each: the Fashion-MNIST demo) or 'tiny' (Swin-T:
            96 channels, depths 2-2-6-2, heads 3-6-12-24), or a dict with
            ``embed_dims``, ``depths`` and ``num_heads`` (lists of the same
            length). Defaults to 'tiny'.
        img_size (int | tuple): Input size the checks are made for.
            Defaults to 224.
        patch_size (int): Patch size. Defaults to 4.
        in_channels (int): Input channels. Defaults to 3.
        window_size (int): Window side. Defaults to 7.
        ffn_ratio (float): FFN expansion. Defaults to 4.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        out_indices (Sequence[int]): Stages whose (normed) output is
            returned as (B, C, H, W). Defaults to (-1, ), the last.
        pad_small_map (bool): Pad maps smaller than a window (segmentation);
            False raises at build time for ``img_size``. Defaults to False.
        pad_to_window (bool): Pad maps that are not a multiple of the
            window, as Swin does. False makes such sizes an error.
            Defaults to True.
        norm_cfg (dict): Norms. Defaults to LN.
        frozen_stages (int): Stages to freeze, -1 for none. Defaults to -1.
        norm_eval (bool): Keep BatchNorms in eval mode. Defaults to False.
        patch_cfg (dict): Extra arguments of the patch embedding.
        pad_to_patch (bool): Pad inputs that are not a multiple of
            ``patch_size`` at the bottom/right, as mmseg's Swin does. False
            makes such sizes an error. Defaults to True.
        pretrained (str, optional): A checkpoint, as mmseg's backbones take
            it. Defaults to None.
        deploy (bool): Build in deploy mode. Defaults to False.
        init_cfg (dict, optional): Initialisation config.
        **switches: The DIDB switches, see :class:`DIDBBackbone`.
    """
    arch_zoo = {
        'mini': dict(embed_dims=32, depths=[2, 2], num_heads=[1, 2]),
        'tiny': dict(embed_dims=96, depths=[2, 2, 6, 2],
                     num_heads=[3, 6, 12, 24]),
    }
    num_extra_tokens = 0
    # mmpretrain's SwinTransformer version whose key names we use
    _version = 3

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 window_size: int = 7,
                 ffn_ratio: float = 4.,
                 drop_path_rate: float = 0.,
                 out_indices: Sequence[int] = (-1, ),
                 pad_small_map: bool = False,
                 pad_to_window: bool = True,
                 norm_cfg: dict = dict(type='LN'),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 patch_cfg: dict = dict(),
                 pad_to_patch: bool = True,
                 pretrained: Optional[str] = None,
                 deploy: bool = False,
                 init_cfg: Optional[dict] = None,
                 **switches):
        super().__init__(patch_size, pad_to_patch, norm_cfg, switches,
                         pretrained, init_cfg)
        arch = parse_stage_arch('DIDBSwin', arch, self.arch_zoo)
        self.arch_settings = arch
        self.embed_dims = arch['embed_dims']
        self.depths = list(arch['depths'])
        self.num_heads = list(arch['num_heads'])
        self.num_layers = len(self.depths)
        if not isinstance(window_size, int) or window_size < 2:
            raise ValueError(f'DIDBSwin: window_size must be an int >= 2, '
                             f'got {window_size!r}')
        self.window_size = window_size
        self.pad_small_map = pad_small_map
        self.pad_to_window = pad_to_window
        self.out_indices = self.parse_out_indices(out_indices, self.num_layers)
        self.build_patch_embed(in_channels, img_size, self.embed_dims,
                               dict(type='LN'), patch_cfg)
        self._check_maps(self.patch_resolution, 'img_size')
        self.drop_after_pos = nn.Identity()

        dpr = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.stages = ModuleList()
        self.num_features = []
        dims = self.embed_dims
        # the merging's IRPReLU offsets are one per window position, tiled
        # over its map, as in the blocks
        merge_cfg = dict(self.didb_cfgs['binary'], num_tokens=window_size**2,
                         window_size=window_size)
        for i, (depth, heads) in enumerate(zip(self.depths, self.num_heads)):
            blocks = [
                DIDBSwinBlock(
                    dims, heads, window_size, shift=j % 2 == 1,
                    ffn_ratio=ffn_ratio, drop_path=dpr.pop(0),
                    pad_small_map=pad_small_map, pad_to_window=pad_to_window,
                    norm_cfg=norm_cfg, attn_cfg=self.didb_cfgs['attn'],
                    ffn_cfg=self.didb_cfgs['binary']) for j in range(depth)
            ]
            downsample = None
            if i < self.num_layers - 1:
                downsample = BinaryPatchMerging(dims, 2 * dims, **merge_cfg)
            self.stages.append(DIDBStage(blocks, downsample=downsample))
            self.num_features.append(dims)
            dims = 2 * dims
        self.add_out_norms(norm_cfg, self.num_features)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.out_after_downsample = False
        self._register_load_state_dict_pre_hook(
            self._prepare_relative_position_bias_table)
        self._init_deploy(deploy)

    # mmpretrain's Swin logic works unchanged on our attributes
    _prepare_relative_position_bias_table = \
        SwinTransformer._prepare_relative_position_bias_table
    _freeze_stages = SwinTransformer._freeze_stages
    ckpt_family = 'swin'
    get_layer_depth = SwinTransformer.get_layer_depth

    def _check_maps(self, hw_shape, field: str) -> None:
        """Check every stage's map against the window rules for this size."""
        h, w = hw_shape
        for stage in range(self.num_layers):
            try:
                check_window_fit((h, w), self.window_size, self.pad_small_map,
                                 self.pad_to_window)
            except ValueError as err:
                raise ValueError(f'DIDBSwin: {field} gives stage {stage} a '
                                 f'{err}') from None
            h, w = -(-h // 2), -(-w // 2)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              *args, **kwargs):
        """Rename the keys of older mmcls Swin checkpoints, as mmpretrain."""
        version = local_metadata.get('version', None)
        if version is None or version < 2:
            last = f'norm{self.num_layers - 1}.'
            for key in [k for k in state_dict if k.startswith(prefix + 'norm.')]:
                state_dict[prefix + last + key[len(prefix + 'norm.'):]] = \
                    state_dict.pop(key)
        if version is None or version < 3:
            for key in [k for k in state_dict if 'attn_mask' in k]:
                del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      *args, **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple:
        x, hw_shape = self.embed_patches(x)
        self._check_maps(hw_shape, 'the input size')
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x, hw_shape)
            if i in self.out_indices:
                outs.append(self.format_stage_output(i, x, hw_shape))
            if stage.downsample is not None:
                x, hw_shape = stage.downsample(x, hw_shape)
        return tuple(outs)
