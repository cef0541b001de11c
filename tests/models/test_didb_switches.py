"""The switches that remove training mutes (issues 12 and 15).

Each test checks that a switch changes what it says, and that its default
keeps today's behaviour.
"""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS

from mmdidb.models import HFSC, DIDBViT, LocalDifference
from mmdidb.models.layers import DIBA, sign
from mmdidb.models.layers.diba import add_self_term

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GRID = (3, 3)
TOKENS = 1 + 9
SMALL = dict(arch='mini', img_size=16, patch_size=4, in_channels=1)


def _projection_loss(out, seed=0):
    """A loss that depends on every output: a fixed random projection."""
    gen = torch.Generator().manual_seed(seed)
    return (out * torch.randn(out.shape, generator=gen)).sum()


# --- D's initial scale ------------------------------------------------------

def _kernel_grad(init_scale):
    torch.manual_seed(0)
    layer = LocalDifference(4, 3, 1, init_scale=init_scale)
    v = sign(torch.randn(2, TOKENS, 4))
    _projection_loss(layer(v, GRID)).backward()
    return layer.weight.grad


def test_d_kernel_gets_no_gradient_at_step_0_with_the_zero_start():
    assert torch.equal(_kernel_grad(0.0), torch.zeros(4, 1, 3, 3))


def test_d_kernel_gets_the_gradient_at_step_0_with_a_nonzero_start():
    unit = _kernel_grad(1.0)
    # D is linear in its scale, so the kernel's gradient is too
    assert torch.allclose(_kernel_grad(0.1), 0.1 * unit, atol=1e-6)
    assert unit.abs().max() > 1.0  # a sum of ±1 products, not rounding


def test_d_init_scale_reaches_every_layer_and_the_kernel_trains():
    torch.manual_seed(0)
    model = DIDBViT(**SMALL, d_init_scale=0.05)
    for layer in model.layers[:-1]:
        assert torch.equal(layer.attn.local_difference.scale,
                           torch.full((64, ), 0.05))
    _projection_loss(model(torch.randn(2, 1, 16, 16))[0]).backward()
    grad = model.layers[0].attn.local_difference.weight.grad
    assert grad.abs().max() > 1e-3
    torch.manual_seed(0)
    default = DIDBViT(**SMALL)
    _projection_loss(default(torch.randn(2, 1, 16, 16))[0]).backward()
    assert torch.equal(default.layers[0].attn.local_difference.weight.grad,
                       torch.zeros_like(grad))


@pytest.mark.parametrize('bad', [True, 'small', None])
def test_bad_d_init_scale_is_refused(bad):
    with pytest.raises(ValueError, match='d_init_scale'):
        DIDBViT(**SMALL, d_init_scale=bad)


# --- the last block's D under a class-token readout -------------------------

def test_last_block_d_cannot_reach_the_class_token_readout():
    torch.manual_seed(0)
    full = DIDBViT(**SMALL, d_init_scale=0.5)
    x = torch.randn(2, 1, 16, 16)
    out = full(x)[0]
    _projection_loss(out).backward()
    last = full.layers[-1].attn.local_difference
    # exactly zero: D gives the class token 0, and the rest is per token
    assert torch.equal(last.weight.grad, torch.zeros_like(last.weight))
    assert torch.equal(last.scale.grad, torch.zeros_like(last.scale))

    pruned = DIDBViT(**SMALL, d_init_scale=0.5, last_block_d=False)
    assert pruned.layers[-1].attn.local_difference is None
    assert all(layer.attn.local_difference is not None
               for layer in pruned.layers[:-1])
    missing, unexpected = pruned.load_state_dict(full.state_dict(),
                                                 strict=False)
    assert missing == [] and all('layers.3.attn.local_difference' in k
                                 for k in unexpected) and unexpected
    assert torch.allclose(pruned(x)[0], out, atol=1e-6)


@pytest.mark.parametrize('kwargs', [dict(out_type='featmap'),
                                    dict(out_indices=(1, 3))])
def test_last_block_d_false_is_refused_where_the_term_is_seen(kwargs):
    with pytest.raises(ValueError, match='last_block_d'):
        DIDBViT(**SMALL, last_block_d=False, **kwargs)


# --- HFSC's fusion weight ---------------------------------------------------

def _hfsc_sims(alpha_param, param_value):
    """(forward value of a, grad of the parameter, dL/da) at ``param_value``."""
    torch.manual_seed(0)
    attn = DIBA(8, 2, TOKENS, theta=1, similarity_cfg=dict(
        type='HFSC', alpha=0.9, alpha_param=alpha_param))
    sim = attn.similarity
    x = torch.randn(2, TOKENS, 8)
    with torch.no_grad():
        sim.alpha.fill_(param_value)
        weight = sim.fusion_weight().item()
    loss = _projection_loss(attn.logits(x, GRID))
    loss.backward()
    # Sim is linear in a: dL/da = L(a=1) - L(a=0) (the two bands' part)
    with torch.no_grad():
        ends = []
        for end in (1.0, 0.0):
            ref = HFSC(8, 2, alpha=end, learnable_alpha=False)
            ref.load_state_dict(
                {k: v for k, v in sim.state_dict().items() if k != 'alpha'},
                strict=False)
            ends.append(_projection_loss(
                ref(x, GRID, attn.q, attn.k) * attn.scale))
    return weight, sim.alpha.grad.item(), (ends[0] - ends[1]).item()


@pytest.mark.parametrize('value', [1.0, 1.3, -0.2])
def test_clamped_fusion_weight_dies_beyond_its_bounds(value):
    weight, grad, _ = _hfsc_sims('clamp', value)
    assert weight == min(max(value, 0.0), 1.0)
    if value != 1.0:  # torch's clamp passes the gradient at the bound itself
        assert grad == 0.0


@pytest.mark.parametrize('value', [0.9, 1.0, 1.3, -0.2])
def test_clamp_ste_fusion_weight_keeps_its_gradient(value):
    weight, grad, d_loss_d_a = _hfsc_sims('clamp_ste', value)
    assert weight == pytest.approx(min(max(value, 0.0), 1.0), abs=1e-7)
    assert abs(d_loss_d_a) > 1.0
    assert grad == pytest.approx(d_loss_d_a, rel=1e-4)


@pytest.mark.parametrize('a', [0.9, 0.999, 1e-3])
def test_sigmoid_fusion_weight_keeps_its_gradient(a):
    logit = math.log(a / (1 - a))
    weight, grad, d_loss_d_a = _hfsc_sims('sigmoid', logit)
    assert weight == pytest.approx(a, rel=1e-5)
    assert abs(d_loss_d_a) > 1.0
    assert grad == pytest.approx(a * (1 - a) * d_loss_d_a, rel=1e-3)


def test_sigmoid_fusion_weight_starts_at_0_9():
    sim = HFSC(8, 2, alpha=0.9, alpha_param='sigmoid')
    assert sim.fusion_weight().item() == pytest.approx(0.9, abs=1e-7)
    model = DIDBViT(**SMALL, hfsc_alpha_param='sigmoid')
    assert model.layers[0].attn.similarity.alpha_param == 'sigmoid'


@pytest.mark.parametrize('kwargs', [dict(hfsc_alpha_param='tanh'),
                                    dict(hfsc_alpha_param='sigmoid',
                                         hfsc_alpha=1.0)])
def test_bad_fusion_parameterisation_is_refused(kwargs):
    with pytest.raises(ValueError, match='hfsc_alpha_param'):
        DIDBViT(**SMALL, **kwargs)


# --- DIBA's self term -------------------------------------------------------

def test_self_term_modes():
    torch.manual_seed(0)
    av = torch.randn(1, 2, 5, 3)
    own = sign(torch.randn(1, 2, 5, 3))
    sums = torch.tensor([0.2, 0.7, 1.0, 1.5, 3.0]).view(1, 1, 5, 1).expand(
        1, 2, 5, 1)
    paper = add_self_term(av, sums, own, 'paper')
    assert torch.equal(paper, av + (1 - sums) * own)
    convex = add_self_term(av, sums, own, 'convex')
    # identical while alpha·k <= 1
    assert torch.allclose(convex[:, :, :3], paper[:, :, :3], atol=1e-6)
    # above: the kept tokens' weights sum to one, the own value weighs 0
    assert torch.allclose(convex[:, :, 3:], av[:, :, 3:] / sums[:, :, 3:],
                          atol=1e-6)


def test_self_term_off_leaves_av_plus_d():
    torch.manual_seed(0)
    attn = DIBA(4, 2, TOKENS, self_term='off', d_init_scale=0.3)
    a = torch.rand(1, 2, TOKENS, TOKENS)
    v = sign(torch.randn(1, TOKENS, 4))
    av = (a @ v.view(1, TOKENS, 2, 2).transpose(1, 2)).transpose(1, 2)
    expected = av.reshape(1, TOKENS, 4) + attn.local_difference(v, GRID)
    assert torch.allclose(attn.aggregate(a, v, GRID), expected, atol=1e-6)


def test_bad_self_term_is_refused():
    with pytest.raises(ValueError, match='diba_self_term'):
        DIDBViT(**SMALL, diba_self_term='normalised')


def test_default_switches_build_todays_model():
    torch.manual_seed(0)
    model = DIDBViT(**SMALL)
    attn = model.layers[-1].attn
    assert attn.self_term == 'paper'
    assert torch.equal(attn.local_difference.scale, torch.zeros(64))
    assert attn.similarity.alpha_param == 'clamp'
    assert attn.similarity.alpha.item() == pytest.approx(0.9)


# --- the learning-rate multiplier of alpha ----------------------------------

@pytest.mark.parametrize('mult', [None, 0.1])
def test_alpha_lr_multiplier_reaches_the_param_groups(mult):
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/didbvit/vit-mini_fashion-mnist.py'))
    # the config names the key (dot-free, so --cfg-options can set it)
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == dict(
        attn_binarizer=dict(lr_mult=1.0))
    if mult is not None:
        cfg.merge_from_dict({
            'optim_wrapper.paramwise_cfg.custom_keys.attn_binarizer.lr_mult':
            mult})
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base = cfg.optim_wrapper.optimizer.lr
    names = {id(p): n for n, p in model.named_parameters()}
    alphas = others = 0
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            if 'attn_binarizer.alpha' in names[id(p)]:
                alphas += 1
                assert group['lr'] == pytest.approx(base * (mult or 1.0))
            else:
                others += 1
                assert group['lr'] == pytest.approx(base)
    assert alphas == 4 and others > 0
