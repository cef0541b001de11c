"""WrappedBinaryLinear: act(Norm(BinaryLinear(x)) + shortcut(x)), written out."""
import pytest
import torch
import torch.nn.functional as F

from mmdidb.models.layers import IRPReLU, WrappedBinaryLinear


def _signs(t):
    return torch.where(t >= 0, 1.0, -1.0)


def _layer(in_features, out_features, **kwargs):
    torch.manual_seed(0)
    layer = WrappedBinaryLinear(in_features, out_features, **kwargs)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    return layer


@pytest.mark.parametrize('in_features,out_features', [(4, 12), (12, 4),
                                                      (6, 6)])
def test_shortcut_repeats_averages_or_passes(in_features, out_features):
    layer = _layer(in_features, out_features, act_cfg=None)
    x = torch.arange(2. * in_features).view(2, in_features) ** 2
    out = layer.shortcut(x)
    if out_features > in_features:
        expected = x.repeat_interleave(3, dim=-1)  # d0 d0 d0 d1 d1 d1 ...
        assert torch.equal(out[0, :6], torch.tensor([0., 0., 0., 1., 1., 1.]))
    elif out_features < in_features:
        expected = x.view(2, 4, 3).mean(-1)  # consecutive groups of 3
        assert out[0, 0] == (0 + 1 + 4) / 3
    else:
        expected = x
    assert torch.equal(out, expected)


def test_forward_is_act_of_norm_of_product_plus_shortcut():
    layer = _layer(8, 16, act_cfg=dict(type='GELU'))
    x = torch.randn(2, 5, 8)
    beta = layer.input_binarizer.beta.detach()
    w = layer.weight.detach()
    w_bin = _signs(w - w.mean(1, keepdim=True)) * w.abs().mean(1,
                                                               keepdim=True)
    prod = F.linear(_signs(x + beta), w_bin, layer.bias.detach())
    normed = F.layer_norm(prod, (16, ), layer.norm.weight.detach(),
                          layer.norm.bias.detach(), eps=1e-6)
    expected = F.gelu(normed + x.repeat_interleave(2, dim=-1))
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, rtol=0, atol=1e-5)
        # a given shortcut replaces the computed one
        other = torch.randn(2, 5, 16)
        assert torch.allclose(layer(x, shortcut=other),
                              F.gelu(normed + other), rtol=0, atol=1e-5)


def test_activation_gets_channel_and_token_counts():
    layer = _layer(8, 8, num_tokens=1 + 4)
    assert isinstance(layer.act, IRPReLU)
    assert layer.act.gamma.shape == (8, )
    assert layer.act.token_offset.shape == (5, 1)
    rp = _layer(8, 8, act_cfg=dict(type='RPReLU'), num_tokens=1 + 4)
    assert isinstance(rp.act, IRPReLU) and rp.act.token_offset is None
    assert rp.act.gamma.shape == (8, )
    # IRPReLU with the token grid passed through (4 tokens -> 16 on 4x4)
    x = torch.randn(1, 1 + 16, 8)
    with torch.no_grad():
        y = layer(x, hw_shape=(4, 4))
        pre = layer.norm(super(WrappedBinaryLinear, layer).forward(x)) + x
        assert torch.allclose(y, layer.act(pre, (4, 4)), rtol=0, atol=1e-6)
    none = _layer(8, 8, act_cfg=None)
    assert none.act is None
    with torch.no_grad():
        pre = none.norm(super(WrappedBinaryLinear, none).forward(x)) + x
        assert torch.equal(none(x), pre)


def test_shortcut_needs_a_multiple():
    with pytest.raises(ValueError, match='multiple'):
        WrappedBinaryLinear(6, 4)
    WrappedBinaryLinear(4, 8)
    WrappedBinaryLinear(8, 4)


@pytest.mark.parametrize('ratio', [2, 3, 4, 6, 8])
def test_reduction_shortcut_is_torchs_mean_bit_for_bit(ratio):
    layer = WrappedBinaryLinear(16 * ratio, 16)
    x = torch.randn(3, 50, 16 * ratio, requires_grad=True)
    got = layer.shortcut(x)
    expected = x.unflatten(-1, (16, ratio)).mean(-1)
    assert torch.equal(got, expected)
    grad = torch.randn(got.shape)
    assert torch.equal(torch.autograd.grad(got, x, grad)[0],
                       torch.autograd.grad(expected, x, grad)[0])
