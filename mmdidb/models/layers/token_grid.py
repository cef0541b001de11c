"""Moving tokens between the sequence layout and the patch grid."""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F


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
