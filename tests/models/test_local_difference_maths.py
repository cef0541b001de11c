"""LocalDifference against the formula D_i = s * sum_j w_j (v_j - v_i)."""
import copy

import pytest
import torch

from mmdidb.models.deploy import switch_to_deploy
from mmdidb.models.layers import LocalDifference, binarize_weight


def _reference(layer, v, hw, regions=None, num_extra=1):
    """Loops over in-grid, same-region neighbours of each token."""
    kernel = binarize_weight(layer.weight.detach()).double()
    scale = layer.scale.detach().double()
    h, w = hw
    pad = layer.theta // 2
    b, n, c = v.shape
    grid = v[:, num_extra:].double().transpose(1, 2).reshape(b, c, h, w)
    out = torch.zeros_like(grid)
    for s in range(b):
        labels = None if regions is None else regions[s % regions.shape[0]]
        for i in range(h):
            for j in range(w):
                for a in range(layer.theta):
                    for d in range(layer.theta):
                        y, x = i + a - pad, j + d - pad
                        if not (0 <= y < h and 0 <= x < w):
                            continue
                        if labels is not None and labels[y, x] != labels[i, j]:
                            continue
                        out[s, :, i, j] += kernel[:, 0, a, d] * (
                            grid[s, :, y, x] - grid[s, :, i, j])
    out = out * scale.view(1, -1, 1, 1)
    tokens = out.flatten(2).transpose(1, 2)
    return torch.cat([torch.zeros(b, num_extra, c, dtype=tokens.dtype),
                      tokens], dim=1)


def _layer(theta=3, num_extra=1, **kwargs):
    torch.manual_seed(0)
    layer = LocalDifference(3, theta, num_extra, **kwargs)
    with torch.no_grad():
        layer.scale.normal_()
    return layer


@pytest.mark.parametrize('theta', [3, 5])
def test_matches_the_formula_with_real_neighbours_only(theta):
    layer = _layer(theta)
    v = torch.randint(-3, 4, (2, 1 + 4 * 5, 3)).float()
    out = layer(v, (4, 5))
    assert torch.allclose(out.double(), _reference(layer, v, (4, 5)),
                          rtol=0, atol=1e-5)
    assert torch.equal(out[:, 0], torch.zeros(2, 3))


def test_regions_keep_neighbourhoods_inside_a_region():
    layer = _layer(3, num_extra=0)
    regions = torch.zeros(2, 4, 4, dtype=torch.long)
    regions[0, :, 3] = 1
    regions[0, 3, :] = 2
    v = torch.randint(-3, 4, (4, 16, 3)).float()  # B=2 x nW=2 windows
    out = layer(v, (4, 4), regions)
    expected = _reference(layer, v, (4, 4), regions, num_extra=0)
    assert torch.allclose(out.double(), expected, rtol=0, atol=1e-5)


def test_float_kernel_and_theta_one():
    layer = _layer(3, binary_weights=False)
    assert torch.equal(layer.kernel(), layer.weight)
    off = _layer(1)
    v = torch.randn(2, 1 + 9, 3)
    assert torch.equal(off(v, (3, 3)), torch.zeros_like(v))
    assert torch.equal(LocalDifference(3).scale, torch.zeros(3))


def test_deploy_matches_training_and_survives_a_reload():
    layer = _layer(3)
    v = torch.where(torch.randn(2, 1 + 12, 3) >= 0, 1.0, -1.0)
    with torch.no_grad():
        expected = layer(v, (3, 4))
        deploy = copy.deepcopy(layer)
        switch_to_deploy(deploy)
        assert deploy.deploy and 'weight' not in deploy.state_dict()
        # the unpacked kernel is derived: not saved in checkpoints
        assert set(deploy.state_dict()) == {'scale', 'weight_packed',
                                            'weight_scale'}
        assert torch.allclose(deploy(v, (3, 4)), expected, rtol=0, atol=1e-5)
        # a reload refreshes the unpacked kernel
        other = _layer(3)
        with torch.no_grad():
            other.weight.neg_()
        switch_to_deploy(other)
        other.load_state_dict(deploy.state_dict())
        assert torch.allclose(other(v, (3, 4)), expected, rtol=0, atol=1e-5)
    fp = _layer(3, binary_weights=False)
    switch_to_deploy(fp)
    assert not fp.deploy


@pytest.mark.parametrize('theta', [0, 2, -1, 3.0, True, '3'])
def test_theta_must_be_an_odd_positive_int(theta):
    with pytest.raises(ValueError, match='theta must be an odd integer'):
        LocalDifference(3, theta)


def test_kernel_starts_like_a_default_linear_init():
    # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    # fan_in = theta * theta = 9
    torch.manual_seed(0)
    weight = LocalDifference(64, 3).weight.detach()
    assert weight.abs().max() <= 1 / 3
    assert weight.abs().max() > 0.32
