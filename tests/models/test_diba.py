import pytest
import torch

from mmdidb.models.layers import DIBA, HFSC, LocalDifference, sign
from mmdidb.models.layers.haar import haar_split_grid

GRID = (3, 3)
TOKENS = 1 + 9


def _heads(x, h):
    b, n, c = x.shape
    return x.view(b, n, h, c // h).transpose(1, 2)


def _randomise(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith('beta'):
                p.uniform_(-0.3, 0.3)


def test_theta1_equals_the_matrix_formula():
    attn = DIBA(8, 2, TOKENS, theta=1,
                similarity_cfg=dict(type='DotProductSimilarity'))
    _randomise(attn)
    assert attn.local_difference is None
    x = torch.randn(2, TOKENS, 8)
    out = attn(x, GRID)

    # independently: Q_b K_bᵀ, softmax, alpha * 1[P >= alpha/2], then
    # out = alpha·M·V + (1 - alpha·k) ⊙ V with k the kept-token counts
    with torch.no_grad():
        sim_q = sign(attn.q(x, GRID) + attn.similarity.binarizers.q.beta)
        sim_k = sign(attn.k(x, GRID) + attn.similarity.binarizers.k.beta)
        v = sign(attn.v(x, GRID) + attn.v_binarizer.beta)
        q, k, v = _heads(sim_q, 2), _heads(sim_k, 2), _heads(v, 2)
        probs = (q @ k.transpose(-2, -1) * 4**-0.5).softmax(-1)
        alpha = attn.attn_binarizer.alpha.view(1, 2, 1, 1)
        mask = (probs >= alpha / 2).float()
        kept = mask.sum(-1, keepdim=True)
        heads = alpha * (mask @ v) + (1 - alpha * kept) * v
        merged = heads.transpose(1, 2).reshape(2, TOKENS, 8)
        expected = attn.proj(merged, GRID)
    assert torch.allclose(out, expected, atol=1e-5)


def test_aggregate_is_differential_form():
    # alpha·M·V + (1 - alpha·k) V == V + alpha Σ_{j in kept} (v_j - v_i)
    attn = DIBA(4, 1, 5, theta=1, similarity_cfg=dict(
        type='DotProductSimilarity'))
    mask = (torch.rand(1, 1, 5, 5) > 0.5).float()
    alpha = 0.3
    v = sign(torch.randn(1, 5, 4))
    out = attn.aggregate(alpha * mask, v)
    diffs = v[0].unsqueeze(0) - v[0].unsqueeze(1)  # [i, j] = v_j - v_i
    expected = v[0] + alpha * (mask[0, 0].unsqueeze(-1) * diffs).sum(1)
    assert torch.allclose(out[0], expected, atol=1e-6)


def test_naive_attention_without_diba():
    attn = DIBA(4, 2, 5, diba=False,
                similarity_cfg=dict(type='DotProductSimilarity'))
    assert attn.local_difference is None
    a = torch.rand(1, 2, 5, 5)
    v = torch.randn(1, 5, 4)
    expected = (a @ _heads(v, 2)).transpose(1, 2).reshape(1, 5, 4)
    assert torch.allclose(attn.aggregate(a, v), expected)


def test_full_precision_diba_is_softmax_attention_plus_local_term():
    attn = DIBA(4, 2, TOKENS, theta=1, binary_acts=False,
                binary_weights=False,
                similarity_cfg=dict(type='DotProductSimilarity'))
    assert attn.attn_binarizer is None
    probs = torch.rand(2, 2, TOKENS, TOKENS).softmax(-1)
    v = torch.randn(2, TOKENS, 4)
    expected = (probs @ _heads(v, 2)).transpose(1, 2).reshape(2, TOKENS, 4)
    assert torch.allclose(attn.aggregate(probs, v), expected, atol=1e-6)


def test_local_difference_is_weighted_sum_of_neighbour_differences():
    layer = LocalDifference(channels=2, theta=3, binary_weights=False)
    with torch.no_grad():
        layer.scale.copy_(torch.tensor([1.0, 0.5]))
    grid = torch.randn(1, 2, 3, 4)
    tokens = torch.cat([torch.randn(1, 1, 2), grid.flatten(2).transpose(1, 2)],
                       dim=1)
    out = layer(tokens, (3, 4))
    assert torch.equal(out[:, 0], torch.zeros(1, 2))  # class token: D = 0
    w = layer.weight.detach()
    for c in range(2):
        for i in range(3):
            for j in range(4):
                total = 0.0
                for di in (-1, 0, 1):
                    for dj in (-1, 0, 1):
                        ii, jj = i + di, j + dj
                        if 0 <= ii < 3 and 0 <= jj < 4:
                            total += w[c, 0, di + 1, dj + 1] * (
                                grid[0, c, ii, jj] - grid[0, c, i, j])
                got = out[0, 1 + i * 4 + j, c]
                assert torch.allclose(got, layer.scale[c] * total, atol=1e-5)


def test_local_difference_binarizes_its_kernel():
    layer = LocalDifference(channels=3, theta=5)
    kernel = layer.kernel().detach()
    for c in range(3):
        assert len(kernel[c].abs().unique()) == 1


def test_hfsc_similarity_mixes_the_two_bands():
    sim = HFSC(4, 2, binary_acts=True, alpha=0.7)
    _randomise(sim)
    x = torch.randn(2, TOKENS, 4)
    proj = torch.nn.Linear(4, 4)
    out = sim(x, GRID, proj, proj)
    cls, grid = x[:, :1], x[:, 1:].transpose(1, 2).reshape(2, 4, 3, 3)
    low, high = haar_split_grid(grid)
    low = torch.cat([cls, low.flatten(2).transpose(1, 2)], 1)
    high = torch.cat([torch.zeros_like(cls), high.flatten(2).transpose(1, 2)],
                     1)
    with torch.no_grad():
        def band(t, binarizers):
            q = _heads(sign(proj(t) + binarizers.q.beta), 2)
            k = _heads(sign(proj(t) + binarizers.k.beta), 2)
            return q @ k.transpose(-2, -1)
        expected = 0.7 * band(low, sim.low) + 0.3 * band(high, sim.high)
    assert torch.allclose(out, expected, atol=1e-5)


def test_hfsc_alpha_is_clamped_and_learnable():
    sim = HFSC(4, 1, alpha=0.9)
    with torch.no_grad():
        sim.alpha.fill_(1.7)
    x = torch.randn(1, TOKENS, 4)
    proj = torch.nn.Identity()
    ref = HFSC(4, 1, alpha=1.0)
    ref.load_state_dict({**sim.state_dict(), 'alpha': torch.tensor(1.0)})
    assert torch.equal(sim(x, GRID, proj, proj), ref(x, GRID, proj, proj))


@pytest.mark.parametrize('theta', [0, 2, 4, -1, 1.0, True])
def test_bad_theta_is_refused(theta):
    with pytest.raises(ValueError, match='theta'):
        DIBA(8, 2, TOKENS, theta=theta)


@pytest.mark.parametrize('alpha', [-0.1, 1.5])
def test_bad_hfsc_alpha_is_refused(alpha):
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        HFSC(8, 2, alpha=alpha)


def test_fused_qkv_checkpoint_is_split():
    attn = DIBA(8, 2, TOKENS)
    qkv_w, qkv_b = torch.randn(24, 8), torch.randn(24)
    state = {k: v for k, v in attn.state_dict().items()
             if not k.startswith(('q.weight', 'k.weight', 'v.weight',
                                  'q.bias', 'k.bias', 'v.bias'))}
    state.update({'qkv.weight': qkv_w, 'qkv.bias': qkv_b})
    attn.load_state_dict(state)
    assert torch.equal(attn.q.weight, qkv_w[:8])
    assert torch.equal(attn.k.weight, qkv_w[8:16])
    assert torch.equal(attn.v.bias, qkv_b[16:])
