"""The CUDA kernels (tensor-core and __popc paths, packing) on a real GPU.

Needs torch with CUDA and CuPy; imports nothing else beyond pytest (no
hypothesis, no OpenMMLab), so it runs on a bare GPU machine:
``python -m pytest tests/ops/test_ops_gpu.py -v``.
"""
import importlib.util
import random
import warnings

import pytest
import torch

from mmdidb.ops import (
    bmm_mask_pm1,
    bmm_pm1,
    cuda_backend,
    pack_mask,
    pack_signs,
)

from ops_helpers import (
    exact_mask_product,
    exact_pm1_product,
    random_mask,
    random_values,
    scribble_padding,
)

HAS_GPU = torch.cuda.is_available() and importlib.util.find_spec(
    'cupy') is not None
pytestmark = pytest.mark.skipif(not HAS_GPU,
                                reason='needs a CUDA GPU and cupy')


def _paths():
    if not HAS_GPU:
        return ['mma', 'popc']
    major, _ = torch.cuda.get_device_capability()
    return ['mma', 'popc'] if major >= 8 else ['popc']


PATHS = _paths()
# k around word and 256-bit mma boundaries, and the model's sizes.
LENGTHS = [1, 31, 32, 33, 64, 100, 255, 256, 257, 511, 512, 700, 1536]
CUDA = 'cuda'


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    # A broken kernel must fail the test, never fall back silently.
    monkeypatch.setenv('MMDIDB_OPS_STRICT', '1')
    monkeypatch.delenv('MMDIDB_OPS_BACKEND', raising=False)


def _random_cases(count, seed):
    rng = random.Random(seed)
    for index in range(count):
        batch = tuple(rng.randint(1, 3) for _ in range(rng.randint(0, 2)))
        yield (batch, rng.randint(1, 150), rng.randint(1, 150),
               LENGTHS[index % len(LENGTHS)] if index < len(LENGTHS) else
               rng.randint(1, 800), seed * 1000 + index)


def test_kernels_compile_and_load():
    assert cuda_backend.unusable_reason(torch.device(CUDA)) is None


@pytest.mark.parametrize('path', PATHS)
def test_pm1_product_exact(path):
    for batch, m, n, k, seed in _random_cases(40, 1):
        x = random_values(batch + (m, k), seed)
        w = random_values(batch + (n, k), seed + 1)
        a, b = pack_signs(x).to(CUDA), pack_signs(w).to(CUDA)
        out = bmm_pm1(a, b, k, backend=path)
        assert out.is_cuda and out.dtype == torch.int32
        assert torch.equal(out.cpu(), exact_pm1_product(x, w)), (
            path, batch, m, n, k)


@pytest.mark.parametrize('path', PATHS)
def test_mask_product_exact(path):
    for batch, m, n, k, seed in _random_cases(40, 2):
        mask = random_mask(batch + (m, k), seed)
        v = random_values(batch + (k, n), seed + 1)
        a = pack_mask(mask).to(CUDA)
        b = pack_signs(v, dim=-2).to(CUDA)
        out = bmm_mask_pm1(a, b, k, backend=path)
        assert torch.equal(out.cpu(), exact_mask_product(mask, v)), (
            path, batch, m, n, k)


@pytest.mark.parametrize('path', PATHS)
def test_padding_bits_are_ignored(path):
    for _, m, n, k, seed in _random_cases(15, 3):
        x = random_values((2, m, k), seed)
        w = random_values((2, n, k), seed + 1)
        a = scribble_padding(pack_signs(x), k, seed + 2).to(CUDA)
        b = scribble_padding(pack_signs(w), k, seed + 3).to(CUDA)
        assert torch.equal(bmm_pm1(a, b, k, backend=path).cpu(),
                           exact_pm1_product(x, w))
        mask = random_mask((2, m, k), seed + 4)
        am = scribble_padding(pack_mask(mask), k, seed + 5).to(CUDA)
        assert torch.equal(bmm_mask_pm1(am, b, k, backend=path).cpu(),
                           exact_mask_product(mask, w.transpose(-1, -2)))


@pytest.mark.parametrize('path', PATHS)
def test_broadcast_and_torch_path_agree(path):
    k = 384
    x = random_values((4, 197, k), 11)
    w = random_values((1152, k), 12)  # one weight matrix for the batch
    a, b = pack_signs(x).to(CUDA), pack_signs(w).to(CUDA)
    out = bmm_pm1(a, b, k, backend=path)
    assert torch.equal(out, bmm_pm1(a, b, k, backend='torch'))
    assert torch.equal(out.cpu(), exact_pm1_product(x, w))
    x2 = random_values((2, 1, 33, 70), 13)
    w2 = random_values((3, 21, 70), 14)
    out2 = bmm_pm1(pack_signs(x2).to(CUDA), pack_signs(w2).to(CUDA), 70,
                   backend=path)
    assert torch.equal(out2.cpu(), exact_pm1_product(x2, w2))


@pytest.mark.parametrize('path', PATHS)
def test_attention_shapes(path):
    q = random_values((2, 6, 197, 64), 21)
    kt = random_values((2, 6, 197, 64), 22)
    out = bmm_pm1(pack_signs(q).to(CUDA), pack_signs(kt).to(CUDA), 64,
                  backend=path)
    assert torch.equal(out.cpu(), exact_pm1_product(q, kt))
    attn = random_mask((2, 6, 197, 197), 23)
    v = random_values((2, 6, 197, 64), 24)
    out = bmm_mask_pm1(pack_mask(attn).to(CUDA),
                       pack_signs(v, dim=-2).to(CUDA), 197, backend=path)
    assert torch.equal(out.cpu(), exact_mask_product(attn, v))


@pytest.mark.parametrize('path', PATHS)
def test_batch_beyond_grid_limit(path):
    # More than 65535 matrices: the launch is split over blockIdx.z.
    batch, k = cuda_backend.MAX_GRID_Z + 7, 40
    x = random_values((batch, 2, k), 31)
    w = random_values((batch, 3, k), 32)
    out = bmm_pm1(pack_signs(x).to(CUDA), pack_signs(w).to(CUDA), k,
                  backend=path)
    assert torch.equal(out.cpu(), exact_pm1_product(x, w))


@pytest.mark.parametrize('path', PATHS)
def test_runs_on_the_current_stream(path):
    x = random_values((8, 300, 512), 41)
    w = random_values((8, 200, 512), 42)
    expected = exact_pm1_product(x, w)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        a, b = pack_signs(x.to(CUDA)), pack_signs(w.to(CUDA))
        out = bmm_pm1(a, b, 512, backend=path)
        result = out.to('cpu', non_blocking=False)
    stream.synchronize()
    assert torch.equal(result, expected)


def test_auto_backend_and_no_warning():
    a = pack_signs(torch.randn(5, 70, device=CUDA))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        bmm_pm1(a, a, 70)
        pack_signs(torch.randn(5, 70, device=CUDA))


SPECIAL = [0.0, -0.0, float('nan'), float('inf'), -float('inf'), 1e-40,
           -1e-40, 1.0, -1.0]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16,
                                   torch.bfloat16, torch.float64, torch.bool])
def test_packing_kernel_matches_cpu(dtype):
    rng = random.Random(5)
    for index in range(12):
        shape = (rng.randint(1, 5), rng.randint(1, 9), rng.randint(1, 700))
        x = random_values(shape, 100 + index)
        flat = x.view(-1)
        for position, value in enumerate(SPECIAL):
            if position < flat.numel():
                flat[rng.randrange(flat.numel())] = value
        x = x > 0 if dtype == torch.bool else x.to(dtype)
        for dim in (-1, 1):
            for fn in (pack_signs, pack_mask):
                expected = fn(x, dim=dim)  # CPU torch path
                got = fn(x.to(CUDA), dim=dim, backend='cuda')
                assert torch.equal(got.cpu(), expected), (fn.__name__, dtype,
                                                          shape, dim)
                via_torch = fn(x.to(CUDA), dim=dim, backend='torch')
                assert torch.equal(via_torch.cpu(), expected)


def test_mixed_devices_are_refused():
    a = pack_signs(torch.randn(3, 40))
    with pytest.raises(ValueError, match='same device'):
        bmm_pm1(a.to(CUDA), a, 40)
    with pytest.raises(ValueError, match='same device'):
        bmm_mask_pm1(a, a.to(CUDA), 40)


@pytest.mark.skipif(not HAS_GPU or torch.cuda.device_count() < 2,
                    reason='needs two CUDA GPUs and cupy')
def test_two_gpus_are_refused():
    a = pack_signs(torch.randn(3, 40))
    with pytest.raises(ValueError, match='same device'):
        bmm_pm1(a.to('cuda:0'), a.to('cuda:1'), 40)
