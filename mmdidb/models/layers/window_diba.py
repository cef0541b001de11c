"""DIBA inside (shifted) windows, for Swin-style backbones (DIDBSwin)."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmengine.registry import MODELS
from torch import nn

from .diba import DIBA

#: Swin's additive mask between tokens of different shift regions.
MASK_VALUE = -100.0


@MODELS.register_module()
class WindowDIBA(DIBA):
    """:class:`DIBA` on the tokens of one window, with relative position bias.

    The input is a batch of windows, ``(B * nW, window_size**2, C)``. Every
    DIBA part works on the window's token grid: HFSC splits each window,
    ``D(V)`` looks at neighbours inside the window, IRPReLU's offsets are one
    per window position. The relative position bias of Swin stays full
    precision and is added to the scaled similarities before the softmax.
    With shift-region labels (shifted windows), tokens of different regions
    do not attend to each other (Swin's -100 mask) and are not neighbours
    for the Haar split and ``D(V)`` either.

    Parameter names follow mmpretrain's ``WindowMSA`` (``qkv`` is split into
    ``q``/``k``/``v`` on load, ``relative_position_bias_table``), so a Swin
    checkpoint initialises it.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        window_size (int): Side of the (square) window.
        **kwargs: The switches and binary options of :class:`DIBA`
            (``diba``, ``theta``, ``similarity_cfg``, ``binary_weights``,
            ``binary_acts``, ``act_cfg``, ``norm_cfg``, ``qkv_bias``).
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int,
                 **kwargs):
        super().__init__(embed_dims, num_heads,
                         num_tokens=window_size * window_size,
                         num_extra_tokens=0, window_size=window_size,
                         **kwargs)
        self.window_size = window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        self.register_buffer('relative_position_index',
                             relative_position_index(window_size))

    def init_weights(self):
        super().init_weights()
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) relative position bias of the window."""
        n = self.window_size**2
        bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)].view(n, n, -1)
        return bias.permute(2, 0, 1)

    def forward(self, x: torch.Tensor,
                regions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attend within each window.

        Args:
            x (Tensor): (B * nW, window_size**2, C) windows, batch-major.
            regions (Tensor, optional): (nW, window_size, window_size)
                shift-region labels; None for unshifted windows.

        Returns:
            Tensor: Same shape as ``x``.
        """
        hw = (self.window_size, self.window_size)
        logits = self.logits(x, hw, regions=regions) + self.position_bias()
        if regions is not None:
            num_windows = regions.shape[0]
            mask = region_attention_mask(regions).to(logits.dtype)
            logits = (logits.view(-1, num_windows, *logits.shape[1:]) +
                      mask.unsqueeze(1)).view(logits.shape)
        attn = self.binarize(logits)
        out = self.aggregate(attn, self.values(x, hw), hw, regions=regions)
        return self.proj(out, hw)


@MODELS.register_module()
class ShiftWindowDIBA(BaseModule):
    """Partition into (shifted) windows, run :class:`WindowDIBA`, merge back.

    Follows mmpretrain's ``ShiftWindowMSA``: the map is padded at the
    bottom/right to a multiple of the window, rolled by ``shift_size`` for
    shifted blocks, and a map exactly one window wide is not shifted unless
    ``pad_small_map``. The window attention is the child ``w_msa`` (the name
    mmpretrain uses, so checkpoints load).

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        window_size (int): Window side.
        shift_size (int): Shift of the windows, 0 (W-MSA) or less than
            ``window_size`` (SW-MSA). Defaults to 0.
        pad_small_map (bool): Pad maps smaller than a window instead of
            raising. Defaults to False.
        pad_to_window (bool): Pad maps that are not a multiple of the window
            (Swin's behaviour). False raises instead. Defaults to True.
        **kwargs: Arguments of :class:`WindowDIBA`.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int,
                 shift_size: int = 0,
                 pad_small_map: bool = False,
                 pad_to_window: bool = True,
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        super().__init__(init_cfg)
        if not 0 <= shift_size < window_size:
            raise ValueError(f'ShiftWindowDIBA: shift_size={shift_size} must '
                             f'be in [0, window_size={window_size})')
        self.window_size = window_size
        self.shift_size = shift_size
        self.pad_small_map = pad_small_map
        self.pad_to_window = pad_to_window
        self.w_msa = WindowDIBA(embed_dims, num_heads, window_size, **kwargs)

    def forward(self, x: torch.Tensor, hw_shape: Sequence[int]) -> torch.Tensor:
        b, n, c = x.shape
        h, w = hw_shape
        if n != h * w:
            raise ValueError(f'ShiftWindowDIBA: {n} tokens do not fill the '
                             f'feature map {tuple(hw_shape)}')
        ws = self.window_size
        check_window_fit((h, w), ws, self.pad_small_map, self.pad_to_window)
        shift = self.shift_size
        if min(h, w) == ws and not self.pad_small_map:
            shift = 0  # as Swin: one window across, nothing to shift
        x = x.view(b, h, w, c)
        pad_r, pad_b = (ws - w % ws) % ws, (ws - h % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        h_pad, w_pad = x.shape[1], x.shape[2]
        regions = None
        if shift > 0:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            regions = shift_regions((h_pad, w_pad), ws, shift, x.device)
        windows = window_partition(x, ws).view(-1, ws * ws, c)
        out = self.w_msa(windows, regions)
        x = window_reverse(out.view(-1, ws, ws, c), h_pad, w_pad)
        if shift > 0:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x[:, :h, :w].reshape(b, h * w, c)


def check_window_fit(hw_shape: Sequence[int], window_size: int,
                     pad_small_map: bool, pad_to_window: bool) -> None:
    """Raise a ValueError naming the setting that forbids this map size."""
    h, w = int(hw_shape[0]), int(hw_shape[1])
    if min(h, w) < window_size and not pad_small_map:
        raise ValueError(
            f'feature map {h}x{w} is smaller than window_size={window_size}; '
            'set pad_small_map=True, use a smaller window_size or a larger '
            'input (img_size)')
    if not pad_to_window and (h % window_size or w % window_size):
        raise ValueError(
            f'feature map {h}x{w} is not a multiple of window_size='
            f'{window_size} and pad_to_window=False; choose an input size '
            'whose maps the window divides, or set pad_to_window=True')


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws, ws, C), windows batch-major, row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size,
               window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size,
                                               c)


def window_reverse(windows: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws, ws, C) -> (B, H, W, C)."""
    ws = windows.shape[1]
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def shift_regions(hw_shape: Tuple[int, int], window_size: int, shift: int,
                  device=None) -> torch.Tensor:
    """(nW, ws, ws) labels of the 9 regions of Swin's shifted windows.

    Labels are those of Swin's ``img_mask`` on the padded, rolled map: two
    tokens of one window are neighbours in the image only when their labels
    match. They are 0 to 8 whatever the map (``region_masks`` builds its
    masks from that, ``NUM_SHIFT_REGIONS``, without reading them).
    """
    labels = torch.zeros(1, *hw_shape, 1, device=device)
    cuts = (slice(0, -window_size), slice(-window_size, -shift),
            slice(-shift, None))
    count = 0
    for rows in cuts:
        for cols in cuts:
            labels[:, rows, cols, :] = count
            count += 1
    windows = window_partition(labels, window_size)
    return windows.squeeze(-1).long()


def region_attention_mask(regions: torch.Tensor) -> torch.Tensor:
    """(nW, N, N) additive mask: 0 within a region, -100 across regions."""
    flat = regions.flatten(1)
    differs = flat.unsqueeze(1) != flat.unsqueeze(2)
    return differs.float() * MASK_VALUE


def relative_position_index(window_size: int) -> torch.Tensor:
    """(N, N) index into the bias table, as mmpretrain's ``WindowMSA``."""
    coords = torch.stack(torch.meshgrid(
        torch.arange(window_size), torch.arange(window_size),
        indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]
