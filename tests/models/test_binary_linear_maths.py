"""BinaryLinear: which operand is binarized, and its deploy switch."""
import copy

import pytest
import torch
import torch.nn.functional as F

from mmdidb.models.layers import BinaryLinear


def _layer(binary_weights=True, binary_acts=True):
    torch.manual_seed(0)
    layer = BinaryLinear(40, 6, binary_weights=binary_weights,
                         binary_acts=binary_acts)
    with torch.no_grad():
        layer.bias.copy_(torch.randn(6))
        if layer.input_binarizer is not None:
            layer.input_binarizer.beta.copy_(torch.randn(40) * 0.3)
    return layer


def _signs(t):
    return torch.where(t >= 0, 1.0, -1.0)


def _binary_weight(weight):
    # sign(W - mean_row W) * mean_row |W|, written out
    centred = weight - weight.mean(dim=1, keepdim=True)
    return _signs(centred) * weight.abs().mean(dim=1, keepdim=True)


@pytest.mark.parametrize('binary_weights,binary_acts',
                         [(True, True), (True, False), (False, True),
                          (False, False)])
def test_forward_binarizes_exactly_the_configured_operands(binary_weights,
                                                           binary_acts):
    layer = _layer(binary_weights, binary_acts)
    x = torch.randn(3, 5, 40)
    w = layer.weight.detach()
    expected_w = _binary_weight(w) if binary_weights else w
    if binary_acts:
        expected_x = _signs(x + layer.input_binarizer.beta.detach())
    else:
        expected_x = x
        assert layer.input_binarizer is None
    expected = F.linear(expected_x, expected_w, layer.bias.detach())
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, rtol=0, atol=1e-5)
        assert torch.equal(layer.binary_weight(), expected_w)
    assert not layer.deploy


def test_deploy_switch_packs_only_w1a1_and_only_once():
    layer = _layer()
    x = torch.randn(2, 40)
    with torch.no_grad():
        expected = layer(x)
    layer.switch_to_deploy()
    assert layer.deploy and 'weight' not in dict(layer.named_parameters())
    assert layer.weight_packed.dtype == torch.int32
    packed = layer.weight_packed.clone()
    layer.switch_to_deploy()  # a second switch keeps the packed weight
    assert torch.equal(layer.weight_packed, packed)
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, rtol=0, atol=1e-5)
    for binary_weights, binary_acts in [(True, False), (False, True),
                                        (False, False)]:
        other = _layer(binary_weights, binary_acts)
        before = copy.deepcopy(other.state_dict())
        other.switch_to_deploy()
        assert not other.deploy
        assert other.state_dict().keys() == before.keys()
