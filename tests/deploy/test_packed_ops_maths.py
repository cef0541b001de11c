"""Packed products of deploy mode against the float products they replace."""
import torch

from mmdidb.models.deploy.packed_ops import (
    binary_linear,
    mask_value_product,
    pack_binary_weight,
    pack_kernel,
    sign_product,
    unpack_kernel,
)
from mmdidb.models.layers import binarize_weight
from mmdidb.ops import unpack_signs


def _pm1(*shape):
    return torch.where(torch.randn(shape) >= 0, 1.0, -1.0)


def test_pack_binary_weight_is_the_binarized_weight():
    w = torch.randn(5, 37, requires_grad=True)
    packed, scale = pack_binary_weight(w)
    assert packed.shape == (5, 2) and packed.dtype == torch.int32
    assert not packed.requires_grad and not scale.requires_grad
    assert torch.equal(scale, w.detach().abs().mean(dim=1))
    rebuilt = unpack_signs(packed, 37) * scale.unsqueeze(1)
    assert torch.equal(rebuilt, binarize_weight(w).detach())


def test_binary_linear_is_x_times_the_scaled_signs():
    w = torch.randn(6, 40)
    packed, scale = pack_binary_weight(w)
    x = _pm1(2, 3, 40)
    w_bin = binarize_weight(w)
    bias = torch.randn(6)
    out = binary_linear(x, packed, scale, bias, 40)
    assert out.shape == (2, 3, 6)
    assert torch.allclose(out, x @ w_bin.t() + bias, rtol=0, atol=1e-5)
    no_bias = binary_linear(x, packed, scale, None, 40)
    assert torch.allclose(no_bias, x @ w_bin.t(), rtol=0, atol=1e-5)
    assert binary_linear(x[0, 0], packed, scale, None, 40).shape == (6, )


def test_attention_products_are_exact():
    q, k = _pm1(2, 3, 5, 40), _pm1(2, 3, 7, 40)
    assert torch.equal(sign_product(q, k), q @ k.transpose(-2, -1))
    alpha = torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    mask = (torch.rand(2, 3, 5, 7) < 0.4).float()
    v = _pm1(2, 3, 7, 9)
    out = mask_value_product(alpha * mask, alpha, v)
    assert torch.equal(out, (alpha * mask) @ v)


def test_kernel_round_trip_one_bit_per_weight():
    w = torch.randn(6, 1, 3, 3)
    packed, scale = pack_kernel(w)
    assert packed.shape == (1, 2)  # 54 bits in 2 words
    assert torch.equal(scale, w.abs().mean(dim=(1, 2, 3)))
    signs = unpack_kernel(packed, w.shape, torch.float64)
    assert signs.dtype == torch.float64 and signs.shape == w.shape
    rebuilt = signs.float() * scale.view(6, 1, 1, 1)
    assert torch.equal(rebuilt, binarize_weight(w))
