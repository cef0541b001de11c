import pytest
import torch

from mmdidb.models.layers import (
    ElasticBinarizer,
    RSign,
    approx_sign,
    binarize_weight,
    sign,
)


def test_sign_of_zero_is_plus_one():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-30, -1e-30, 3.0])
    assert torch.equal(sign(x), torch.tensor([-1., 1., 1., 1., -1., 1.]))


def test_weight_binarizer_forward_matches_formula():
    w = torch.randn(5, 7)
    expected = torch.empty_like(w)
    for row in range(5):
        centred = w[row] - w[row].mean()
        expected[row] = torch.where(centred >= 0, 1.0, -1.0) * \
            w[row].abs().mean()
    assert torch.allclose(binarize_weight(w), expected, atol=0, rtol=1e-6)
    # one magnitude per output row
    out = binarize_weight(w)
    assert all(len(out[r].abs().unique()) == 1 for r in range(5))


def test_weight_binarizer_gradient_is_clipped_identity():
    w = (torch.randn(4, 6) * 1.5).requires_grad_()
    grad_out = torch.randn(4, 6)
    binarize_weight(w).backward(grad_out)
    expected = grad_out * (w.detach().abs() <= 1).float()
    assert torch.equal(w.grad, expected)


def test_weight_binarizer_conv_kernel_rows():
    w = torch.randn(3, 1, 3, 3)
    out = binarize_weight(w)
    flat = w.reshape(3, -1)
    scale = flat.abs().mean(1).view(3, 1, 1, 1)
    assert torch.allclose(out.abs(), scale.expand_as(out))


def test_approx_sign_gradient_polynomial():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.25, 0.999, 1.2],
                     requires_grad=True)
    approx_sign(x).sum().backward()
    expected = torch.tensor([0., 0., 1., 2., 1.5, 2 - 2 * 0.999, 0.])
    assert torch.allclose(x.grad, expected, atol=1e-6)


def test_rsign_shift_and_gradients():
    layer = RSign(3)
    with torch.no_grad():
        layer.beta.copy_(torch.tensor([0.5, -0.5, 0.0]))
    x = torch.tensor([[[-0.25, 0.25, 0.0], [-0.75, 0.75, -0.1]]],
                     requires_grad=True)
    y = layer(x)
    assert torch.equal(y, torch.tensor([[[1., -1., 1.], [-1., 1., -1.]]]))
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    u = x.detach() + layer.beta.detach()
    slope = (2 - 2 * u.abs()).clamp(min=0)
    assert torch.allclose(x.grad, grad_out * slope)
    assert torch.allclose(layer.beta.grad, (grad_out * slope).sum((0, 1)))


def test_elastic_binarizer_forward_and_lsq_gradients():
    layer = ElasticBinarizer(num_heads=2, num_tokens=4, lsq_grad_scale=False)
    assert torch.allclose(layer.alpha.detach(), torch.full((2, ), 0.5))
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.4, 0.2]))
    probs = torch.rand(3, 2, 4, 4).softmax(-1).requires_grad_()
    out = layer(probs)
    alpha = torch.tensor([0.4, 0.2]).view(1, 2, 1, 1)
    mask = (probs.detach() >= alpha / 2).float()
    assert torch.equal(out, alpha * mask)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    ratio = probs.detach() / alpha
    inside = (ratio <= 1).float()
    assert torch.allclose(probs.grad, grad_out * inside)
    d_alpha = torch.where(ratio <= 1, mask - ratio, torch.ones_like(ratio))
    expected = (grad_out * d_alpha).sum((0, 2, 3))
    assert torch.allclose(layer.alpha.grad, expected, atol=1e-6)


def test_elastic_binarizer_lsq_grad_scale():
    probs = torch.rand(2, 3, 5, 5).softmax(-1)
    grads = []
    for scaled in (False, True):
        layer = ElasticBinarizer(3, 5, lsq_grad_scale=scaled)
        layer(probs).sum().backward()
        grads.append(layer.alpha.grad)
    per_alpha = 5 * 5  # one sample's attention map per head
    assert torch.allclose(grads[1], grads[0] / per_alpha**0.5, atol=1e-6)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_sign_keeps_dtype(dtype):
    assert sign(torch.randn(4, dtype=dtype)).dtype == dtype
