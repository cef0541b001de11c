"""The CUDA-graph runtime of a deployed model (graph_runtime.py).

CPU part: the refusals (CPU input, dtype, training mode, bad options) and
the dispatch logic (first signature captured, others eager with one warning
each, capture failures) with the graph itself faked. GPU part (skipped
without CUDA + CuPy): a captured deployed DeiT / Swin / BinaryViT equals the
eager deployed model bit for bit, binarized tensors included, and other
shapes fall back to eager; a captured shifted-window layer equals eager.
"""
import collections
import copy
import importlib.util
import warnings

import pytest
import torch
from torch import nn

from mmdidb.models.deploy import graph_runtime
from mmdidb.models.deploy.graph_runtime import (
    CUDAGraphRunner,
    _flatten,
    _rebuild,
    disable_cuda_graph,
    enable_cuda_graph,
    graph_runner,
)

from .deploy_helpers import randomise, record_binarized

HAS_GPU = torch.cuda.is_available() and importlib.util.find_spec(
    'cupy') is not None
needs_gpu = pytest.mark.skipif(
    not HAS_GPU, reason='CUDA graphs need a CUDA GPU and cupy (run '
    'tools/gpu_checks.sh on a GPU machine)')


class Affine(nn.Module):
    """A tiny model: a pure function of its input, deterministic."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(-1, 1, 12).reshape(3, 4))

    def forward(self, x, scale=1.0):
        return {'y': (x @ self.weight.T) * scale, 'pair': (x.sum(-1), x)}


class FakeGraph:
    """Stands in for torch.cuda.CUDAGraph: replay re-runs the function into
    the static outputs, as a real replay rewrites them in place."""

    def __init__(self, fn, static_in, template, outs):
        self.fn, self.static_in, self.template = fn, static_in, template
        self.outs = outs

    def replay(self):
        args, kwargs = _rebuild(self.template, self.static_in)
        leaves = []
        _flatten(self.fn(*args, **kwargs), leaves)
        for dst, src in zip(self.outs, leaves):
            dst.copy_(src)


@pytest.fixture
def fake_capture(monkeypatch):
    """Capture on the CPU with :class:`FakeGraph`; records the captures."""
    captured = []

    def capture(self, key, args, kwargs, device):
        leaves = []
        template = _flatten((args, kwargs), leaves)
        static_in = [t.detach().clone() for t in leaves]
        with torch.no_grad():
            out = self.fn(*_rebuild(template, static_in)[0],
                          **_rebuild(template, static_in)[1])
        out_leaves = []
        out_template = _flatten(out, out_leaves)
        graph = FakeGraph(self.fn, static_in, template, out_leaves)
        self.graphs[key] = (graph, static_in, out_template, out_leaves)
        captured.append(key)

    monkeypatch.setattr(CUDAGraphRunner, '_capture', capture)
    monkeypatch.setattr(CUDAGraphRunner, '_check',
                        lambda self, tensors: torch.device('cpu'))
    return captured


def test_cpu_input_is_refused_with_a_clear_error():
    model = Affine().eval()
    runner = CUDAGraphRunner(model.forward, module=model)
    with pytest.raises(ValueError, match='needs CUDA inputs, got a tensor on '
                       'cpu'):
        runner(torch.ones(2, 4))


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float64])
def test_unsupported_dtype_is_refused(dtype):
    model = Affine().eval()
    runner = CUDAGraphRunner(model.forward, module=model)
    with pytest.raises(TypeError, match=f'{dtype} is not supported'):
        runner(torch.ones(2, 4, dtype=dtype))


def test_training_mode_and_bad_options_are_refused():
    model = Affine().train()
    runner = CUDAGraphRunner(model.forward, module=model)
    with pytest.raises(RuntimeError, match=r'model.eval\(\)'):
        runner(torch.ones(2, 4))
    with pytest.raises(ValueError, match='fallback must be one of'):
        CUDAGraphRunner(model.forward, fallback='cpu')
    with pytest.raises(ValueError, match='max_graphs and warmup'):
        CUDAGraphRunner(model.forward, max_graphs=0)
    with pytest.raises(ValueError, match='no tensor argument'):
        CUDAGraphRunner(model.forward)(scale=2.0)


def test_flatten_and_rebuild_round_trip():
    Point = collections.namedtuple('Point', 'x y')
    a, b = torch.zeros(1), torch.ones(2)
    value = ([a, {'k': b, 'n': 3}], Point(a, 'text'), None)
    leaves = []
    template = _flatten(value, leaves)
    assert leaves == [a, b, a]
    rebuilt = _rebuild(template, [t + 5 for t in leaves])
    assert isinstance(rebuilt[1], Point) and rebuilt[1].y == 'text'
    assert torch.equal(rebuilt[0][1]['k'], b + 5)
    assert rebuilt[0][1]['n'] == 3 and rebuilt[2] is None


def test_first_signature_replays_others_run_eagerly(fake_capture):
    model = Affine().eval()
    runner = CUDAGraphRunner(model.forward, module=model)
    x = torch.randn(2, 4)
    first = runner(x)
    assert len(fake_capture) == 1 and runner.replays == 1
    # a replay takes the new values through the same static buffers
    x2 = torch.randn(2, 4)
    out = runner(x2)
    assert torch.equal(out['y'], model(x2)['y'])
    assert torch.equal(out['pair'][1], x2)
    assert runner.replays == 2
    # outputs are copies: the next replay does not change them
    assert torch.equal(first['y'], model(x)['y'])
    # another shape: eager, one warning for it, still the right values
    y = torch.randn(3, 4)
    with pytest.warns(RuntimeWarning, match=r'input \(3, 4\).*differs from '
                      r'the captured \[\[\(2, 4\)\]\]'):
        out = runner(y)
    assert torch.equal(out['y'], model(y)['y'])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        runner(y)  # no second warning
    assert runner.eager_calls == 2 and len(fake_capture) == 1
    # a non-tensor argument is part of the signature
    with pytest.warns(RuntimeWarning, match='differs'):
        out = runner(x, scale=2.0)
    assert torch.equal(out['y'], model(x, scale=2.0)['y'])


def test_replaced_weights_are_captured_again(fake_capture):
    model = Affine().eval()
    runner = CUDAGraphRunner(model.forward, module=model)
    x = torch.randn(2, 4)
    runner(x)
    with torch.no_grad():
        model.weight.mul_(2)  # in place: the graph reads the new values
    assert torch.equal(runner(x)['y'], model(x)['y'])
    assert len(fake_capture) == 1
    model.weight = nn.Parameter(model.weight.detach() * 3)  # new memory
    with pytest.warns(RuntimeWarning, match='capturing again'):
        out = runner(x)
    assert len(fake_capture) == 2
    assert torch.equal(out['y'], model(x)['y'])


def test_max_graphs_error_fallback_and_capture_failure(fake_capture,
                                                       monkeypatch):
    model = Affine().eval()
    runner = CUDAGraphRunner(model.forward, module=model, max_graphs=2,
                             fallback='error')
    runner(torch.randn(1, 4))
    runner(torch.randn(2, 4))
    assert len(fake_capture) == 2
    with pytest.raises(ValueError, match="fallback='error'"):
        runner(torch.randn(3, 4))
    with pytest.raises(TypeError, match='must be hashable'):
        runner(torch.randn(1, 4), scale={'s': 1.0})

    def broken(self, *args):
        raise RuntimeError('operation not permitted when stream is capturing')

    monkeypatch.setattr(CUDAGraphRunner, '_capture', broken)
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda device=None: None)
    runner = CUDAGraphRunner(model.forward, module=model)
    x = torch.randn(2, 4)
    with pytest.warns(RuntimeWarning, match='capturing the graph failed'):
        out = runner(x)
    assert torch.equal(out['y'], model(x)['y']) and runner.eager_calls == 1
    strict = CUDAGraphRunner(model.forward, module=model, strict=True)
    with pytest.raises(RuntimeError, match='not permitted'):
        strict(x)


def _mini_classifier():
    from mmpretrain.registry import MODELS
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='DIDBViT', arch='mini', img_size=32,
                      patch_size=8),
        neck=None, head=dict(type='LinearClsHead', num_classes=7,
                             in_channels=64)))
    return randomise(model.eval())


def test_switch_installs_the_runner_on_the_backbone():
    pytest.importorskip('mmpretrain')
    from mmdidb.models.deploy import switch_to_deploy
    model = _mini_classifier()
    x = torch.randn(2, 3, 32, 32)
    deploy = copy.deepcopy(model)
    with pytest.raises(TypeError, match='need cuda_graph=True'):
        switch_to_deploy(deploy, warmup=3)
    switch_to_deploy(deploy, cuda_graph=True, warmup=3)
    runner = graph_runner(deploy)
    assert runner is not None and runner.warmup == 3
    assert enable_cuda_graph(deploy) is runner  # idempotent
    # the graph needs CUDA: on the CPU the call says so
    with pytest.raises(ValueError, match='needs CUDA inputs'):
        with torch.no_grad():
            deploy(x, mode='tensor')
    assert disable_cuda_graph(deploy) and not disable_cuda_graph(deploy)
    with torch.no_grad():
        eager = deploy(x, mode='tensor')
    assert eager.shape == (2, 7)
    assert 'weight_packed' in ''.join(deploy.state_dict())


# --------------------------------------------------------------------------
# GPU


@needs_gpu
def test_captured_binary_products_equal_eager(monkeypatch):
    # the CuPy kernels alone inside a capture: launches go to the capturing
    # stream and nothing allocates with CuPy
    monkeypatch.setenv('MMDIDB_OPS_STRICT', '1')
    from mmdidb.ops import bmm_mask_pm1, bmm_pm1, pack_mask, pack_signs

    def fn(x, w, m):
        return (bmm_pm1(pack_signs(x), pack_signs(w), x.shape[-1]),
                bmm_mask_pm1(pack_mask(m), pack_signs(x, dim=-2),
                             m.shape[-1]))

    gen = torch.Generator(device='cuda').manual_seed(0)
    make = [lambda: torch.randn(3, 70, 100, device='cuda', generator=gen),
            lambda: torch.randn(40, 100, device='cuda', generator=gen),
            lambda: (torch.rand(3, 50, 70, device='cuda', generator=gen)
                     > 0.5).float()]
    runner = CUDAGraphRunner(fn, strict=True)
    for _ in range(3):
        args = [f() for f in make]
        got, expected = runner(*args), fn(*args)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert runner.replays == 3 and runner.eager_calls == 0


def _gpu_models():
    from mmpretrain.registry import MODELS
    specs = {
        'deit-mini': (dict(type='DIDBViT', arch='mini', img_size=32,
                           patch_size=8), None, 64),
        'swin-mini': (dict(type='DIDBSwin', arch=dict(
            embed_dims=16, depths=[2, 2], num_heads=[1, 2]), img_size=32,
            patch_size=2, window_size=4), dict(type='GlobalAveragePooling'),
            32),
        'binaryvit-mini': (dict(type='DIDBBinaryViT', arch='mini',
                                img_size=32, patch_size=2), None, 64),
    }
    for name, (backbone, neck, channels) in specs.items():
        yield name, lambda b=backbone, n=neck, c=channels: MODELS.build(dict(
            type='ImageClassifier', backbone=b, neck=n,
            head=dict(type='LinearClsHead', num_classes=7, in_channels=c)))


@needs_gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
@pytest.mark.parametrize('name', ['deit-mini', 'swin-mini',
                                  'binaryvit-mini'])
def test_captured_deploy_model_equals_eager_bit_for_bit(name, dtype,
                                                        monkeypatch):
    from mmdidb.compat import openmmlab_available
    # a GPU run without the models would hide the feature: fail, saying how
    assert openmmlab_available(), (
        'needs mmengine, mmcv-lite and mmpretrain (carry their wheels in '
        '.whl/, see tools/gpu_checks.sh)')
    from mmdidb.models.deploy import switch_to_deploy
    monkeypatch.setenv('MMDIDB_OPS_STRICT', '1')
    torch.manual_seed(0)
    build = dict(_gpu_models())[name]
    eager = randomise(build().eval())
    switch_to_deploy(eager)
    eager = eager.to('cuda', dtype)
    graph = copy.deepcopy(eager)
    runner = enable_cuda_graph(graph, strict=True, warmup=1)
    x0, x1 = (torch.randn(2, 3, 32, 32, device='cuda', dtype=dtype)
              for _ in range(2))
    with torch.no_grad():
        with record_binarized(graph) as during_capture:
            graph(x0, mode='tensor')  # warm-up pass, then the capture
        out = graph(x1, mode='tensor')  # a replay: no hook runs
        with record_binarized(eager) as eager_bits:
            expected = eager(x1, mode='tensor')
    assert runner.replays == 2 and runner.eager_calls == 0
    assert torch.equal(out, expected)
    # the tensors recorded during the capture live in the graph's memory:
    # after the replay they hold its binarized values
    assert during_capture.keys() == eager_bits.keys() and eager_bits
    for key, tensors in during_capture.items():
        captured = tensors[len(tensors) // 2:]
        assert len(captured) == len(eager_bits[key])
        for a, b in zip(captured, eager_bits[key]):
            assert torch.equal(a, b), key
    # another batch size: eager, the same numbers as the eager model
    y = torch.randn(3, 3, 32, 32, device='cuda', dtype=dtype)
    with torch.no_grad(), pytest.warns(RuntimeWarning, match='differs'):
        out = graph(y, mode='tensor')
    with torch.no_grad():
        assert torch.equal(out, eager(y, mode='tensor'))
    assert runner.eager_calls == 1


@needs_gpu
@pytest.mark.parametrize('hw, pad_small', [((12, 16), False),
                                           ((3, 3), True)],
                         ids=['three-windows-across', 'padded-small-map'])
def test_captured_shifted_windows_equal_eager(hw, pad_small, monkeypatch):
    # The Haar split and D(V) of shifted windows build their region masks
    # on the GPU: a host read there (a synchronisation) fails the capture.
    from mmdidb.compat import openmmlab_available
    assert openmmlab_available(), (
        'needs mmengine, mmcv-lite and mmpretrain (carry their wheels in '
        '.whl/, see tools/gpu_checks.sh)')
    from mmdidb.models import ShiftWindowDIBA
    from mmdidb.models.deploy import switch_to_deploy
    monkeypatch.setenv('MMDIDB_OPS_STRICT', '1')
    torch.manual_seed(0)
    layer = randomise(ShiftWindowDIBA(16, 2, window_size=4, shift_size=2,
                                      pad_small_map=pad_small).eval())
    switch_to_deploy(layer)
    layer = layer.cuda()
    runner = CUDAGraphRunner(layer.forward, module=layer, strict=True,
                             warmup=1)
    x0, x1 = (torch.randn(2, hw[0] * hw[1], 16, device='cuda')
              for _ in range(2))
    with torch.no_grad():
        runner(x0, hw)  # warm-up pass, then the capture
        out = runner(x1, hw)
        expected = layer(x1, hw)
    assert runner.replays == 2 and runner.eager_calls == 0
    assert torch.equal(out, expected)


@needs_gpu
def test_gpu_refusals():
    model = Affine().eval().cuda()
    runner = CUDAGraphRunner(model.forward, module=model)
    with pytest.raises(TypeError, match='bfloat16 is not supported'):
        runner(torch.ones(2, 4, device='cuda', dtype=torch.bfloat16))
    cpu_model = Affine().eval()
    runner = CUDAGraphRunner(cpu_model.forward, module=cpu_model)
    with pytest.raises(ValueError, match="parameter 'weight' is on cpu"):
        runner(torch.ones(2, 4, device='cuda'))


def test_module_constants():
    assert graph_runtime.GRAPH_DTYPES == (torch.float32, torch.float16)
