"""``switch_to_deploy(model, fused=True)``: the fused binary linear layers.

The fused deployed model (RSign + pack in one kernel, scale and bias in the
GEMM's epilogue) must give exactly the logits of the unfused deployed model:
the same bits go into the same integer products and the float steps are
rounded identically. On the CPU the fused functions run their reference
formulas; on a GPU (skipped without one) the CUDA kernels, with and without
a CUDA graph.
"""
import copy
import importlib.util

import pytest
import torch
from mmpretrain.registry import MODELS

from mmdidb.models.deploy import packed_ops, switch_to_deploy
from mmdidb.models.layers import BinaryLinear

from .deploy_helpers import randomise

HAS_GPU = torch.cuda.is_available() and importlib.util.find_spec(
    'cupy') is not None
SPECS = {
    'deit-mini': (dict(type='DIDBViT', arch='mini', img_size=32,
                       patch_size=8), None, 64),
    'swin-mini': (dict(type='DIDBSwin', arch=dict(
        embed_dims=16, depths=[2, 2], num_heads=[1, 2]), img_size=32,
        patch_size=2, window_size=4), dict(type='GlobalAveragePooling'), 32),
    'binaryvit-mini': (dict(type='DIDBBinaryViT', arch='mini', img_size=32,
                            patch_size=2), None, 64),
}


def build(name):
    backbone, neck, channels = SPECS[name]
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=backbone, neck=neck,
        head=dict(type='LinearClsHead', num_classes=7,
                  in_channels=channels)))
    return randomise(model.eval())


def run(model, x):
    with torch.no_grad():
        return model(x, mode='tensor')


@pytest.mark.parametrize('name', sorted(SPECS))
def test_fused_deploy_equals_unfused_on_cpu(name, monkeypatch):
    model = build(name)
    plain, fused = copy.deepcopy(model), copy.deepcopy(model)
    switch_to_deploy(plain, fused=False)
    switch_to_deploy(fused, fused=True)
    layers = [m for m in fused.modules()
              if isinstance(m, BinaryLinear) and m.deploy]
    assert layers and all(m.fused_deploy for m in layers)
    assert not any(m.fused_deploy for m in plain.modules()
                   if isinstance(m, BinaryLinear))
    import mmdidb.models.layers.binary_linear as module
    calls = {'plain': 0, 'fused': 0}

    def counting(kind, fn):
        def wrapper(*args):
            calls[kind] += 1
            return fn(*args)
        return wrapper

    monkeypatch.setattr(module, 'binary_linear',
                        counting('plain', packed_ops.binary_linear))
    monkeypatch.setattr(module, 'binary_linear_fused',
                        counting('fused', packed_ops.binary_linear_fused))
    x = torch.randn(2, 3, 32, 32)
    expected = run(plain, x)
    assert calls == {'plain': calls['plain'], 'fused': 0}
    got = run(fused, x)
    # every deployed binary linear call took the fused path
    assert calls['fused'] == calls['plain'] >= len(layers)
    assert torch.equal(got, expected)


@pytest.mark.skipif(not HAS_GPU, reason='needs a CUDA GPU and cupy')
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
@pytest.mark.parametrize('name', sorted(SPECS))
def test_fused_kernels_and_graph_equal_unfused_on_cuda(name, dtype,
                                                       monkeypatch):
    monkeypatch.setenv('MMDIDB_OPS_STRICT', '1')
    model = build(name)
    plain, fused = copy.deepcopy(model), copy.deepcopy(model)
    switch_to_deploy(plain, fused=False)
    switch_to_deploy(fused, fused=True)
    plain, fused = plain.to('cuda', dtype), fused.to('cuda', dtype)
    both = copy.deepcopy(fused)
    from mmdidb.models.deploy import enable_cuda_graph
    runner = enable_cuda_graph(both, strict=True)
    for seed in range(2):
        torch.manual_seed(seed)
        x = torch.randn(2, 3, 32, 32, device='cuda', dtype=dtype)
        expected = run(plain, x)
        assert torch.equal(run(fused, x), expected)
        assert torch.equal(run(both, x), expected)
    assert runner.replays == 2
