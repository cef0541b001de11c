"""IRPReLU: per-window-position offsets, load-time resizing, arg checks."""
import pytest
import torch
import torch.nn.functional as F

from mmdidb.models.layers import IRPReLU


def _randomised(layer):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    return layer


def _expected(layer, x, offset):
    # y = PReLU_c(x - gamma) + zeta + b_t, the slope per channel
    u = x - layer.gamma.detach()
    y = torch.where(u >= 0, u, layer.slope.detach() * u)
    return y + layer.zeta.detach() + offset


def test_window_offsets_are_tiled_over_the_map():
    layer = _randomised(IRPReLU(num_channels=3, num_tokens=4,
                                num_extra_tokens=0, window_size=2))
    b = layer.token_offset.detach().view(2, 2)
    x = torch.randn(2, 4 * 6, 3)
    out = layer(x, hw_shape=(4, 6))
    tiled = b.repeat(2, 3).reshape(24, 1)  # position (i % 2, j % 2)
    assert torch.allclose(out, _expected(layer, x, tiled), rtol=0, atol=1e-6)
    # a single window needs no grid
    x4 = torch.randn(2, 4, 3)
    assert torch.allclose(layer(x4), _expected(layer, x4, b.reshape(4, 1)),
                          rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match='need hw_shape'):
        layer(x)


def test_channel_parameters_shift_slope_and_offset():
    layer = _randomised(IRPReLU(num_channels=5, num_tokens=1 + 4))
    x = torch.randn(3, 5, 5)
    out = layer(x)
    expected = _expected(layer, x, layer.token_offset.detach())
    assert torch.allclose(out, expected, rtol=0, atol=1e-6)
    # the same through torch's PReLU (channels on dim 1)
    ref = F.prelu((x - layer.gamma).transpose(1, 2), layer.slope)
    assert torch.allclose(out, ref.transpose(1, 2) + layer.zeta
                          + layer.token_offset, rtol=0, atol=1e-6)


def test_offset_needs_more_tokens_than_extra_tokens():
    with pytest.raises(ValueError, match='must exceed'):
        IRPReLU(num_channels=2, num_tokens=1, num_extra_tokens=1)
    assert IRPReLU(num_channels=2, num_tokens=2).token_offset.shape == (2, 1)
    assert IRPReLU(num_channels=2).token_offset is None


def test_load_resizes_only_grid_offsets_of_another_size():
    src = _randomised(IRPReLU(num_channels=2, num_tokens=1 + 9))
    same = IRPReLU(num_channels=2, num_tokens=1 + 9)
    same.load_state_dict(src.state_dict())
    assert torch.equal(same.token_offset, src.token_offset)
    bigger = IRPReLU(num_channels=2, num_tokens=1 + 36)
    bigger.load_state_dict(src.state_dict())
    assert bigger.token_offset.shape == (37, 1)
    assert bigger.token_offset[0, 0] == src.token_offset[0, 0]
    window = _randomised(IRPReLU(num_channels=2, num_tokens=4,
                                 num_extra_tokens=0, window_size=2))
    other = IRPReLU(num_channels=2, num_tokens=4, num_extra_tokens=0,
                    window_size=2)
    other.load_state_dict(window.state_dict())
    assert torch.equal(other.token_offset, window.token_offset)


def test_window_offsets_of_another_window_size_are_not_resized():
    # per-window-position offsets have no grid to resize on: loading them
    # into another window size fails instead of interpolating
    src = IRPReLU(num_channels=2, num_tokens=9, num_extra_tokens=0,
                  window_size=3)
    dst = IRPReLU(num_channels=2, num_tokens=4, num_extra_tokens=0,
                  window_size=2)
    with pytest.raises(RuntimeError, match='size mismatch'):
        dst.load_state_dict(src.state_dict())
