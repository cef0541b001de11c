"""DIBA.aggregate, its switches and reduced keys, against written-out sums."""
import pytest
import torch

from mmdidb.models.deploy import switch_to_deploy
from mmdidb.models.layers import DIBA

DOT = dict(type='DotProductSimilarity')


def _pm1(*shape):
    return torch.where(torch.randn(shape) >= 0, 1.0, -1.0)


def _heads(x, h):
    b, n, c = x.shape
    return x.view(b, n, h, c // h).transpose(1, 2)


def _merge(x):
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _attn(b, h, n, m, alpha=0.25):
    return alpha * (torch.rand(b, h, n, m) < 0.5).float()


def _diba(**kwargs):
    torch.manual_seed(0)
    layer = DIBA(8, 2, 1 + 6, similarity_cfg=DOT, **kwargs)
    if layer.local_difference is not None:
        with torch.no_grad():
            layer.local_difference.scale.normal_()
    return layer


def test_aggregate_adds_the_self_term_and_local_difference():
    layer = _diba(theta=3)
    v, attn = _pm1(2, 7, 8), _attn(2, 2, 7, 7)
    with torch.no_grad():
        out = layer.aggregate(attn, v, (2, 3))
        vh = _heads(v, 2)
        self_term = (1 - attn.sum(-1, keepdim=True)) * vh
        expected = _merge(attn @ vh + self_term) + layer.local_difference(
            v, (2, 3))
    assert torch.allclose(out, expected, rtol=0, atol=1e-6)


def test_switches_drop_their_terms():
    v, attn = _pm1(2, 7, 8), _attn(2, 2, 7, 7)
    plain = _diba(diba=False)
    assert plain.local_difference is None
    assert torch.allclose(plain.aggregate(attn, v, (2, 3)),
                          _merge(attn @ _heads(v, 2)), rtol=0, atol=1e-6)
    assert _diba(theta=1).local_difference is None
    fp = _diba(binary_acts=False)
    assert fp.attn_binarizer is None and fp.v_binarizer is None
    logits = torch.randn(2, 2, 7, 7)
    assert torch.equal(fp.binarize(logits), logits.softmax(-1))
    x = torch.randn(2, 7, 8)
    with torch.no_grad():
        assert torch.equal(fp.values(x, (2, 3)), fp.v(x, (2, 3)))


def test_reduced_keys_use_the_nearest_reduced_cell():
    # 1 + 4x4 queries, 1 + 2x2 values: query (i, j) sees value (i//2, j//2)
    layer = DIBA(8, 2, 1 + 16, similarity_cfg=DOT, theta=3,
                 kv_num_tokens=1 + 4)
    with torch.no_grad():
        layer.local_difference.scale.normal_()
    v, attn = _pm1(2, 5, 8), _attn(2, 2, 17, 5)
    idx = [0] + [1 + (i // 2) * 2 + j // 2 for i in range(4) for j in range(4)]
    with torch.no_grad():
        out = layer.aggregate(attn, v, (4, 4), (2, 2))
        own = _heads(v[:, idx], 2)
        self_term = (1 - attn.sum(-1, keepdim=True)) * own
        diff = layer.local_difference(v, (2, 2))[:, idx]
        expected = _merge(attn @ _heads(v, 2) + self_term) + diff
    assert torch.allclose(out, expected, rtol=0, atol=1e-6)


def test_logits_are_scaled_by_the_head_dim():
    layer = _diba()
    x = torch.randn(2, 7, 8)
    with torch.no_grad():
        sim = layer.similarity(x, (2, 3), layer.q, layer.k)
        assert torch.allclose(layer.logits(x, (2, 3)), sim * 4**-0.5,
                              rtol=0, atol=1e-6)
        assert torch.equal(layer.binarize(sim), layer.attn_binarizer(
            sim.softmax(-1)))


def test_deploy_aggregate_equals_training():
    layer = _diba(theta=3)
    x = torch.randn(2, 7, 8)
    with torch.no_grad():
        expected = layer(x, (2, 3))
        switch_to_deploy(layer)
        assert layer.deploy
        assert torch.allclose(layer(x, (2, 3)), expected, rtol=0, atol=1e-5)
    fp = _diba(binary_acts=False)
    switch_to_deploy(fp)
    assert not fp.deploy


def test_fused_qkv_checkpoint_loads_into_q_k_v():
    layer = _diba()
    state = layer.state_dict()
    fused = {k: v for k, v in state.items()
             if not k.startswith(('q.weight', 'k.weight', 'v.weight',
                                  'q.bias', 'k.bias', 'v.bias'))}
    weight = torch.randn(24, 8)
    bias = torch.randn(24)
    fused.update({'qkv.weight': weight, 'qkv.bias': bias})
    layer.load_state_dict(fused)
    for i, name in enumerate('qkv'):
        part = getattr(layer, name)
        assert torch.equal(part.weight, weight[8 * i:8 * (i + 1)])
        assert torch.equal(part.bias, bias[8 * i:8 * (i + 1)])


def test_heads_must_divide_the_channels():
    with pytest.raises(ValueError, match='not divisible'):
        DIBA(8, 3, 7)


def test_deploy_aggregate_uses_each_heads_clamped_alpha():
    layer = _diba(theta=1)  # no D(V): its scales round differently
    with torch.no_grad():
        layer.attn_binarizer.alpha.copy_(torch.tensor([0.25, -1.0]))
    x = torch.randn(2, 7, 8)
    with torch.no_grad():
        attn = layer.attention(x, (2, 3))
        # head 1: alpha clamped to 1e-6, every probability above 5e-7 kept
        assert torch.equal(attn[:, 1].unique(), torch.tensor([1e-6]))
        v = layer.values(x, (2, 3))
        expected = layer.aggregate(attn, v, (2, 3)).double()
        switch_to_deploy(layer)
        out = layer.aggregate(attn, v, (2, 3)).double()
    assert torch.allclose(out, expected, rtol=0, atol=1e-8)


def test_projection_keeps_its_bias_without_qkv_bias():
    layer = DIBA(8, 2, 7, qkv_bias=False, similarity_cfg=DOT)
    assert layer.q.bias is None and layer.k.bias is None
    assert layer.v.bias is None and layer.proj.bias is not None
