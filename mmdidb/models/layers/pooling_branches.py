"""BinaryViT's multiple average-pooling branches."""
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn

from .token_grid import tokens_to_grid


@MODELS.register_module()
class PoolingBranches(nn.Module):
    """Sum of horizontal and vertical average poolings, each scaled.

    For each kernel ``k``: a ``1 x k`` and a ``k x 1`` stride-1 average
    pooling of the tokens on their grid, each followed by its own
    per-channel affine (scale initialised to 0, so the branches start off).
    BinaryViT adds these full-precision token mixers next to the block's
    residual to give the binary model a CNN-like local path. At the border
    only real tokens are averaged (BinaryViT pads with zeros; our choice
    keeps border tokens unshrunk).

    Args:
        num_channels (int): Channels.
        kernel_sizes (Sequence[int]): Odd kernel sizes. Defaults to (3, 5),
            BinaryViT's "multi-branch" setting.
    """

    def __init__(self, num_channels: int,
                 kernel_sizes: Sequence[int] = (3, 5)):
        super().__init__()
        for k in kernel_sizes:
            if not isinstance(k, int) or k < 3 or k % 2 == 0:
                raise ValueError(f'PoolingBranches: kernel sizes must be odd '
                                 f'ints >= 3, got {tuple(kernel_sizes)}')
        self.kernel_sizes = tuple(kernel_sizes)
        branches = 2 * len(self.kernel_sizes)
        self.scale = nn.Parameter(torch.zeros(branches, num_channels))
        self.shift = nn.Parameter(torch.zeros(branches, num_channels))

    def forward(self, x: torch.Tensor,
                hw_shape: Sequence[int]) -> torch.Tensor:
        """(B, N, C) tokens on ``hw_shape`` -> the summed branches, same shape."""
        _, grid = tokens_to_grid(x, hw_shape, 0)
        out = 0
        index = 0
        for k in self.kernel_sizes:
            for size, pad in (((1, k), (0, k // 2)), ((k, 1), (k // 2, 0))):
                pooled = F.avg_pool2d(grid, size, 1, pad,
                                      count_include_pad=False)
                pooled = pooled.flatten(2).transpose(1, 2)
                out = out + pooled * self.scale[index] + self.shift[index]
                index += 1
        return out

    def extra_repr(self) -> str:
        return f'kernel_sizes={self.kernel_sizes}'
