"""DIBA's local differential term ``D(V)`` (docs/method.md)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..deploy.packed_ops import pack_kernel, unpack_kernel
from .binarizers import binarize_weight
from .token_grid import grid_to_tokens, per_window, region_masks, tokens_to_grid


class LocalDifference(nn.Module):
    """``D_i = s ⊙ Σ_{j in θ×θ(i)} w_j (v_j - v_i)``, depthwise, per channel.

    Implemented (our choice, docs/method.md) as a depthwise θ×θ convolution
    of V laid out on the patch grid minus, at each position, the sum of the kernel
    weights that fall inside the grid times the centre value; so border
    tokens only see real neighbours (zero padding would add ``-w v_i`` terms
    for absent ones). The kernel is binarized like every binary weight; the
    input V is already ±1 when activations are binary. A learnable
    per-channel scale ``s`` starts at ``init_scale``. At 0 (the default) the
    term starts switched off and the model first trains as plain DIBA, but
    then the kernel gets no gradient until ``s`` has moved. Extra (class)
    tokens get ``D = 0``.

    Args:
        channels (int): Channels of V (heads x head dim).
        theta (int): Odd kernel size; 1 gives ``D = 0``.
        num_extra_tokens (int): Leading tokens off the grid. Defaults to 1.
        binary_weights (bool): Binarize the kernel. Defaults to True.
        init_scale (float): Initial value of the per-channel scale ``s``.
            Defaults to 0.0.

    Deploy mode (:meth:`switch_to_deploy`, binary kernel only): the float
    kernel is replaced by its signs packed 1 bit per weight
    (``weight_packed``) and its per-channel scales (``weight_scale``). The
    θ×θ depthwise convolution itself stays a float ``conv2d``, of the ±1
    kernel with the ±1 values: every partial sum is a small integer, so it
    is exact, and a bit-level kernel for a 9-tap depthwise filter would not
    pay off. The kernel scale multiplies the result afterwards.
    """

    def __init__(self, channels: int, theta: int = 3, num_extra_tokens: int = 1,
                 binary_weights: bool = True, init_scale: float = 0.0):
        super().__init__()
        check_theta(theta)
        if isinstance(init_scale, bool) or \
                not isinstance(init_scale, (int, float)):
            raise ValueError(f'd_init_scale must be a number (0 starts D '
                             f'switched off), got {init_scale!r}')
        self.theta = theta
        self.num_extra_tokens = num_extra_tokens
        self.binary_weights = binary_weights
        self.weight = nn.Parameter(torch.empty(channels, 1, theta, theta))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.scale = nn.Parameter(torch.full((channels, ), float(init_scale)))
        self.deploy = False

    def kernel(self) -> torch.Tensor:
        return binarize_weight(self.weight) if self.binary_weights \
            else self.weight

    def switch_to_deploy(self) -> None:
        """Keep the kernel as packed signs + scales (binary kernels only)."""
        if self.deploy or not self.binary_weights:
            return
        packed, scale = pack_kernel(self.weight)
        shape = self.weight.shape
        del self.weight
        self.register_buffer('weight_packed', packed)
        self.register_buffer('weight_scale', scale)
        # the ±1 kernel, unpacked once (again after each checkpoint load)
        self.register_buffer('kernel_pm1', torch.empty(shape),
                             persistent=False)
        self._refresh_kernel()
        self.register_load_state_dict_post_hook(self._refresh_kernel)
        self.deploy = True

    def _refresh_kernel(self, *args) -> None:
        self.kernel_pm1 = unpack_kernel(self.weight_packed,
                                        self.kernel_pm1.shape,
                                        self.weight_scale.dtype)
        self._weight_sums = {}

    def _inside_weight_sums(self, grid: torch.Tensor, conv) -> torch.Tensor:
        """Per position, the sum of the kernel weights inside the grid.

        It depends on the grid's size and the kernel only, so a deployed
        layer (fixed kernel) computes it once per size, device and dtype.
        """
        key = (tuple(grid.shape[1:]), grid.device, grid.dtype)
        cache = getattr(self, '_weight_sums', None) if self.deploy else None
        if cache is not None and key in cache:
            return cache[key]
        inside = torch.ones_like(grid[:1, :1]).expand(1, *grid.shape[1:])
        sums = conv(inside)
        if cache is not None:
            cache[key] = sums
        return sums

    def forward(self, v: torch.Tensor,
                hw_shape: Optional[Sequence[int]] = None,
                regions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``D(V)`` for (B, N, C) values, same shape.

        ``regions`` (``(nW, h, w)`` labels of Swin's shifted windows, ``v``
        holding ``B * nW`` windows) restricts each neighbourhood to the
        token's own region: tokens that a shifted window brings together
        from opposite image borders are not neighbours.
        """
        extra, grid = tokens_to_grid(v, hw_shape, self.num_extra_tokens)
        kernel = self.kernel_pm1.to(grid.dtype) if self.deploy \
            else self.kernel()
        pad = self.theta // 2
        channels = grid.shape[1]

        def conv(x):
            return F.conv2d(x, kernel, padding=pad, groups=channels)

        if regions is None:
            neighbours = conv(grid)
            weight_sums = self._inside_weight_sums(grid, conv)
        else:
            neighbours = weight_sums = 0
            for mask in region_masks(regions, grid.dtype):
                neighbours = neighbours + per_window(
                    conv(per_window(grid, mask)), mask)
                # in-region weight sums, per window: (nW, C, h, w)
                weight_sums = weight_sums + per_window(
                    conv(mask.expand(-1, channels, -1, -1)), mask)
            weight_sums = weight_sums.repeat(
                grid.shape[0] // weight_sums.shape[0], 1, 1, 1)
        scale = self.scale
        if self.deploy:
            scale = self.weight_scale.to(grid.dtype) * scale
        diff = (neighbours - weight_sums * grid) * scale.view(1, -1, 1, 1)
        return grid_to_tokens(torch.zeros_like(extra), diff)


def check_theta(theta) -> None:
    """Raise a ValueError naming ``theta`` unless it is an odd int >= 1."""
    if not isinstance(theta, int) or isinstance(theta, bool) or theta < 1 \
            or theta % 2 == 0:
        raise ValueError(f'theta must be an odd integer >= 1 (1 turns the '
                         f'local term off, 3 is the paper\'s best), got '
                         f'{theta!r}')
