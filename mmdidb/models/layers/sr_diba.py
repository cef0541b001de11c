"""DIBA with spatial-reduction keys and values (pyramid backbones)."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS

from .diba import DIBA
from .token_grid import grid_to_tokens, tokens_to_grid
from .wrapped_linear import WrappedBinaryLinear


def reduced_grid(hw_shape: Sequence[int], sr_ratio: int) -> Tuple[int, int]:
    """Grid after ``sr_ratio`` x ``sr_ratio`` average pooling (ceil mode)."""
    return tuple(-(-int(s) // sr_ratio) for s in hw_shape)


@MODELS.register_module()
class SRDIBA(DIBA):
    """:class:`DIBA` whose keys and values come from a pooled map.

    BinaryViT's attention (Le & Li 2023, after PVT): the keys and values
    are computed from the input average-pooled ``sr_ratio`` x ``sr_ratio``
    and passed through a wrapped binary linear (``reduction``, identity
    shortcut), so stage 1's attention is ``N x N / sr²``. The DIDB parts on
    the ``M`` reduced tokens (our choice for this variant, docs/method.md): the self
    term ``(1 - A·1) ⊙ V`` and ``D(V)`` use, for each query, the value of
    the pooled cell it lies in (nearest upsampling); HFSC splits the queries
    on their grid and the keys on the reduced one. ``sr_ratio=1`` is
    plain :class:`DIBA`.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        hw_shape (tuple[int, int]): The patch grid at the configured input
            size; sets the IRPReLU offsets of queries and keys/values.
        sr_ratio (int): Pooling of keys and values. Defaults to 1.
        **kwargs: The switches and binary options of :class:`DIBA`.
    """

    def __init__(self, embed_dims: int, num_heads: int,
                 hw_shape: Sequence[int], sr_ratio: int = 1, **kwargs):
        if not isinstance(sr_ratio, int) or sr_ratio < 1:
            raise ValueError(f'SRDIBA: sr_ratio must be an int >= 1, got '
                             f'{sr_ratio!r}')
        grid = tuple(int(s) for s in hw_shape)
        kv_grid = reduced_grid(grid, sr_ratio)
        super().__init__(embed_dims, num_heads,
                         num_tokens=grid[0] * grid[1], num_extra_tokens=0,
                         kv_num_tokens=kv_grid[0] * kv_grid[1],
                         token_grid=grid, kv_token_grid=kv_grid, **kwargs)
        self.sr_ratio = sr_ratio
        self.reduction = None
        if sr_ratio > 1:
            binary = {k: kwargs[k] for k in ('binary_weights', 'binary_acts',
                                             'norm_cfg', 'act_cfg')
                      if k in kwargs}
            self.reduction = WrappedBinaryLinear(
                embed_dims, embed_dims, kwargs.get('qkv_bias', True),
                num_tokens=kv_grid[0] * kv_grid[1], num_extra_tokens=0,
                token_grid=kv_grid, **binary)

    def reduce(self, x: torch.Tensor, hw_shape: Sequence[int]):
        """The key/value input and its grid: pooled + ``reduction``."""
        if self.reduction is None:
            return x, tuple(hw_shape)
        _, grid = tokens_to_grid(x, hw_shape, 0)
        pooled = F.avg_pool2d(grid, self.sr_ratio, self.sr_ratio,
                              ceil_mode=True)
        kv_hw = tuple(pooled.shape[2:])
        kv = grid_to_tokens(x[:, :0], pooled)
        return self.reduction(kv, kv_hw), kv_hw

    def forward(self, x: torch.Tensor,
                hw_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        kv, kv_hw = self.reduce(x, hw_shape)
        if self.reduction is None:
            attn = self.attention(x, hw_shape)
        else:
            attn = self.binarize(self.logits(x, hw_shape, kv=kv,
                                             kv_hw_shape=kv_hw))
        out = self.aggregate(attn, self.values(kv, kv_hw), hw_shape,
                             v_hw_shape=kv_hw)
        return self.proj(out, hw_shape)
