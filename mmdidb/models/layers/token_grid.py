"""Moving tokens between the sequence layout and the patch grid."""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

#: Labels of Swin's shifted-window regions: ``shift_regions`` cuts the
#: rolled map into 3 x 3 parts, labelled 0 to 8.
NUM_SHIFT_REGIONS = 9


def infer_grid(num_patches: int,
               hw_shape: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """The (H, W) patch grid of ``num_patches`` tokens.

    Args:
        num_patches (int): Tokens on the grid (extra tokens excluded).
        hw_shape (tuple[int, int], optional): The grid if known; checked.

    Raises:
        ValueError: ``hw_shape`` does not hold ``num_patches`` tokens, or it
            is None and ``num_patches`` is not a square.
    """
    if hw_shape is not None:
        h, w = int(hw_shape[0]), int(hw_shape[1])
        if h * w != num_patches:
            raise ValueError(f'hw_shape={tuple(hw_shape)} holds {h * w} '
                             f'patches, but the input has {num_patches}')
        return h, w
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f'{num_patches} patch tokens are not a square grid; '
                         'pass hw_shape')
    return side, side


def tokens_to_grid(x: torch.Tensor, hw_shape: Optional[Sequence[int]],
                   num_extra_tokens: int):
    """Split (B, N, C) tokens into extra tokens and a (B, C, H, W) grid."""
    extra, patches = x[:, :num_extra_tokens], x[:, num_extra_tokens:]
    h, w = infer_grid(patches.shape[1], hw_shape)
    grid = patches.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)
    return extra, grid


def grid_to_tokens(extra: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`tokens_to_grid`: back to (B, N, C)."""
    patches = grid.flatten(2).transpose(1, 2)
    return torch.cat([extra, patches], dim=1)


def resize_token_param(param: torch.Tensor,
                       num_tokens: int,
                       hw_shape: Optional[Sequence[int]],
                       num_extra_tokens: int,
                       mode: str = 'bicubic',
                       src_hw_shape: Optional[Sequence[int]] = None
                       ) -> torch.Tensor:
    """Resize a per-token parameter of shape (N, C) to ``num_tokens`` rows.

    The extra tokens are kept as they are, the patch part is interpolated on
    the patch grid, as mmpretrain resizes position embeddings. The source
    grid is ``src_hw_shape``, or square when that is not known.
    """
    src_grid = infer_grid(param.shape[0] - num_extra_tokens, src_hw_shape)
    dst_grid = infer_grid(num_tokens - num_extra_tokens, hw_shape)
    extra, patches = param[:num_extra_tokens], param[num_extra_tokens:]
    patches = patches.t().reshape(1, param.shape[1], *src_grid)
    patches = F.interpolate(patches, size=dst_grid, mode=mode,
                            align_corners=False)
    patches = patches.reshape(param.shape[1], -1).t()
    return torch.cat([extra, patches], dim=0)


def tile_window_param(param: torch.Tensor, window_size: int,
                      hw_shape: Sequence[int]) -> torch.Tensor:
    """Tile a per-window-position parameter over a whole feature map.

    Args:
        param (Tensor): ``(window_size**2, C)``, one row per position inside
            a window (row-major).
        window_size (int): Side of the window.
        hw_shape (tuple[int, int]): The feature map; it need not be a
            multiple of the window (the tiling is cropped, as Swin pads).

    Returns:
        Tensor: ``(H * W, C)``; the token at (i, j) gets the row of window
        position ``(i % window_size, j % window_size)``.
    """
    h, w = int(hw_shape[0]), int(hw_shape[1])
    channels = param.shape[1]
    grid = param.reshape(window_size, window_size, channels)
    reps_h, reps_w = -(-h // window_size), -(-w // window_size)
    tiled = grid.repeat(reps_h, reps_w, 1)[:h, :w]
    return tiled.reshape(h * w, channels)


def region_masks(regions: torch.Tensor, dtype: torch.dtype,
                 num_labels: int = NUM_SHIFT_REGIONS) -> torch.Tensor:
    """0/1 masks of the shift regions of each window.

    There is one mask per possible label, whether it occurs or not, so the
    masks follow from the shape alone: finding the labels that occur would
    read the tensor on the host, a synchronisation that CUDA graph capture
    forbids. The mask of an absent label is all zero and adds nothing to
    the masked sums built from it. On maps larger than a window every one
    of Swin's nine labels occurs anyway.

    Args:
        regions (Tensor): ``(nW, h, w)`` integer labels in
            ``[0, num_labels)``: tokens of a window with different labels
            come from different parts of the image (Swin's shifted windows)
            and are not neighbours. Labels outside that range belong to no
            mask; they are not checked, as that would read the data.
        dtype (torch.dtype): Dtype of the masks.
        num_labels (int): Number of possible labels. Defaults to
            :data:`NUM_SHIFT_REGIONS`, the labels of ``shift_regions``.

    Returns:
        Tensor: ``(num_labels, nW, 1, h, w)``, the mask of label ``i`` at
        index ``i``.
    """
    labels = torch.arange(num_labels, device=regions.device,
                          dtype=regions.dtype)
    masks = regions.unsqueeze(0) == labels.view(-1, 1, 1, 1)
    return masks.unsqueeze(2).to(dtype)


def per_window(grid: torch.Tensor, window_map: torch.Tensor) -> torch.Tensor:
    """Multiply window-batched maps by a per-window map.

    Args:
        grid (Tensor): ``(B * nW, C, h, w)``, windows batch-major (as Swin's
            window partition orders them).
        window_map (Tensor): ``(nW, 1 or C, h, w)``.

    Returns:
        Tensor: ``grid * window_map`` with the map repeated over the batch.
    """
    nw = window_map.shape[0]
    shape = grid.shape
    return (grid.view(-1, nw, *shape[1:]) * window_map).view(shape)
