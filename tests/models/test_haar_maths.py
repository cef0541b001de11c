"""The Haar split inside shift regions against a brute-force reference."""
import torch

from mmdidb.models.layers import StationaryHaarSplit, haar_split_grid


def _reference_low(grid, regions):
    """Mean of the in-grid, same-label members of each 2x2 window."""
    nw = regions.shape[0]
    low = torch.empty_like(grid, dtype=torch.float64)
    b, c, h, w = grid.shape
    for n in range(b):
        labels = regions[n % nw]
        for i in range(h):
            for j in range(w):
                members = [(y, x) for y in (i, i + 1) for x in (j, j + 1)
                           if y < h and x < w and labels[y, x] == labels[i, j]]
                for ch in range(c):
                    low[n, ch, i, j] = sum(float(grid[n, ch, y, x])
                                           for y, x in members) / len(members)
    return low


def _labels():
    # window 0: a lone corner token, a column strip and the rest (some
    # 2x2 windows hold none of a label's members); window 1: one region
    regions = torch.zeros(2, 4, 5, dtype=torch.long)
    regions[0, 0, 0] = 1
    regions[0, :, 4] = 2
    regions[0, 3, :2] = 1
    return regions


def test_regions_low_band_is_the_mean_over_its_own_region():
    regions = _labels()
    grid = torch.randint(-20, 20, (4, 3, 4, 5)).float()  # B=2 x nW=2 windows
    low, high = haar_split_grid(grid, regions)
    expected = _reference_low(grid, regions)
    assert torch.allclose(low.double(), expected, rtol=0, atol=1e-5)
    assert torch.equal(high, grid - low)
    # a lone token is its own low band, a constant region has no high band
    assert torch.equal(low[0::2, :, 0, 0], grid[0::2, :, 0, 0])


def test_one_region_equals_the_plain_split():
    grid = torch.randn(2, 3, 4, 5)
    low, high = haar_split_grid(grid)
    low_r, high_r = haar_split_grid(grid, torch.zeros(1, 4, 5,
                                                      dtype=torch.long))
    assert torch.allclose(low_r, low, rtol=0, atol=1e-6)
    assert torch.equal(high_r, grid - low_r)


def test_token_split_passes_regions_through():
    regions = _labels()
    x = torch.randint(-8, 8, (4, 20, 3)).float()
    low, high = StationaryHaarSplit(num_extra_tokens=0)(x, (4, 5), regions)
    grid = x.transpose(1, 2).reshape(4, 3, 4, 5)
    ref_low, ref_high = haar_split_grid(grid, regions)
    assert torch.equal(low, ref_low.flatten(2).transpose(1, 2))
    assert torch.equal(high, ref_high.flatten(2).transpose(1, 2))


def test_channels_last_padding_pools_like_channels_first():
    # without a gradient the padding is laid out channels last for the
    # faster avg_pool2d kernel: the same values as the channels-first
    # layout, bit for bit; with a gradient it is the channels-first layout
    import torch.nn.functional as F

    from mmdidb.models.layers.haar import _pad_last_replicate

    for seed, (b, h, w, c) in enumerate([(1, 14, 14, 384), (3, 5, 3, 17),
                                         (2, 7, 9, 64), (32, 4, 4, 64)]):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(b, 1 + h * w, c, generator=gen)
        grid = x[:, 1:].transpose(1, 2).reshape(b, c, h, w)
        first = torch.cat([grid, grid[..., -1:]], dim=-1)
        first = torch.cat([first, first[..., -1:, :]], dim=-2).contiguous()
        last = _pad_last_replicate(grid)
        assert last.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(last, first)
        assert torch.equal(F.avg_pool2d(last, 2, 1), F.avg_pool2d(first, 2, 1))
        # with a gradient: the concatenations of the grid as it is laid out
        leaf = grid.clone().requires_grad_()
        trained = _pad_last_replicate(leaf)
        expected = torch.cat([leaf, leaf[..., -1:]], dim=-1)
        expected = torch.cat([expected, expected[..., -1:, :]], dim=-2)
        assert trained.stride() == expected.stride()
        assert torch.equal(trained, first)
