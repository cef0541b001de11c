"""DIDB-ViT: the fully binary DeiT backbone."""
from typing import Optional, Sequence, Union

import numpy as np
import torch
from mmcv.cnn import build_norm_layer
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.vision_transformer import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from torch import nn

from ..layers import DIDBTransformerEncoderLayer
from .base_didb import DIDBBackbone
from .stage_arch import resolve_arch

_ARCH_KEYS = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'}


@MODELS.register_module()
class DIDBViT(DIDBBackbone):
    """DIDB-ViT (Gao et al., arXiv:2507.02222) on the DeiT topology.

    Full precision: patch embedding, position embedding, class token,
    LayerNorms, softmax, residuals. Binary: every linear layer of every
    block, the attention products and DIBA's local convolution. Outputs
    follow mmpretrain's :class:`VisionTransformer` (``out_indices``,
    ``out_type``), and so do the state-dict keys: a full-precision DeiT
    checkpoint initialises the model through
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` (or mmseg's
    ``pretrained``), in mmpretrain's format, mmseg's converted ViT format or
    as the official DeiT / timm file (see :mod:`.ckpt_convert`); the
    binarizers', norms' and activations' own parameters are reported
    missing by design.

    Inputs that are not a multiple of the patch size are padded at the
    bottom and right, as mmseg's ViT does (``pad_to_patch``), and the
    position embedding and IRPReLU's token offsets are resized to the
    padded grid. Feature maps are returned on that grid, uncropped, as
    mmseg's ViT returns them (the decode head resizes to the input).

    Each DIDB module is a switch (see :class:`DIDBBackbone`), so ablations
    are configs: all of ``diba``, ``hfsc`` and ``irprelu`` off is the naive
    binary ViT (RPReLU activations), and ``binary_weights=False,
    binary_acts=False`` is full precision.

    Args:
        arch (str | dict): 'mini', 'deit-tiny', 'deit-small' or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads`` and
            ``feedforward_channels``. Defaults to 'deit-small'.
        img_size (int | tuple): Input size the position embedding and token
            offsets are made for (on its padded grid). Defaults to 224.
        patch_size (int): Patch size. Defaults to 16.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (int | Sequence[int]): Layers whose output is returned.
            Defaults to -1.
        out_type (str): 'raw', 'cls_token', 'featmap' or 'avg_featmap'.
            Defaults to 'cls_token'.
        with_cls_token (bool): Use a class token. Defaults to True.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        final_norm (bool): LayerNorm after the last layer. Defaults to True.
        interpolate_mode (str): Resize mode of position embedding and token
            offsets. Defaults to 'bicubic'.
        norm_cfg (dict): Norm config. Defaults to LN with eps 1e-6.
        last_block_d (bool): Build DIBA's local term in the last layer.
            With the class-token readout (``out_type='cls_token'``, last
            layer only) it cannot reach the output: the class token gets
            ``D = 0`` and everything after the attention is per token, so
            it never trains. False leaves it out (allowed only there).
            Defaults to True.
        frozen_stages (int): Layers to freeze. Defaults to -1.
        patch_cfg (dict): Extra arguments of the patch embedding.
        pad_to_patch (bool): Pad inputs (and ``img_size``) that are not a
            multiple of ``patch_size`` at the bottom/right corner, as mmseg's
            ViT does. False makes such sizes an error instead. Defaults to
            True.
        pretrained (str, optional): A checkpoint, as mmseg's backbones take
            it (mmseg's ``EncoderDecoder`` passes its own): the same as
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``.
        deploy (bool): Build directly in deploy mode (see
            :meth:`switch_to_deploy`), ready for a deploy checkpoint.
            Defaults to False.
        init_cfg (dict, optional): Initialisation config.
        **switches: The DIDB switches (``diba``, ``theta``, ``hfsc``,
            ``hfsc_alpha``, ``irprelu``, ``binary_weights``, ``binary_acts``,
            ``act_cfg``, ``qkv_bias``, ``diba_self_term``, ``d_init_scale``,
            ``hfsc_alpha_param``), see :class:`DIDBBackbone`.

    Deploy mode: :meth:`switch_to_deploy` (or
    :func:`mmdidb.models.deploy.switch_to_deploy` on the whole classifier)
    packs every binary weight to 1 bit and runs every binary product on
    packed bits through :mod:`mmdidb.ops`. Loading a deploy checkpoint (one
    with ``*.weight_packed`` entries) into a model in training form
    switches it to deploy mode first, so stock tools evaluate deploy
    checkpoints unchanged.
    """
    arch_zoo = {
        'mini': dict(embed_dims=64, num_layers=4, num_heads=2,
                     feedforward_channels=256),
        'deit-tiny': dict(embed_dims=192, num_layers=12, num_heads=3,
                          feedforward_channels=768),
        'deit-small': dict(embed_dims=384, num_layers=12, num_heads=6,
                           feedforward_channels=1536),
    }
    OUT_TYPES = VisionTransformer.OUT_TYPES
    num_extra_tokens = 1

    def __init__(self,
                 arch: Union[str, dict] = 'deit-small',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'cls_token',
                 with_cls_token: bool = True,
                 drop_path_rate: float = 0.,
                 final_norm: bool = True,
                 interpolate_mode: str = 'bicubic',
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 last_block_d: bool = True,
                 frozen_stages: int = -1,
                 patch_cfg: dict = dict(),
                 pad_to_patch: bool = True,
                 pretrained: Optional[str] = None,
                 deploy: bool = False,
                 init_cfg: Optional[dict] = None,
                 **switches):
        super().__init__(patch_size, pad_to_patch, norm_cfg, switches,
                         pretrained, init_cfg)
        self.arch_settings = resolve_arch('DIDBViT', arch, self.arch_zoo,
                                          _ARCH_KEYS)
        self.embed_dims = self.arch_settings['embed_dims']
        self.num_layers = self.arch_settings['num_layers']
        img_size = _check_img_size(img_size, patch_size, pad_to_patch)
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'out_type must be one of {self.OUT_TYPES}, got '
                             f'{out_type!r}')
        if out_type == 'cls_token' and not with_cls_token:
            raise ValueError('with_cls_token must be True when '
                             'out_type="cls_token"')
        if not last_block_d and (out_type != 'cls_token'
                                 or out_indices not in (-1, [-1], (-1, ))):
            raise ValueError(
                'DIDBViT: last_block_d=False drops a term that only the '
                "class-token readout of the last layer cannot see; use it "
                "with out_type='cls_token' and out_indices=-1, got "
                f'out_type={out_type!r}, out_indices={out_indices!r}')
        self.switches = dict(self.switches, last_block_d=last_block_d)
        self.build_patch_embed(in_channels, img_size, self.embed_dims,
                               patch_cfg=patch_cfg)
        num_patches = self.patch_resolution[0] * self.patch_resolution[1]

        self.out_type = out_type
        self.with_cls_token = with_cls_token
        if with_cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        else:
            self.cls_token = None
            self.num_extra_tokens = 0
        num_tokens = num_patches + self.num_extra_tokens
        self.interpolate_mode = interpolate_mode
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_tokens, self.embed_dims))
        self._register_load_state_dict_pre_hook(self._prepare_pos_embed)
        self.drop_after_pos = nn.Identity()
        self.pre_norm = nn.Identity()

        self.out_indices = self.parse_out_indices(out_indices, self.num_layers,
                                                  'layers')
        dpr = np.linspace(0, drop_path_rate, self.num_layers)
        # theta=1 builds no D (last_block_d=False: the last layer's)
        attn = self.didb_cfgs['attn']
        attn_cfgs = [attn] * self.num_layers
        if not last_block_d:
            attn_cfgs[-1] = dict(attn, theta=1)
        # the token offsets are learned on this (possibly non-square) grid
        self.layers = nn.ModuleList([
            DIDBTransformerEncoderLayer(
                self.embed_dims, self.arch_settings['num_heads'],
                self.arch_settings['feedforward_channels'], num_tokens,
                self.num_extra_tokens, float(dpr[i]), norm_cfg, attn_cfgs[i],
                self.didb_cfgs['binary'],
                token_grid=tuple(self.patch_resolution))
            for i in range(self.num_layers)
        ])

        self.final_norm = final_norm
        if final_norm:
            self.ln1 = build_norm_layer(norm_cfg, self.embed_dims)[1]
        if out_type == 'avg_featmap':
            self.ln2 = build_norm_layer(norm_cfg, self.embed_dims)[1]
        self.frozen_stages = frozen_stages
        if frozen_stages > 0:
            self._freeze_stages()
        self._init_deploy(deploy)

    # mmpretrain's ViT logic works unchanged on our attributes.
    _prepare_pos_embed = VisionTransformer._prepare_pos_embed
    _freeze_stages = VisionTransformer._freeze_stages
    _format_output = VisionTransformer._format_output
    get_layer_depth = VisionTransformer.get_layer_depth
    norm1 = VisionTransformer.norm1
    norm2 = VisionTransformer.norm2

    def init_extra_weights(self):
        # a checkpoint, if any, is loaded afterwards and overwrites it
        trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> tuple:
        batch = x.shape[0]
        x, patch_resolution = self.embed_patches(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x, patch_resolution)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)


def _check_img_size(img_size, patch_size, pad_to_patch=False):
    size = (img_size, img_size) if isinstance(img_size, int) \
        else tuple(img_size)
    if len(size) != 2:
        raise ValueError(f'DIDBViT: img_size must be an int or (H, W), got '
                         f'{img_size!r}')
    if not pad_to_patch and any(s % patch_size for s in size):
        raise ValueError(
            f'DIDBViT: img_size={img_size} must be divisible by '
            f'patch_size={patch_size} (e.g. 224 with patch 16, 28 with '
            'patch 4) when pad_to_patch=False')
    return size

