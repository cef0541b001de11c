"""Deploy mode of the whole DIDB-ViT, and the deploy checkpoint.

The deployed model must binarize exactly the same tensors as the training
graph (so every integer product is the same), and its logits may differ
only by the rounding of the scale multiplications.
"""
import copy
import os

import pytest
import torch
from mmengine.runner import load_checkpoint
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

from mmdidb.models import DIDBViT
from mmdidb.models.deploy import (
    META_KEY,
    deploy_checkpoint,
    has_packed_weights,
    switch_to_deploy,
)

from .deploy_helpers import (
    assert_products_exact,
    assert_same_binarized,
    randomise,
    record_binarized,
    record_products,
)

MINI = dict(arch='mini', img_size=32, patch_size=8)
CUSTOM = dict(arch=dict(embed_dims=48, num_layers=2, num_heads=3,
                        feedforward_channels=96),
              img_size=40, patch_size=8, theta=5)
NAIVE = dict(MINI, diba=False, hfsc=False, irprelu=False)
BINARY_WEIGHTS = ('q.weight', 'k.weight', 'v.weight', 'proj.weight',
                  'fc1.weight', 'fc2.weight', 'local_difference.weight')


def classifier(backbone, num_classes=7):
    embed = backbone['arch']['embed_dims'] if isinstance(
        backbone['arch'], dict) else 64
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='DIDBViT', **backbone),
        neck=None,
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=embed)))
    model.eval()
    return randomise(model)


def logits(model, x):
    with torch.no_grad():
        return model(x, mode='tensor')


@pytest.mark.parametrize('backbone,size', [
    (MINI, (32, 32)), (MINI, (48, 64)), (CUSTOM, (40, 40)),
    (CUSTOM, (24, 40)), (NAIVE, (32, 32)), (NAIVE, (40, 24))
], ids=['mini-32x32', 'mini-48x64', 'custom-40x40', 'custom-24x40',
        'naive-32x32', 'naive-40x24'])
def test_deploy_logits_equal_the_training_graph(backbone, size, monkeypatch):
    model = classifier(backbone)
    deploy = copy.deepcopy(model)
    # fused=False: every binarizer still runs, so the hooks can compare
    assert 'backbone' in switch_to_deploy(deploy, fused=False)
    x = torch.randn(3, 3, *size)
    with record_binarized(model) as train_bits:
        expected = logits(model, x)
    with record_binarized(deploy) as deploy_bits, \
            record_products(monkeypatch) as calls:
        out = logits(deploy, x)
    # same binary operands everywhere, hence the same integer products
    assert_same_binarized(train_bits, deploy_bits)
    assert_products_exact(calls)
    layers = model.backbone.num_layers
    bands = 2 if backbone.get('hfsc', True) else 1
    # per layer: q/k linears (HFSC: both bands in one batched call), v,
    # proj, fc1, fc2; Q·Kᵀ per band
    assert sum(k == 'pm1' for k, *_ in calls) == layers * (bands + 6)
    assert sum(k == 'mask' for k, *_ in calls) == layers
    # the rest is the rounding of the scale multiplications
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out.argmax(-1), expected.argmax(-1))


def test_binary_weights_are_gone_and_packed():
    model = classifier(MINI)
    switch_to_deploy(model)
    state = model.state_dict()
    assert not [k for k in state if k.endswith(BINARY_WEIGHTS)]
    packed = {k: v for k, v in state.items() if k.endswith('weight_packed')}
    assert all(v.dtype == torch.int32 for v in packed.values())
    # 4 layers x 6 linears, plus the 4 local-difference kernels
    assert len(packed) == 4 * 6 + 4
    # 1 bit per weight: 64 and 256 input channels fill whole words
    weights = 4 * (4 * 64 * 64 + 2 * 64 * 256) + 4 * 64 * 9
    assert sum(v.numel() * 32 for v in packed.values()) == weights


@pytest.mark.parametrize('float_dtype', ['fp32', 'fp16'])
def test_deploy_checkpoint_round_trip(float_dtype, tmp_path):
    model = classifier(MINI)
    x = torch.randn(2, 3, 32, 32)
    switch_to_deploy(model)
    ckpt = deploy_checkpoint(model, float_dtype, meta=dict(epoch=3))
    assert ckpt['meta']['epoch'] == 3
    assert ckpt['meta'][META_KEY]['float_dtype'] == float_dtype
    dtypes = {v.dtype for v in ckpt['state_dict'].values()}
    float_type = torch.float32 if float_dtype == 'fp32' else torch.float16
    assert dtypes == {torch.int32, float_type}
    path = str(tmp_path / 'deploy.pth')
    torch.save(ckpt, path)

    # a model in training form switches itself on loading packed weights
    fresh = classifier(MINI)
    assert not fresh.backbone.deploy
    load_checkpoint(fresh, path, map_location='cpu', strict=True)
    assert fresh.backbone.deploy
    if float_dtype == 'fp32':
        assert torch.equal(logits(fresh, x), logits(model, x))
    else:
        assert next(fresh.parameters()).dtype == torch.float32
        for key, value in fresh.state_dict().items():
            assert torch.equal(value, ckpt['state_dict'][key].to(
                value.dtype)), key
    assert os.path.getsize(path) > 0


def test_deploy_checkpoint_needs_a_switched_model():
    with pytest.raises(ValueError, match='switch_to_deploy'):
        deploy_checkpoint(classifier(MINI))
    with pytest.raises(ValueError, match='float_dtype'):
        deploy_checkpoint(classifier(MINI), 'int8')


def test_deploy_model_refuses_a_training_checkpoint():
    model = DIDBViT(**MINI, deploy=True)
    with pytest.raises(RuntimeError, match='deploy mode'):
        model.load_state_dict(DIDBViT(**MINI).state_dict())
    # nor a full-precision DeiT one (fused qkv, mmcv FFN keys)
    deit = VisionTransformer(arch=dict(embed_dims=64, num_layers=4,
                                       num_heads=2, feedforward_channels=256),
                             img_size=32, patch_size=8)
    with pytest.raises(RuntimeError, match='deploy mode'):
        model.load_state_dict(deit.state_dict(), strict=False)


def test_built_in_deploy_mode_takes_the_deploy_state_dict():
    trained = DIDBViT(**MINI)
    switch_to_deploy(trained)
    built = DIDBViT(**MINI, deploy=True)
    assert built.deploy
    state = trained.state_dict()
    assert has_packed_weights(state) and not has_packed_weights(state, 'x.')
    assert built.state_dict().keys() == state.keys()
    built.load_state_dict(state)
    x = torch.randn(1, 3, 32, 32)
    built.eval(), trained.eval()
    with torch.no_grad():
        assert torch.equal(built(x)[0], trained(x)[0])
