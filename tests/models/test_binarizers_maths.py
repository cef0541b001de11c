"""Binarizers at their thresholds: exact ties, clamps and scales."""
import math

import torch

from mmdidb.models.layers import (
    ElasticBinarizer,
    RSign,
    approx_sign,
    binarize_weight,
    sign,
)


def test_sign_values_and_ties():
    x = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0])
    assert torch.equal(sign(x), torch.tensor([-1., -1., 1., 1., 1.]))


def test_weight_binarizer_exact_values_and_clip_edge():
    # row mean 0.25, mean |w| 1.25: signs of w - 0.25, times 1.25
    w = torch.tensor([[1.0, -1.0, 2.0, -1.0], [0.5, 0.5, 0.5, 0.5]],
                     requires_grad=True)
    out = binarize_weight(w)
    assert torch.equal(out.detach(), torch.tensor(
        [[1.25, -1.25, 1.25, -1.25], [0.5, 0.5, 0.5, 0.5]]))
    out.backward(torch.full_like(out, 3.0))
    # |w| <= 1 passes the gradient, the boundary |w| == 1 included
    assert torch.equal(w.grad, torch.tensor([[3., 3., 0., 3.],
                                             [3., 3., 3., 3.]]))
    # a conv kernel: one scale per output channel over all its weights
    k = torch.arange(-8., 10.).view(2, 1, 3, 3)
    rows = k.reshape(2, 9)
    expected = torch.where(rows - rows.mean(1, keepdim=True) >= 0, 1.0, -1.0)
    expected = expected * rows.abs().mean(1, keepdim=True)
    assert torch.equal(binarize_weight(k), expected.view(2, 1, 3, 3))


def test_approx_sign_slope_at_and_past_the_edge():
    x = torch.tensor([-2.0, -1.0, -0.25, 0.0, 0.75, 1.0, 1.5],
                     requires_grad=True)
    y = approx_sign(x)
    assert torch.equal(y.detach(), torch.tensor([-1., -1., -1., 1., 1., 1.,
                                                 1.]))
    y.backward(torch.full_like(y, 2.0))
    assert torch.equal(x.grad, 2.0 * torch.tensor([0., 0., 1.5, 2., 0.5, 0.,
                                                   0.]))


def test_rsign_channel_dim():
    layer = RSign(3, channel_dim=1)
    with torch.no_grad():
        layer.beta.copy_(torch.tensor([1.0, -1.0, 0.5]))
    x = torch.full((2, 3, 4, 4), -0.5)
    assert torch.equal(layer(x)[:, 0], torch.ones(2, 4, 4))
    assert torch.equal(layer(x)[:, 1], -torch.ones(2, 4, 4))
    assert torch.equal(layer(x)[:, 2], torch.ones(2, 4, 4))


def test_elastic_binarizer_ties_and_alpha_clamp():
    layer = ElasticBinarizer(num_heads=2, num_tokens=8, lsq_grad_scale=False)
    assert torch.equal(layer.alpha.detach(), torch.full((2, ), 0.25))
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.5, -1.0]))
    # head 0: P == alpha / 2 keeps the token, P == alpha is still inside;
    # head 1: alpha is clamped to 1e-6, every positive P is kept
    probs = torch.tensor([[0.25, 0.5, 0.125, 0.75],
                          [0.0, 1e-7, 0.25, 0.75]]).view(1, 2, 1, 4)
    probs.requires_grad_()
    out = layer(probs)
    assert torch.equal(out.detach(), torch.tensor(
        [[0.5, 0.5, 0.0, 0.5], [0.0, 0.0, 1e-6, 1e-6]]).view(1, 2, 1, 4))
    grad = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    out.backward(grad.view(1, 2, 1, 4))
    # dP: passed where P <= alpha
    assert torch.equal(probs.grad.view(2, 4),
                       torch.tensor([[1., 2., 3., 0.], [1., 1., 0., 0.]]))
    # d alpha: mask - P/alpha inside, 1 outside (LSQ)
    d0 = 1 * (1 - 0.5) + 2 * (1 - 1.0) + 3 * (0 - 0.25) + 4 * 1
    assert torch.allclose(layer.alpha.grad[0], torch.tensor(d0))


def test_elastic_binarizer_lsq_scale_counts_one_sample():
    probs = torch.rand(3, 2, 4, 5).softmax(-1)
    grads = []
    for scaled in (False, True):
        layer = ElasticBinarizer(2, 5, lsq_grad_scale=scaled)
        with torch.no_grad():
            layer.alpha.copy_(torch.tensor([0.3, 0.15]))
        layer(probs).backward(torch.ones(3, 2, 4, 5))
        grads.append(layer.alpha.grad.clone())
    assert torch.allclose(grads[1], grads[0] / math.sqrt(4 * 5), rtol=1e-6,
                          atol=0)


def test_elastic_binarizer_lsq_scale_with_a_batch_of_one():
    probs = torch.rand(1, 2, 4, 5).softmax(-1)
    grads = []
    for scaled in (False, True):
        layer = ElasticBinarizer(2, 5, lsq_grad_scale=scaled)
        layer(probs).backward(torch.ones(1, 2, 4, 5))
        grads.append(layer.alpha.grad.clone())
    assert torch.allclose(grads[1], grads[0] / math.sqrt(4 * 5), rtol=1e-6,
                          atol=0)
