"""Similarities Q_b K_bᵀ and HFSC's band mix, against written-out products."""
import pytest
import torch
from torch import nn

from mmdidb.models.deploy import switch_to_deploy
from mmdidb.models.layers import HFSC, StationaryHaarSplit
from mmdidb.models.layers.similarity import (
    DotProductSimilarity,
    merge_heads,
    split_heads,
)

GRID = (3, 4)


def _signs(t):
    return torch.where(t >= 0, 1.0, -1.0)


def _heads(t, h):
    b, n, c = t.shape
    return torch.stack([t[..., i * c // h:(i + 1) * c // h]
                        for i in range(h)], dim=1)


def _projs():
    torch.manual_seed(0)
    return nn.Linear(8, 8), nn.Linear(8, 8)


def _randomise_betas(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith('beta'):
                p.normal_()


def test_heads_split_channels_in_order():
    x = torch.arange(2 * 3 * 8.).view(2, 3, 8)
    heads = split_heads(x, 2)
    assert heads.shape == (2, 2, 3, 4)
    assert torch.equal(heads, _heads(x, 2))
    assert torch.equal(merge_heads(heads), x)


def test_dot_product_is_the_binarized_q_times_k():
    q_proj, k_proj = _projs()
    sim = DotProductSimilarity(8, 2)
    _randomise_betas(sim)
    x, kv = torch.randn(2, 13, 8), torch.randn(2, 5, 8)
    with torch.no_grad():
        q = _signs(q_proj(x) + sim.binarizers.q.beta)
        k = _signs(k_proj(x) + sim.binarizers.k.beta)
        expected = _heads(q, 2) @ _heads(k, 2).transpose(-2, -1)
        assert torch.equal(sim(x, GRID, q_proj, k_proj), expected)
        k_kv = _signs(k_proj(kv) + sim.binarizers.k.beta)
        expected_kv = _heads(q, 2) @ _heads(k_kv, 2).transpose(-2, -1)
        assert torch.equal(sim(x, GRID, q_proj, k_proj, kv=kv), expected_kv)
        # float Q and K: the plain product
        plain = DotProductSimilarity(8, 2, binary_acts=False)
        expected = (_heads(q_proj(x), 2)
                    @ _heads(k_proj(x), 2).transpose(-2, -1))
        assert torch.allclose(plain(x, GRID, q_proj, k_proj), expected,
                              rtol=0, atol=1e-5)


@pytest.mark.parametrize('alpha,used', [(0.7, 0.7), (1.5, 1.0), (-0.5, 0.0)])
def test_hfsc_mixes_the_bands_with_clamped_alpha(alpha, used):
    q_proj, k_proj = _projs()
    sim = HFSC(8, 2)
    _randomise_betas(sim)
    with torch.no_grad():
        sim.alpha.fill_(alpha)
    x, kv = torch.randn(2, 13, 8), torch.randn(2, 1 + 6, 8)
    split = StationaryHaarSplit(1)

    def band_sims(keys, grid):
        out = []
        for (q_band, k_band, bins) in zip(split(x, GRID), split(keys, grid),
                                          (sim.low, sim.high)):
            q = _signs(q_proj(q_band) + bins.q.beta)
            k = _signs(k_proj(k_band) + bins.k.beta)
            out.append(_heads(q, 2) @ _heads(k, 2).transpose(-2, -1))
        return out

    with torch.no_grad():
        low, high = band_sims(x, GRID)
        expected = used * low + (1 - used) * high
        assert torch.allclose(sim(x, GRID, q_proj, k_proj), expected,
                              rtol=0, atol=1e-5)
        low, high = band_sims(kv, (2, 3))
        out = sim(x, GRID, q_proj, k_proj, kv=kv, kv_hw_shape=(2, 3))
        assert torch.allclose(out, used * low + (1 - used) * high, rtol=0,
                              atol=1e-5)


def test_hfsc_alpha_range_and_learnability():
    assert HFSC(8, 2, alpha=0.0).alpha.item() == 0.0
    assert HFSC(8, 2, alpha=1.0).alpha.item() == 1.0
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError, match=r'\[0, 1\]'):
            HFSC(8, 2, alpha=bad)
    assert HFSC(8, 2).alpha.requires_grad
    assert not HFSC(8, 2, learnable_alpha=False).alpha.requires_grad


def test_deploy_products_only_for_binary_q_and_k():
    q_proj, k_proj = _projs()
    x = torch.randn(2, 13, 8)
    for binary_acts in (True, False):
        sim = HFSC(8, 2, binary_acts=binary_acts)
        _randomise_betas(sim)
        with torch.no_grad():
            expected = sim(x, GRID, q_proj, k_proj)
            switch_to_deploy(sim)
            assert sim.low.deploy == sim.high.deploy == binary_acts
            assert torch.allclose(sim(x, GRID, q_proj, k_proj), expected,
                                  rtol=0, atol=1e-5)
