"""Deploy mode on a CUDA GPU: the CuPy kernels inside the whole model.

The same checks as test_deploy_model.py (identical binarized tensors,
exact integer products, logits equal up to the scales' rounding), with the
model on CUDA and every packed product on the tensor-core (``mma``) and the
CUDA-core (``popc``) kernels, plus a DeiT-Small-sized forward pass.

Needs torch with CUDA, CuPy, and the OpenMMLab packages (mmengine,
mmcv-lite, mmpretrain) for the model; the GPU machine has no OpenMMLab
packages, so tools/gpu_checks.sh installs their wheels when ``.whl/`` holds
them (see its header). Run: ``python -m pytest tests/deploy/test_deploy_gpu.py``.
"""
import copy
import importlib.util

import pytest
import torch

from mmdidb.compat import openmmlab_available

HAS_GPU = torch.cuda.is_available() and importlib.util.find_spec(
    'cupy') is not None
if not HAS_GPU:
    pytest.skip('needs a CUDA GPU and cupy', allow_module_level=True)
if not openmmlab_available():
    # on a GPU a skip would hide the deploy tests: fail the module instead
    pytest.fail('the deploy tests on the CUDA GPU need mmengine, mmcv-lite '
                'and mmpretrain: carry their wheels in .whl/ (see '
                'tools/gpu_checks.sh)', pytrace=False)

from mmpretrain.registry import MODELS  # noqa: E402

from mmdidb.models.deploy import switch_to_deploy  # noqa: E402

from .deploy_helpers import (  # noqa: E402
    assert_products_exact,
    assert_same_binarized,
    layerwise_mismatches,
    randomise,
    record_binarized,
    record_products,
)
from helpers import load_tool  # noqa: E402

classifier_cfg = load_tool('tools/benchmark/common.py').classifier_cfg
CUDA = 'cuda'
MINI = dict(arch='mini', img_size=32, patch_size=8)
CUSTOM = dict(arch=dict(embed_dims=48, num_layers=2, num_heads=3,
                        feedforward_channels=96),
              img_size=40, patch_size=8, theta=5)
NAIVE = dict(MINI, diba=False, hfsc=False, irprelu=False)


def _paths():
    major, _ = torch.cuda.get_device_capability()
    return ['mma', 'popc'] if major >= 8 else ['popc']


@pytest.fixture(autouse=True)
def _exact_float(monkeypatch):
    # A broken kernel must fail, never fall back to the torch path; and the
    # training graph's float products must not be rounded to TF32 (cuDNN
    # uses TF32 for FP32 convolutions by default).
    monkeypatch.setenv('MMDIDB_OPS_STRICT', '1')
    monkeypatch.delenv('MMDIDB_OPS_BACKEND', raising=False)
    monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)


def classifier(backbone):
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='DIDBViT', **backbone),
        neck=None, head=dict(type='LinearClsHead', num_classes=7,
                             in_channels=48 if backbone is CUSTOM else 64)))
    model.eval()
    return randomise(model).to(CUDA)


def logits(model, x):
    with torch.no_grad():
        return model(x, mode='tensor')


@pytest.mark.parametrize('path', _paths())
@pytest.mark.parametrize('backbone,size', [
    (MINI, (32, 32)), (MINI, (48, 64)), (CUSTOM, (24, 40)),
    (NAIVE, (40, 24))
], ids=['mini-32x32', 'mini-48x64', 'custom-24x40', 'naive-40x24'])
def test_deploy_logits_equal_the_training_graph_on_cuda(
        backbone, size, path, monkeypatch):
    monkeypatch.setenv('MMDIDB_OPS_BACKEND', path)
    model = classifier(backbone)
    deploy = copy.deepcopy(model)
    switch_to_deploy(deploy)
    x = torch.randn(3, 3, *size, device=CUDA)
    with record_binarized(model) as train_bits:
        expected = logits(model, x)
    with record_binarized(deploy) as deploy_bits, \
            record_products(monkeypatch) as calls:
        out = logits(deploy, x)
    assert out.is_cuda
    assert all(counts.is_cuda for *_, counts in calls)
    assert_same_binarized(train_bits, deploy_bits)
    assert_products_exact(calls)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)
    # and the same numbers as the CPU deploy path
    cpu = logits(copy.deepcopy(deploy).cpu(), x.cpu())
    assert torch.allclose(out.cpu(), cpu, rtol=1e-5, atol=1e-5)


#: The window and pyramid backbones, small: (backbone, neck, channels out).
PYRAMIDS = {
    'swin': (dict(type='DIDBSwin', arch=dict(embed_dims=16, depths=[2, 2],
                                            num_heads=[1, 2]),
                  img_size=32, patch_size=2, window_size=4),
             dict(type='GlobalAveragePooling'), 32),
    'binaryvit': (dict(type='DIDBBinaryViT', arch='mini', img_size=32,
                       patch_size=2), None, 64),
}


@pytest.mark.parametrize('path', _paths())
@pytest.mark.parametrize('name,size', [('swin', (32, 32)),
                                       ('swin', (40, 56)),
                                       ('binaryvit', (32, 32)),
                                       ('binaryvit', (40, 24))])
def test_window_and_pyramid_backbones_deploy_on_cuda(name, size, path,
                                                     monkeypatch):
    monkeypatch.setenv('MMDIDB_OPS_BACKEND', path)
    backbone, neck, channels = PYRAMIDS[name]
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=backbone, neck=neck,
        head=dict(type='LinearClsHead', num_classes=7,
                  in_channels=channels)))
    model = randomise(model.eval()).to(CUDA)
    deploy = copy.deepcopy(model)
    switch_to_deploy(deploy)
    x = torch.randn(3, 3, *size, device=CUDA)
    with record_binarized(model) as train_bits:
        expected = logits(model, x)
    with record_binarized(deploy) as deploy_bits, \
            record_products(monkeypatch) as calls:
        out = logits(deploy, x)
    assert calls and all(counts.is_cuda for *_, counts in calls)
    assert_same_binarized(train_bits, deploy_bits)
    assert_products_exact(calls)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_deit_small_deploy_on_cuda(monkeypatch):
    torch.manual_seed(0)
    model = MODELS.build(classifier_cfg('deit-small'))
    model.eval()
    model = randomise(model).to(CUDA)
    deploy = copy.deepcopy(model)
    switch_to_deploy(deploy)
    x = torch.randn(2, 3, 224, 224, device=CUDA)
    with record_products(monkeypatch) as calls:
        out = logits(deploy, x)
    # 12 layers: q, k twice (HFSC), v, proj, fc1, fc2, two Q·Kᵀ; one A·V
    assert sum(k == 'pm1' for k, *_ in calls) == 12 * 10
    assert sum(k == 'mask' for k, *_ in calls) == 12
    assert_products_exact(calls)
    assert torch.isfinite(out).all()
    # End to end, one value within float rounding of its threshold (a few
    # in tens of millions) binarizes differently and the flip cascades, as
    # between the training graph in FP32 and FP64; so compare layer by
    # layer, each deployed layer fed the training graph's input.
    for differ, total, diff in layerwise_mismatches(model, deploy, x):
        assert differ <= 1e-6 * total
        if not differ:
            assert diff < 1e-4


def test_half_precision_deploy_keeps_the_products_exact(monkeypatch):
    # FP16 full-precision parts: the integer products stay exact (|counts|
    # <= 2048 convert to float16 exactly), the rest is ordinary fp16.
    deploy = classifier(MINI)
    switch_to_deploy(deploy)
    deploy.half()
    x = torch.randn(4, 3, 32, 32, device=CUDA, dtype=torch.float16)
    with record_products(monkeypatch) as calls:
        out = logits(deploy, x)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert_products_exact(calls)
