import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer

from mmdidb.models.layers import IRPReLU
from mmdidb.models.layers.token_grid import resize_token_param


def _rprelu(x, layer):
    # ReActNet's RPReLU written with torch's PReLU (channels on dim 1)
    shifted = (x - layer.gamma).transpose(1, 2)
    return F.prelu(shifted, layer.slope).transpose(1, 2) + layer.zeta


def _randomise(layer):
    with torch.no_grad():
        layer.gamma.normal_()
        layer.zeta.normal_()
        layer.slope.uniform_(0, 0.5)


def test_equals_rprelu_at_init():
    layer = IRPReLU(num_channels=6, num_tokens=1 + 16)
    _randomise(layer)  # gamma/zeta/slope are RPReLU's own; b starts at 0
    x = torch.randn(3, 17, 6)
    assert torch.equal(layer.token_offset, torch.zeros(17, 1))
    assert torch.allclose(layer(x), _rprelu(x, layer), atol=1e-6)


def test_token_offset_is_added_per_token():
    layer = IRPReLU(num_channels=4, num_tokens=1 + 9)
    _randomise(layer)
    with torch.no_grad():
        layer.token_offset.normal_()
    x = torch.randn(2, 10, 4)
    expected = _rprelu(x, layer) + layer.token_offset.detach().view(1, 10, 1)
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_offset_resized_on_the_grid_class_token_kept():
    layer = IRPReLU(num_channels=2, num_tokens=1 + 4 * 4)
    with torch.no_grad():
        layer.token_offset.normal_()
    x = torch.zeros(1, 1 + 6 * 8, 2)
    y = layer(x, hw_shape=(6, 8))
    offset = y[0, :, 0] - y[0, 0, 0] + layer.token_offset[0, 0]
    expected = resize_token_param(layer.token_offset.detach(), 49, (6, 8), 1)
    assert torch.allclose(offset, expected[:, 0], atol=1e-6)
    assert torch.allclose(y[0, 0], layer.token_offset[0].detach().expand(2))
    # a square grid needs no hw_shape
    assert layer(torch.zeros(1, 1 + 36, 2)).shape == (1, 37, 2)
    with pytest.raises(ValueError, match='not a square grid'):
        layer(torch.zeros(1, 1 + 12, 2))


def test_resize_keeps_a_constant_offset_constant():
    param = torch.cat([torch.tensor([[5.0]]), torch.full((16, 1), 2.0)])
    out = resize_token_param(param, 1 + 49, None, 1, 'bicubic')
    assert out[0, 0] == 5.0
    assert torch.allclose(out[1:], torch.full((49, 1), 2.0), atol=1e-6)


def test_checkpoint_from_other_size_is_resized_on_load():
    src = IRPReLU(num_channels=3, num_tokens=1 + 16)
    with torch.no_grad():
        src.token_offset.normal_()
    dst = IRPReLU(num_channels=3, num_tokens=1 + 64)
    dst.load_state_dict(src.state_dict())
    expected = resize_token_param(src.token_offset.detach(), 65, None, 1)
    assert torch.allclose(dst.token_offset.detach(), expected)


def test_usable_as_plain_act_cfg():
    act = build_activation_layer(dict(type='IRPReLU'))
    assert act.token_offset is None and act.gamma.shape == (1, )
    x = torch.randn(2, 5, 7)
    assert torch.allclose(act(x), torch.where(x >= 0, x, 0.25 * x))
