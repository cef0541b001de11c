"""The base of the DIDB backbones: the plumbing each of them shares."""
from typing import Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.model import ModuleList
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch import nn

from .deployable import DeployableMixin
from .pretrained import PretrainedMixin, pretrained_init_cfg
from .stage_arch import parse_stage_indices
from .switches import build_switches


class DIDBStage(nn.Module):
    """The blocks of one pyramid stage and the patch merging beside them.

    Swin merges after a stage's blocks (``downsample``, named as in
    mmpretrain's ``SwinBlockSequence``), BinaryViT before them (``merge``);
    a stage has at most one of the two. ``forward`` runs the blocks only:
    the backbone places the merging, its outputs and position embeddings.

    Args:
        blocks (Sequence[nn.Module]): The blocks, called as
            ``block(x, hw_shape)``.
        merge (nn.Module, optional): Patch merging before the blocks.
        downsample (nn.Module, optional): Patch merging after the blocks.
    """

    def __init__(self, blocks: Sequence[nn.Module],
                 merge: Optional[nn.Module] = None,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.merge = merge
        self.blocks = ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, hw_shape)
        return x


class DIDBBackbone(PretrainedMixin, DeployableMixin, BaseBackbone):
    """The plumbing every DIDB backbone shares.

    A backbone adds its arch zoo (``arch_zoo``), its topology (built in
    ``__init__``) and ``forward``; this base owns the rest:

    - **The DIDB switches.** Flat keyword arguments, declared once with their
      defaults (:data:`~mmdidb.models.backbones.switches.DIDB_SWITCHES`) and
      checked once (:func:`~mmdidb.models.backbones.switches.build_switches`).
      A backbone takes them as ``**switches``, passes them here, and builds
      its layers from :attr:`didb_cfgs`: ``attn`` (the arguments of
      :class:`~mmdidb.models.layers.DIBA` and its window and reduction
      variants) and ``binary`` (those of every wrapped binary linear), as
      mmpretrain hands each layer its options (``layer_cfgs``) and timm its
      ``block_fn``/``attn_layer``. Flat keywords rather than one
      ``didb_cfg`` dict, so that every ablation is one key of the backbone
      (``model.backbone.diba=False``, also from the command line) and the
      existing configs keep their keys.
    - **The patch embedding and the pad-to-patch guard**
      (:meth:`build_patch_embed`, :meth:`embed_patches`).
    - **``out_indices`` and the stage outputs** (:meth:`parse_out_indices`,
      :meth:`add_out_norms`, :meth:`format_stage_output`).
    - **Pretrained initialisation** from any supported checkpoint format and
      mmseg's ``pretrained`` argument (:class:`PretrainedMixin`; a backbone
      sets ``ckpt_family`` and may add ``init_extra_weights``).
    - **Deploy mode** (:class:`DeployableMixin`): a backbone ends its
      ``__init__`` with ``self._init_deploy(deploy)``, once its layers exist.

    The DIDB switches (docs/method.md), keyword arguments of every DIDB
    backbone. All of ``diba``, ``hfsc`` and ``irprelu`` off is the naive
    binary ViT (RPReLU activations); ``binary_weights=False,
    binary_acts=False`` is full precision.

    - ``diba`` (bool): Differential-information binary attention (the self
      term and ``D``). Defaults to True.
    - ``theta`` (int): Odd neighbourhood size of DIBA's local term ``D``,
      1 = off. Defaults to 3.
    - ``hfsc`` (bool): High-fidelity (Haar-band) similarity. Defaults to
      True.
    - ``hfsc_alpha`` (float): Initial weight of the low band, in [0, 1].
      Defaults to 0.9.
    - ``irprelu`` (bool): IRPReLU (token offsets) instead of RPReLU.
      Defaults to True.
    - ``binary_weights`` (bool): 1-bit weights. Defaults to True.
    - ``binary_acts`` (bool): 1-bit activations. Defaults to True.
    - ``act_cfg`` (dict, optional): Overrides the activation of the wrapped
      linears entirely (e.g. ``dict(type='GELU')``); takes precedence over
      ``irprelu``.
    - ``qkv_bias`` (bool): Bias on Q, K, V. Defaults to True.
    - ``diba_self_term`` (str): DIBA's self term: ``'paper'``
      (``(1 - A·1) ⊙ V``), ``'off'`` or ``'convex'`` (see
      :class:`~mmdidb.models.layers.DIBA`). Defaults to ``'paper'``.
    - ``d_init_scale`` (float): Initial per-channel scale of ``D``. Defaults
      to 0.0 (``D`` starts switched off).
    - ``hfsc_alpha_param`` (str): How HFSC keeps its fusion weight in
      [0, 1]: ``'clamp'``, ``'clamp_ste'`` or ``'sigmoid'`` (see
      :class:`~mmdidb.models.layers.HFSC`). Defaults to ``'clamp'``.

    Args:
        patch_size (int): Patch size of the patch embedding.
        pad_to_patch (bool): Pad inputs that are not a multiple of
            ``patch_size`` at the bottom/right, as mmseg's ViT and Swin do;
            False makes such sizes an error.
        norm_cfg (dict): The backbone's norms, those of the wrapped binary
            linears included.
        switches (dict): The DIDB switches the backbone was given.
        pretrained (str, optional): A checkpoint, as mmseg's backbones take
            it: the same as ``init_cfg=dict(type='Pretrained',
            checkpoint=pretrained)``.
        init_cfg (dict, optional): Initialisation config.

    Raises:
        TypeError: An unknown keyword argument.
        ValueError: A bad switch value, naming the field.
    """

    #: What :meth:`format_stage_output` returns: ``'featmap'``
    #: (B, C, H, W) or ``'avg_featmap'`` (B, C).
    out_type = 'featmap'

    def __init__(self,
                 patch_size: int,
                 pad_to_patch: bool,
                 norm_cfg: dict,
                 switches: dict,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        name = type(self).__name__
        super().__init__(pretrained_init_cfg(name, pretrained, init_cfg))
        self.from_pretrained_arg = pretrained is not None
        self.patch_size = patch_size
        self.pad_to_patch = pad_to_patch
        cfgs = build_switches(name, norm_cfg, **switches)
        #: the switch values, for logs and tests
        self.switches = cfgs['switches']
        #: the layer arguments the switches set: ``attn`` and ``binary``
        self.didb_cfgs = dict(attn=cfgs['attn'], binary=cfgs['binary'])

    def train(self, mode: bool = True):
        """Set the training mode and return ``self``, as ``nn.Module`` does.

        mmpretrain's ``BaseBackbone.train`` returns None.
        """
        super().train(mode)
        return self

    def parse_out_indices(self, out_indices, num_stages: int,
                          unit: str = 'stages') -> list:
        """``out_indices`` normalised (negative allowed) and range-checked."""
        return parse_stage_indices(type(self).__name__, out_indices,
                                   num_stages, unit)

    def build_patch_embed(self, in_channels: int, img_size, embed_dims: int,
                          norm_cfg: Optional[dict] = None,
                          patch_cfg: Optional[dict] = None) -> Tuple[int, int]:
        """Build ``patch_embed`` and set ``patch_resolution``, its grid.

        A ``patch_size`` convolution with mmcv's ``padding='corner'``, which
        pads the bottom/right corner to whole patches (as mmseg's ViT and
        Swin). ``patch_cfg`` updates its arguments, as in mmpretrain.

        Returns:
            tuple[int, int]: The patch grid of ``img_size``.
        """
        cfg = dict(in_channels=in_channels, input_size=img_size,
                   embed_dims=embed_dims, conv_type='Conv2d',
                   kernel_size=self.patch_size, stride=self.patch_size,
                   norm_cfg=norm_cfg)
        cfg.update(patch_cfg or {})
        self.patch_embed = PatchEmbed(**cfg)
        self.patch_resolution = self.patch_embed.init_out_size
        return self.patch_resolution

    def embed_patches(self, x: torch.Tensor
                      ) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """The (B, N, C) patch tokens of ``x`` and their (H, W) grid.

        Raises:
            ValueError: ``x`` is not a multiple of ``patch_size`` and
                ``pad_to_patch`` is False.
        """
        if not self.pad_to_patch and (x.shape[-2] % self.patch_size
                                      or x.shape[-1] % self.patch_size):
            raise ValueError(
                f'{type(self).__name__}: input size {tuple(x.shape[-2:])} is '
                f'not divisible by patch_size={self.patch_size}; resize or '
                'crop the input to a multiple of the patch size, or set '
                'pad_to_patch=True to pad it as mmseg\'s ViT and Swin do')
        return self.patch_embed(x)

    def add_out_norms(self, norm_cfg: dict, channels: Sequence[int]) -> None:
        """Add a norm ``norm{i}`` over ``channels[i]`` per returned stage.

        The names are mmpretrain's, so its checkpoints fill them.
        """
        for i in self.out_indices:
            self.add_module(f'norm{i}',
                            build_norm_layer(norm_cfg, channels[i])[1])

    def format_stage_output(self, index: int, x: torch.Tensor,
                            hw_shape: Sequence[int]) -> torch.Tensor:
        """Stage ``index``'s (B, N, C) tokens, normed, as :attr:`out_type`."""
        out = getattr(self, f'norm{index}')(x)
        if self.out_type == 'avg_featmap':
            return out.mean(dim=1)
        return out.view(-1, *hw_shape, out.shape[-1]).permute(
            0, 3, 1, 2).contiguous()
