"""Deploy mode of each binary layer: packed weights, exact integer products.

Each layer gets the same input in training form and in deploy form. The
integer part of every packed product must equal the float product of the ±1
operands exactly; the outputs may differ only by the rounding of the scale
multiplications.
"""
import copy
import math

import pytest
import torch

from mmdidb.models.deploy import switch_to_deploy
from mmdidb.models.layers import (
    DIBA,
    HFSC,
    BinaryLinear,
    DotProductSimilarity,
    LocalDifference,
    WrappedBinaryLinear,
    binarize_weight,
    sign,
)
from mmdidb.ops import unpack_signs

from .deploy_helpers import (
    assert_products_exact,
    assert_same_binarized,
    randomise,
    record_binarized,
    record_products,
)

GRID = (3, 4)
TOKENS = 1 + 12


def deployed(module):
    module = copy.deepcopy(module)
    # fused=False: every binarizer and product call stays observable
    switch_to_deploy(module, fused=False)
    return module


@pytest.mark.parametrize('in_features,out_features', [(70, 37), (64, 32)])
def test_binary_linear_packs_one_bit_per_weight(in_features, out_features):
    layer = randomise(BinaryLinear(in_features, out_features))
    deploy = deployed(layer)
    state = deploy.state_dict()
    assert 'weight' not in state and deploy.deploy
    words = math.ceil(in_features / 32)
    assert state['weight_packed'].dtype == torch.int32
    assert state['weight_packed'].shape == (out_features, words)
    # signs times scales rebuild the training graph's binary weight exactly
    signs = unpack_signs(state['weight_packed'], in_features)
    rebuilt = signs * state['weight_scale'].unsqueeze(1)
    assert torch.equal(rebuilt, binarize_weight(layer.weight).detach())
    assert torch.equal(state['weight_scale'],
                       layer.weight.detach().abs().mean(dim=1))


def test_binary_linear_integer_part_exact(monkeypatch):
    layer = randomise(BinaryLinear(70, 37))
    deploy = deployed(layer)
    x = torch.randn(2, 5, 70)
    with record_products(monkeypatch) as calls, torch.no_grad():
        out = deploy(x)
        expected = layer(x)
    assert len(calls) == 1
    assert_products_exact(calls)
    # the integer part is sign(x + beta) @ sign(W - mean W)ᵀ, exactly
    x_pm1 = sign(x + layer.input_binarizer.beta).reshape(-1, 70).double()
    w_sign = sign(binarize_weight(layer.weight)).double()
    assert torch.equal(calls[0][3].double(), x_pm1 @ w_sign.t())
    assert out.shape == expected.shape == (2, 5, 37)
    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('in_features,out_features', [(16, 64), (64, 16),
                                                      (24, 24)])
def test_wrapped_linear_matches_training(in_features, out_features):
    layer = randomise(WrappedBinaryLinear(in_features, out_features,
                                          num_tokens=TOKENS))
    layer.eval()
    deploy = deployed(layer)
    x = torch.randn(2, TOKENS, in_features)
    with torch.no_grad():
        assert torch.allclose(deploy(x, GRID), layer(x, GRID), rtol=1e-5,
                              atol=1e-5)


@pytest.mark.parametrize('weights,acts', [(False, True), (True, False),
                                          (False, False)])
def test_layers_without_a_binary_product_stay_as_they_are(weights, acts):
    layer = BinaryLinear(8, 4, binary_weights=weights, binary_acts=acts)
    assert switch_to_deploy(layer) == []
    assert not layer.deploy and 'weight' in layer.state_dict()
    attn = DIBA(8, 2, TOKENS, binary_weights=weights, binary_acts=acts)
    switched = switch_to_deploy(attn)
    assert ('' in switched) == acts  # A·V is binary iff activations are


@pytest.mark.parametrize('similarity', [HFSC, DotProductSimilarity])
def test_similarity_is_identical_in_deploy_mode(similarity, monkeypatch):
    # Q·Kᵀ of ±1 values is integer-valued in both modes, so with the same
    # projections the similarities are equal bit for bit.
    sim = randomise(similarity(16, 2))
    q_proj = randomise(WrappedBinaryLinear(16, 16, num_tokens=TOKENS), 1)
    k_proj = randomise(WrappedBinaryLinear(16, 16, num_tokens=TOKENS), 2)
    deploy = deployed(sim)
    x = torch.randn(3, TOKENS, 16)
    with record_products(monkeypatch) as calls, torch.no_grad():
        out = deploy(x, GRID, q_proj, k_proj)
        expected = sim(x, GRID, q_proj, k_proj)
    assert len(calls) == (2 if similarity is HFSC else 1)
    assert_products_exact(calls)
    assert torch.equal(out, expected)


@pytest.mark.parametrize('diba,theta,similarity', [
    (True, 3, 'HFSC'), (True, 1, 'DotProductSimilarity'),
    (False, 1, 'DotProductSimilarity'), (True, 5, 'HFSC')
])
def test_diba_matches_training(diba, theta, similarity, monkeypatch):
    attn = randomise(DIBA(32, 2, TOKENS, diba=diba, theta=theta,
                          similarity_cfg=dict(type=similarity)))
    attn.eval()
    deploy = deployed(attn)
    x = torch.randn(2, TOKENS, 32)
    with torch.no_grad(), record_binarized(attn) as train_bits:
        expected = attn(x, GRID)
    with torch.no_grad(), record_binarized(deploy) as deploy_bits, \
            record_products(monkeypatch) as calls:
        out = deploy(x, GRID)
    assert_same_binarized(train_bits, deploy_bits)
    assert_products_exact(calls)
    kinds = [kind for kind, *_ in calls]
    bands = 2 if similarity == 'HFSC' else 1
    # q, k (HFSC: both bands in one batched call each), v, the product(s)
    # Q·Kᵀ, A·V, then proj
    assert kinds.count('pm1') == 2 + bands + 2
    assert kinds.count('mask') == 1
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_attention_value_product_is_the_masked_sum(monkeypatch):
    attn = randomise(DIBA(8, 2, TOKENS, theta=1))
    deploy = deployed(attn)
    probs = torch.rand(1, 2, TOKENS, TOKENS).softmax(-1)
    binary = attn.attn_binarizer(probs).detach()
    v = sign(torch.randn(1, TOKENS, 8))
    with record_products(monkeypatch) as calls, torch.no_grad():
        out = deploy.aggregate(binary, v, GRID)
        expected = attn.aggregate(binary, v, GRID)
    (kind, mask, v_cols, counts), = calls
    assert kind == 'mask'
    assert torch.equal(mask, (binary != 0).double())
    assert_products_exact(calls)
    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_local_difference_kernel_is_one_bit_per_weight():
    module = LocalDifference(20, theta=3)
    with torch.no_grad():
        module.scale.uniform_(-1, 1)
    deploy = deployed(module)
    state = deploy.state_dict()
    assert set(state) == {'scale', 'weight_packed', 'weight_scale'}
    assert state['weight_packed'].shape == (1, math.ceil(20 * 9 / 32))
    assert torch.equal(deploy.kernel_pm1 * state['weight_scale'].view(
        -1, 1, 1, 1), binarize_weight(module.weight).detach())
    v = sign(torch.randn(2, TOKENS, 20))
    with torch.no_grad():
        expected = module(v, GRID)
        assert torch.allclose(deploy(v, GRID), expected, rtol=1e-6,
                              atol=1e-6)
        # a fresh deploy module loading the state rebuilds its ±1 kernel
        fresh = deployed(LocalDifference(20, theta=3))
        fresh.load_state_dict(state)
        assert torch.equal(fresh(v, GRID), deploy(v, GRID))


def test_switch_to_deploy_is_idempotent():
    attn = DIBA(16, 2, TOKENS)
    first = switch_to_deploy(attn)
    assert set(first) == {'', 'q', 'k', 'v', 'proj', 'similarity.low',
                          'similarity.high', 'local_difference'}
    state = {k: v.clone() for k, v in attn.state_dict().items()}
    assert switch_to_deploy(attn) == []
    for key, value in attn.state_dict().items():
        assert torch.equal(value, state[key]), key
