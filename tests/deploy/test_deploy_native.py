"""Deployed models on the native CPU kernels equal the torch path.

With the C kernels (the default for CPU tensors) a deployed model must give
the logits of the same model on the pure-torch products bit for bit: the
integer products are exact on both paths and the float epilogue makes the
same two roundings. ``torch.export`` and ``torch.compile`` see each product
and packing step as one custom op.
"""
import copy

import pytest
import torch

from mmdidb.models.deploy import switch_to_deploy
from mmdidb.models.deploy.packed_ops import shifted_sign_product, sign_product
from mmdidb.ops import cpu_bits

from .test_deploy_fused import SPECS, build, run


@pytest.fixture
def torch_path(monkeypatch):
    """A context in which every product and packing runs in torch."""

    def enter():
        monkeypatch.setitem(cpu_bits._state, 'lib', None)

    return enter


def count_native_calls(monkeypatch):
    calls = []
    for name in ('bgemm', 'pack_rows', 'pack_cols'):
        real = getattr(cpu_bits, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(cpu_bits, name, spy)
    return calls


@pytest.mark.parametrize('name', sorted(SPECS))
@pytest.mark.parametrize('batch', [1, 3])
def test_native_deploy_equals_the_torch_path(name, batch, monkeypatch,
                                             torch_path):
    model = build(name)
    switch_to_deploy(model)
    x = torch.randn(batch, 3, 32, 32)
    calls = count_native_calls(monkeypatch)
    native = run(model, x)
    # every product (linears, Q·Kᵀ, mask·V) ran in C
    assert calls.count('bgemm') >= 3 and 'pack_rows' in calls
    torch_path()
    calls.clear()
    reference = run(model, x)
    assert calls == []
    assert torch.equal(native, reference)


@pytest.mark.parametrize('heads', [2, 8])  # head sizes 32 and 8 bits
def test_shifted_sign_product_equals_the_rsign_product(heads):
    torch.manual_seed(0)
    q, k = torch.randn(2, 13, 64), torch.randn(2, 11, 64)
    q_shift, k_shift = torch.randn(64) * 0.3, torch.randn(64) * 0.3

    def split(x):
        b, n, c = x.shape
        return x.reshape(b, n, heads, c // heads).transpose(1, 2)

    q_pm1 = torch.where(q + q_shift >= 0, 1.0, -1.0)
    k_pm1 = torch.where(k + k_shift >= 0, 1.0, -1.0)
    expected = split(q_pm1) @ split(k_pm1).transpose(-2, -1)
    got = shifted_sign_product(q, q_shift, k, k_shift, heads)
    assert torch.equal(got, expected)
    assert torch.equal(sign_product(split(q_pm1), split(k_pm1)), expected)


def _deit_mini():
    model = build('deit-mini')
    switch_to_deploy(model)
    return model.backbone


def test_export_sees_one_custom_op_per_step():
    backbone = _deit_mini()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = backbone(x)
        program = torch.export.export(backbone, (x, ))
        got = program.module()(x)
    ops = {str(node.target) for node in program.graph.nodes
           if str(node.target).startswith('mmdidb.')}
    # linears: sign_linear; Q·Kᵀ: pack_shifted_signs + bmm_pm1_bands
    # (HFSC's bands, weights and scale in its epilogue); mask·V: pack_mask,
    # pack_signs (V along the tokens) + bmm_mask_pm1
    assert ops == {f'mmdidb.{name}.default' for name in (
        'sign_linear', 'bmm_pm1_bands', 'bmm_mask_pm1', 'pack_mask',
        'pack_shifted_signs', 'pack_signs')}
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


@pytest.fixture
def fresh_dynamo():
    """Dynamo's caches cleared before and after: a second compile of the
    same code with other shapes would otherwise turn on dynamic shapes in
    later tests of this process."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compile_runs_the_ops_without_a_graph_break(fresh_dynamo):
    backbone = _deit_mini()
    x = torch.randn(2, 3, 32, 32)
    # aot_eager keeps torch's float kernels, so the result is bit for bit
    # that of eager mode; fullgraph=True fails on any graph break
    compiled = torch.compile(copy.deepcopy(backbone), backend='aot_eager',
                             fullgraph=True)
    with torch.no_grad():
        expected = backbone(x)
        got = compiled(x)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
