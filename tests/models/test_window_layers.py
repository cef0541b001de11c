"""Window attention, shift regions, patch merging: the Swin/pyramid layers."""
import copy

import pytest
import torch
from mmcv.cnn.bricks.transformer import PatchMerging
from mmpretrain.models.utils.attention import ShiftWindowMSA, WindowMSA

from mmdidb.models import (
    BinaryPatchMerging,
    IRPReLU,
    LocalDifference,
    ShiftWindowDIBA,
    StationaryHaarSplit,
    WindowDIBA,
)
from mmdidb.models.layers import haar, local_difference
from mmdidb.models.layers.haar import haar_split_grid
from mmdidb.models.layers.token_grid import region_masks, tile_window_param
from mmdidb.models.layers.window_diba import (
    region_attention_mask,
    relative_position_index,
    shift_regions,
)


class _MaskedWindowMSA(torch.nn.Module):
    """mmpretrain's WindowMSA behind our (windows, regions) interface."""

    def __init__(self, msa):
        super().__init__()
        self.msa = msa

    def forward(self, windows, regions=None):
        mask = None if regions is None else region_attention_mask(regions)
        return self.msa(windows, mask=mask)


@pytest.mark.parametrize('hw, window, shift, pad_small', [
    ((8, 8), 4, 2, False),    # whole windows, shifted
    ((6, 10), 4, 2, False),   # padded to 8x12
    ((8, 8), 4, 0, False),
    ((4, 6), 4, 2, False),    # one window across: Swin does not shift
    ((3, 3), 4, 2, True),     # smaller than a window, padded
    ((4, 6), 4, 2, True),
])
def test_partition_shift_and_mask_equal_mmpretrain(hw, window, shift,
                                                   pad_small):
    torch.manual_seed(0)
    ref = ShiftWindowMSA(16, 2, window, shift_size=shift,
                         pad_small_map=pad_small)
    ours = ShiftWindowDIBA(16, 2, window, shift_size=shift,
                           pad_small_map=pad_small)
    ours.w_msa = _MaskedWindowMSA(copy.deepcopy(ref.w_msa))
    x = torch.randn(2, hw[0] * hw[1], 16)
    assert torch.equal(ours(x, hw), ref(x, hw))


def test_regions_and_index_equal_swin():
    for hw, window, shift in (((14, 14), 7, 3), ((8, 12), 4, 2)):
        assert torch.equal(
            region_attention_mask(shift_regions(hw, window, shift)),
            ShiftWindowMSA.get_attn_mask(hw, window, shift))
    for window in (3, 4, 7):
        assert torch.equal(relative_position_index(window),
                           WindowMSA(8, (window, window), 2)
                           .relative_position_index)


def _two_region_labels():
    # one 4x4 window: left 3 columns region 0, last column region 1
    regions = torch.zeros(1, 4, 4, dtype=torch.long)
    regions[:, :, 3] = 1
    return regions


def test_haar_split_without_regions_is_one_region():
    grid = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    low, high = haar_split_grid(grid)
    one_region = torch.zeros(1, 4, 4, dtype=torch.long)
    low_r, high_r = haar_split_grid(grid, one_region.expand(3, 4, 4))
    torch.testing.assert_close(low_r, low, rtol=0, atol=1e-12)
    torch.testing.assert_close(low_r + high_r, grid, rtol=0, atol=1e-12)


def test_haar_split_stays_inside_a_region():
    grid = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    low, high = haar_split_grid(grid, _two_region_labels())
    # (0, 2): its 2x2 window holds (0,2),(1,2) of region 0 and (0,3),(1,3)
    # of region 1; only the region-0 pair counts
    torch.testing.assert_close(low[..., 0, 2],
                               (grid[..., 0, 2] + grid[..., 1, 2]) / 2)
    # (1, 3): region 1, its 2x2 window has (1,3),(2,3) in the grid
    torch.testing.assert_close(low[..., 1, 3],
                               (grid[..., 1, 3] + grid[..., 2, 3]) / 2)
    torch.testing.assert_close(low[..., 1, 1], grid[..., 1:3, 1:3].mean(
        dim=(-1, -2)))
    torch.testing.assert_close(low + high, grid, rtol=0, atol=1e-12)
    # the token module passes the regions through
    tokens = grid.flatten(2).transpose(1, 2)
    low_t, _ = StationaryHaarSplit(0)(tokens, (4, 4), _two_region_labels())
    assert torch.equal(low_t, low.flatten(2).transpose(1, 2))


def _local_difference_reference(layer, v, hw, regions):
    """D_i = s Σ_{j near i, same region} w_j (v_j - v_i), by brute force."""
    h, w = hw
    kernel = layer.kernel().detach()[:, 0]  # (C, θ, θ)
    r = layer.theta // 2
    out = torch.zeros_like(v)
    nw = regions.shape[0]
    for b in range(v.shape[0]):
        labels = regions[b % nw]
        for i in range(h):
            for j in range(w):
                acc = 0
                for di in range(-r, r + 1):
                    for dj in range(-r, r + 1):
                        y, x = i + di, j + dj
                        if not (0 <= y < h and 0 <= x < w):
                            continue
                        if labels[y, x] != labels[i, j]:
                            continue
                        acc = acc + kernel[:, di + r, dj + r] * (
                            v[b, y * w + x] - v[b, i * w + j])
                out[b, i * w + j] = acc * layer.scale.detach()
    return out


def test_local_difference_stays_inside_a_region_and_deploys_exactly():
    torch.manual_seed(0)
    layer = LocalDifference(6, 3, num_extra_tokens=0).double()
    layer.scale.data.normal_()
    regions = torch.stack([_two_region_labels()[0],
                           torch.zeros(4, 4, dtype=torch.long)])
    v = torch.randn(4, 16, 6, dtype=torch.float64).sign()  # 2 images x 2
    out = layer(v, (4, 4), regions)
    torch.testing.assert_close(
        out, _local_difference_reference(layer, v, (4, 4), regions))
    deployed = copy.deepcopy(layer)
    deployed.switch_to_deploy()
    torch.testing.assert_close(deployed(v, (4, 4), regions), out,
                               rtol=0, atol=1e-12)


def test_window_diba_does_not_attend_across_regions():
    torch.manual_seed(0)
    layer = WindowDIBA(8, 2, window_size=4).eval()
    kept = {}
    layer.attn_binarizer.register_forward_hook(
        lambda m, a, out: kept.setdefault('attn', out))
    regions = _two_region_labels()
    layer(torch.randn(3, 16, 8), regions)
    across = region_attention_mask(regions)[0] < 0
    attn = kept['attn']
    assert attn[..., across].abs().max() == 0
    assert attn[..., ~across].abs().max() > 0


def test_irprelu_offsets_tile_window_positions():
    param = torch.arange(9.).view(9, 1)
    tiled = tile_window_param(param, 3, (4, 5))
    grid = tiled.view(4, 5)
    for i in range(4):
        for j in range(5):
            assert grid[i, j] == (i % 3) * 3 + j % 3
    act = IRPReLU(1, num_tokens=9, num_extra_tokens=0, window_size=3)
    act.token_offset.data = param.clone()
    x = torch.zeros(2, 20, 1)
    assert torch.equal(act(x, (4, 5)), tiled.expand(2, 20, 1))
    assert torch.equal(act(torch.zeros(2, 9, 1), (3, 3)),
                       param.expand(2, 9, 1))
    with pytest.raises(ValueError, match='hw_shape'):
        act(x)


@pytest.mark.parametrize('hw', [(4, 6), (5, 7)])
def test_patch_merging_merges_like_mmcv_with_a_pooling_shortcut(hw):
    torch.manual_seed(0)
    ours = BinaryPatchMerging(8, 16, binary_weights=False, binary_acts=False,
                              act_cfg=None)
    ours.reduction.norm = torch.nn.Identity()
    ref = PatchMerging(8, 16, norm_cfg=dict(type='LN'))
    ref.load_state_dict({k: v for k, v in ours.state_dict().items()
                         if k in ref.state_dict()})
    x = torch.randn(2, hw[0] * hw[1], 8)
    out, out_hw = ours(x, hw)
    merged, ref_hw = ref(x, hw)
    assert out_hw == ref_hw == ((hw[0] + 1) // 2, (hw[1] + 1) // 2)
    grid = x.transpose(1, 2).reshape(2, 8, *hw)
    shortcut = torch.stack([
        torch.stack([grid[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean(
            dim=(-1, -2)) for j in range(out_hw[1])], -1)
        for i in range(out_hw[0])], -2)
    shortcut = shortcut.flatten(2).transpose(1, 2).repeat_interleave(2, -1)
    torch.testing.assert_close(out, merged + shortcut)


def test_patch_merging_checks_its_input():
    with pytest.raises(ValueError, match='multiple of in_channels'):
        BinaryPatchMerging(8, 12)
    with pytest.raises(ValueError, match='4x6 map'):
        BinaryPatchMerging(8, 16)(torch.randn(1, 20, 8), (4, 6))


def test_shift_window_refuses_bad_sizes_naming_the_field():
    with pytest.raises(ValueError, match='shift_size'):
        ShiftWindowDIBA(8, 2, 4, shift_size=4)
    layer = ShiftWindowDIBA(8, 2, 4, pad_to_window=False)
    with pytest.raises(ValueError, match='pad_to_window'):
        layer(torch.randn(1, 30, 8), (5, 6))
    with pytest.raises(ValueError, match='pad_small_map'):
        ShiftWindowDIBA(8, 2, 4)(torch.randn(1, 9, 8), (3, 3))


def _masks_of_present_labels(regions, dtype):
    """One mask per label that occurs, found by reading the labels."""
    labels = torch.unique(regions)
    masks = regions.unsqueeze(0) == labels.view(-1, 1, 1, 1)
    return masks.unsqueeze(2).to(dtype)


def _no_host_read(*args, **kwargs):
    raise AssertionError('tensor data was read on the host')


#: Padded maps as ShiftWindowDIBA shifts them: (h_pad, w_pad), window, shift.
SHIFTED_MAPS = [((8, 8), 4, 2), ((8, 12), 4, 1), ((12, 8), 4, 3),
                ((14, 14), 7, 3), ((28, 21), 7, 3), ((4, 4), 4, 2),
                ((4, 8), 4, 2), ((8, 4), 4, 1)]


@pytest.mark.parametrize('hw, window, shift', SHIFTED_MAPS)
def test_region_masks_read_no_tensor_data(hw, window, shift, monkeypatch):
    # A host read (torch.unique's count, .item(), ...) synchronises with the
    # GPU, which a CUDA graph capture forbids: the masks must follow from the
    # shape alone, and meta tensors, which have no data, must go through.
    regions = shift_regions(hw, window, shift)
    present = torch.unique(regions).tolist()
    expected = _masks_of_present_labels(regions, torch.float16)
    for name in ('item', 'tolist', 'numpy', 'unique', '__bool__', '__int__',
                 '__index__', '__float__'):
        monkeypatch.setattr(torch.Tensor, name, _no_host_read)
    monkeypatch.setattr(torch, 'unique', _no_host_read)
    masks = region_masks(regions, torch.float16)
    monkeypatch.undo()
    assert torch.equal(masks[present], expected)
    absent = [label for label in range(masks.shape[0])
              if label not in present]
    assert not masks[absent].any()
    meta_regions = regions.to('meta')
    meta = region_masks(meta_regions, torch.float16)
    assert meta.shape == masks.shape and meta.dtype == torch.float16
    grid = torch.empty(2 * regions.shape[0], 3, window, window,
                       device='meta')
    low, _ = haar_split_grid(grid, meta_regions)
    assert low.shape == grid.shape
    layer = LocalDifference(3, 3, num_extra_tokens=0).to('meta')
    tokens = grid.flatten(2).transpose(1, 2)
    assert layer(tokens, (window, window), meta_regions).shape == tokens.shape


@pytest.mark.parametrize('hw, window, shift, pad_small', [
    ((8, 8), 4, 2, False), ((6, 10), 4, 1, False), ((14, 21), 7, 3, False),
    ((3, 3), 4, 2, True), ((4, 6), 4, 2, True)])
def test_shifted_windows_equal_the_masks_of_present_labels(
        hw, window, shift, pad_small, monkeypatch):
    # masks of absent labels are all zero: they add nothing, bit for bit
    torch.manual_seed(0)
    layer = ShiftWindowDIBA(16, 2, window, shift_size=shift,
                            pad_small_map=pad_small).eval()
    x = torch.randn(2, hw[0] * hw[1], 16)
    with torch.no_grad():
        out = layer(x, hw)
        monkeypatch.setattr(haar, 'region_masks', _masks_of_present_labels)
        monkeypatch.setattr(local_difference, 'region_masks',
                            _masks_of_present_labels)
        assert torch.equal(layer(x, hw), out)
