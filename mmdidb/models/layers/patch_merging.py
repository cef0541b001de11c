"""Binary patch merging with an average-pooling shortcut."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .wrapped_linear import WrappedBinaryLinear


@MODELS.register_module()
class BinaryPatchMerging(BaseModule):
    """Halve the resolution: 2x2 neighbours -> one token, binary reduction.

    ``y = act(Norm(BinaryLinear(LN(unfold_2x2(x)))) + repeat(avgpool_2x2(x)))``:
    the merge of Swin's ``PatchMerging`` (the 2x2 neighbours concatenated
    channel-major, as ``nn.Unfold`` orders them, a LayerNorm, a linear
    ``4C -> C_out``) as a wrapped binary linear whose shortcut is
    BinaryViT's: the 2x2 average of the input, each channel repeated
    ``C_out / C`` times. Odd maps are zero-padded at the bottom/right for
    the merge (mmcv's ``padding='corner'``); the shortcut averages only the
    real tokens.

    ``norm`` and ``reduction.weight`` carry the names of mmcv's
    ``PatchMerging``, so Swin checkpoints initialise them.

    Args:
        in_channels (int): Channels ``C`` in.
        out_channels (int): Channels out, a multiple of ``in_channels``.
        binary_weights (bool): 1-bit weights. Defaults to True.
        binary_acts (bool): 1-bit activations. Defaults to True.
        norm_cfg (dict): Norms. Defaults to LN.
        act_cfg (dict, optional): Activation at the end. Defaults to
            IRPReLU.
        num_tokens (int, optional): Token count of IRPReLU's offsets.
        token_grid (tuple[int, int], optional): The merged grid the offsets
            are learned on (see :class:`WrappedBinaryLinear`).
        window_size (int, optional): Offsets per window position (see
            :class:`WrappedBinaryLinear`).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 binary_weights: bool = True,
                 binary_acts: bool = True,
                 norm_cfg: dict = dict(type='LN'),
                 act_cfg: Optional[dict] = dict(type='IRPReLU'),
                 num_tokens: Optional[int] = None,
                 token_grid: Optional[Sequence[int]] = None,
                 window_size: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if out_channels % in_channels:
            raise ValueError(
                f'BinaryPatchMerging: out_channels={out_channels} must be a '
                f'multiple of in_channels={in_channels} for the shortcut')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm = build_norm_layer(norm_cfg, 4 * in_channels)[1]
        self.reduction = WrappedBinaryLinear(
            4 * in_channels, out_channels, False, binary_weights, binary_acts,
            norm_cfg, act_cfg, num_tokens, num_extra_tokens=0,
            token_grid=token_grid, window_size=window_size)

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]
                ) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Merge (B, H*W, C) tokens into (B, ceil(H/2)*ceil(W/2), C_out)."""
        b, n, c = x.shape
        h, w = hw_shape
        if n != h * w or c != self.in_channels:
            raise ValueError(
                f'BinaryPatchMerging: got {n} tokens of {c} channels for a '
                f'{h}x{w} map of {self.in_channels} channels')
        grid = x.transpose(1, 2).reshape(b, c, h, w)
        shortcut = F.avg_pool2d(grid, 2, 2, ceil_mode=True)
        out_hw = tuple(shortcut.shape[2:])
        shortcut = shortcut.flatten(2).transpose(1, 2).repeat_interleave(
            self.out_channels // c, dim=-1)
        merged = F.unfold(F.pad(grid, (0, w % 2, 0, h % 2)), 2, stride=2)
        merged = self.norm(merged.transpose(1, 2))
        return self.reduction(merged, out_hw, shortcut=shortcut), out_hw
