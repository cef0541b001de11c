import pytest
import torch

from mmdidb.models.layers import StationaryHaarSplit, haar_split_grid


def test_low_plus_high_is_exactly_the_input():
    # integer-valued inputs: window means are exact dyadic numbers, so the
    # reconstruction must hold bit for bit
    grid = torch.randint(-50, 50, (2, 3, 5, 6)).float()
    low, high = haar_split_grid(grid)
    assert torch.equal(low + high, grid)
    # arbitrary floats: equal up to one rounding of the subtraction
    grid = torch.randn(2, 3, 5, 6)
    low, high = haar_split_grid(grid)
    assert torch.allclose(low + high, grid, rtol=0, atol=1e-6)


def test_low_band_is_the_2x2_mean_with_replicate_border():
    grid = torch.arange(12.).view(1, 1, 3, 4)
    low, _ = haar_split_grid(grid)
    g = grid[0, 0]
    assert low[0, 0, 0, 0] == (g[0, 0] + g[0, 1] + g[1, 0] + g[1, 1]) / 4
    # last column: the window's right half is the replicated last column
    assert low[0, 0, 1, 3] == (g[1, 3] + g[1, 3] + g[2, 3] + g[2, 3]) / 4
    # bottom-right corner: all four are the corner value
    assert low[0, 0, 2, 3] == g[2, 3]
    assert low.shape == grid.shape  # stride 1: not downsampled


def test_constant_map_has_no_high_band():
    grid = torch.full((1, 2, 4, 4), 3.5)
    low, high = haar_split_grid(grid)
    assert torch.equal(low, grid)
    assert torch.equal(high, torch.zeros_like(grid))


def test_token_split_keeps_class_token_apart():
    split = StationaryHaarSplit()  # by default one class token leads (ViT)
    x = torch.randint(-8, 8, (2, 1 + 3 * 4, 5)).float()
    low, high = split(x, (3, 4))
    assert torch.equal(low[:, 0], x[:, 0])
    assert torch.equal(high[:, 0], torch.zeros_like(x[:, 0]))
    assert torch.equal(low + high, x)
    grid = x[:, 1:].transpose(1, 2).reshape(2, 5, 3, 4)
    ref_low, _ = haar_split_grid(grid)
    assert torch.equal(low[:, 1:], ref_low.flatten(2).transpose(1, 2))


def test_token_split_rejects_wrong_grid():
    with pytest.raises(ValueError, match='hw_shape'):
        StationaryHaarSplit()(torch.randn(1, 1 + 12, 4), (3, 5))


def test_replicate_padding_by_concatenation_equals_f_pad():
    # haar_split_grid pads by concatenation (torch.compile-friendly): the
    # numbers must be F.pad's replicate padding, for odd and even grids
    import torch.nn.functional as F

    from mmdidb.models.layers.haar import _pad_last_replicate
    for shape in [(2, 3, 7, 7), (1, 2, 4, 5), (1, 1, 1, 1)]:
        x = torch.randn(shape)
        assert torch.equal(_pad_last_replicate(x),
                           F.pad(x, (0, 1, 0, 1), mode='replicate'))
