"""One-level stationary (non-downsampled) Haar split (docs/method.md)."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .token_grid import grid_to_tokens, per_window, region_masks, tokens_to_grid


def haar_split_grid(grid: torch.Tensor,
                    regions: Optional[torch.Tensor] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Split a (B, C, H, W) map into its low and high bands.

    ``low`` at (i, j) is the mean of the 2x2 window starting there (stride 1,
    the last row/column replicate-padded); ``high = x - low`` is the sum of
    the three detail bands, so ``low + high == x``.

    With ``regions`` (shifted windows, ``grid`` holding ``B * nW`` windows),
    only the members of the 2x2 window in the token's own region count:
    ``low`` is their mean. Without regions that is the same number, since
    replicate padding at the border also averages only in-grid members.
    """
    if regions is None:
        low = F.avg_pool2d(_pad_last_replicate(grid), kernel_size=2,
                           stride=1)
        return low, grid - low
    low = torch.zeros_like(grid)
    for mask in region_masks(regions, grid.dtype):
        sums = _box2x2_sum(per_window(grid, mask))
        counts = _box2x2_sum(mask).clamp(min=1)
        low = low + per_window(sums, mask / counts)
    return low, grid - low


def _pad_last_replicate(grid: torch.Tensor) -> torch.Tensor:
    """``F.pad(grid, (0, 1, 0, 1), mode='replicate')``, as concatenations.

    The same numbers; torch.compile's CPU backend (torch 2.13) rejects the
    strides of ``replication_pad2d_backward``, which this avoids. Without
    a gradient to compute (inference, deploy mode) the result is laid out
    channels last, the token layout the grid comes from, so that
    ``avg_pool2d`` takes its kernel vectorized over the channels: with few
    positions and many channels (a ViT's 14x14 grid) the per-plane kernel
    of a channels-first tensor is about ten times slower. Both kernels add
    the four values in the same order (the same forward values,
    tests/models/test_haar_maths.py), but their backward passes can round
    differently, so training keeps the channels-first layout.
    """
    if torch.is_grad_enabled() and grid.requires_grad:
        grid = torch.cat([grid, grid[..., -1:]], dim=-1)
        return torch.cat([grid, grid[..., -1:, :]], dim=-2)
    tokens = grid.permute(0, 2, 3, 1)
    tokens = torch.cat([tokens, tokens[:, :, -1:]], dim=2)
    tokens = torch.cat([tokens, tokens[:, -1:]], dim=1)
    return tokens.permute(0, 3, 1, 2)


def _box2x2_sum(grid: torch.Tensor) -> torch.Tensor:
    """Sum of each stride-1 2x2 window, zero past the bottom/right border."""
    padded = F.pad(grid, (0, 1, 0, 1))
    return F.avg_pool2d(padded, kernel_size=2, stride=1) * 4


class StationaryHaarSplit(nn.Module):
    """Haar split of a token sequence on its patch grid.

    Extra (class) tokens are not on the grid: their low band is the token
    itself and their high band is zero.

    Args:
        num_extra_tokens (int): Leading tokens not on the grid. Defaults to 1.
    """

    def __init__(self, num_extra_tokens: int = 1):
        super().__init__()
        self.num_extra_tokens = num_extra_tokens

    def forward(self, x: torch.Tensor,
                hw_shape: Optional[Sequence[int]] = None,
                regions: Optional[torch.Tensor] = None):
        """Return ``(low, high)``, each shaped like ``x`` (B, N, C).

        ``regions`` (``(nW, h, w)`` labels, window attention only) keeps the
        split inside each shift region, see :func:`haar_split_grid`.
        """
        extra, grid = tokens_to_grid(x, hw_shape, self.num_extra_tokens)
        low, high = haar_split_grid(grid, regions)
        return (grid_to_tokens(extra, low),
                grid_to_tokens(torch.zeros_like(extra), high))
