"""The Hopper wgmma b1 kernels (bmm_wgmma.cu, sm_90a cubin).

Without a GPU: the sm_90a cubin builds with nvcc, the instruction is really
in it (ptxas refuses the unguarded source for plain sm_90), and the
portable fallback warns once and returns the portable result; the host
side of a launch (grid limits, the k256 step count given to the kernel) with
CuPy faked. On an sm_90 GPU (H100/H200; skipped elsewhere): the products are
exact, one tile and many shapes.
"""
import contextlib
import importlib.util
import random
import re
import types

import pytest
import torch

from mmdidb.ops import (
    bmm_mask_pm1,
    bmm_pm1,
    compile_check,
    cuda_backend,
    pack_mask,
    pack_signs,
    wgmma,
)

from ops_helpers import exact_pm1_product, pm1, random_mask, random_values

NVCC = compile_check.find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason='nvcc not found: '
                                'cannot build the sm_90a cubin')
HAS_SM90 = (torch.cuda.is_available()
            and importlib.util.find_spec('cupy') is not None
            and torch.cuda.get_device_capability() == (9, 0))
needs_sm90 = pytest.mark.skipif(not HAS_SM90, reason='wgmma b1 needs an '
                                'sm_90 GPU (H100/H200) and cupy')


@needs_nvcc
def test_sm90a_cubin_builds(tmp_path, monkeypatch):
    monkeypatch.setenv('MMDIDB_CUBIN_DIR', str(tmp_path))
    monkeypatch.delenv('MMDIDB_WGMMA_CUBIN', raising=False)
    path = wgmma.build_cubin()
    assert path.parent == tmp_path and path.stat().st_size > 1000
    assert wgmma.build_cubin() == path  # cached


@needs_nvcc
def test_wgmma_is_compiled_only_for_sm90a():
    # Unguarded, plain sm_90 must reject the instruction: so the sm_90a
    # build really contains it and the guard is what keeps sm_80/sm_90 safe.
    text = wgmma.SOURCE.read_text().replace(
        '#if defined(__CUDA_ARCH_FEAT_SM90_ALL)', '#if 1')
    with pytest.raises(compile_check.CudaCompileError, match='wgmma'):
        compile_check.compile_with_nvcc(text, 'sm_90')
    compile_check.compile_with_nvcc(text, 'sm_90a')


def test_cpu_tensors_are_refused():
    a, b = pack_signs(torch.randn(5, 70)), pack_signs(torch.randn(6, 70))
    with pytest.raises(ValueError, match='need CUDA tensors'):
        wgmma.bmm_pm1_wgmma(a, b, 70)


@pytest.fixture
def fake_launch(monkeypatch):
    """Run :func:`wgmma.launch_bmm` on the CPU, recording each launch.

    CuPy, the stream and the kernels are stand-ins; the host side (grid,
    checks, kernel arguments) is the real code.
    """
    launches = []
    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(
        Device=lambda index: contextlib.nullcontext()))
    monkeypatch.setattr(cuda_backend, '_cupy', lambda: fake_cupy)
    monkeypatch.setattr(cuda_backend, '_stream',
                        lambda device: contextlib.nullcontext())

    def kernel(name):
        return lambda grid, block, args: launches.append(
            (name, grid, block, tuple(int(a) for a in args)))

    monkeypatch.setattr(wgmma, '_functions', {
        (0, name): kernel(name) for name in wgmma.KERNELS})
    return launches


def test_row_tiles_beyond_grid_y_are_refused_before_launch(fake_launch):
    # blockIdx.y holds at most 65535 row tiles of 64 rows
    limit = 65535 * wgmma.TILE[0]
    b = torch.zeros(3, 1, dtype=torch.int32)
    wgmma.launch_bmm(torch.zeros(limit, 1, dtype=torch.int32), b, 32, 'xor')
    assert [grid for _, grid, *_ in fake_launch] == [(1, 65535, 1)]
    with pytest.raises(ValueError, match='at most 4194240 rows'):
        wgmma.launch_bmm(torch.zeros(limit + 1, 1, dtype=torch.int32), b,
                         32, 'xor')
    assert len(fake_launch) == 1
    with pytest.raises(ValueError, match='at most 4194240 rows'):
        wgmma.launch_grid(limit + 1, 3, 1)
    # the same check as the portable kernels', with their tile
    with pytest.raises(ValueError, match='at most 4194240 rows'):
        cuda_backend.check_row_tiles(limit + 1, 64)
    cuda_backend.check_row_tiles(limit, 64)
    assert cuda_backend.MAX_GRID_Y == 65535
    with pytest.raises(ValueError, match='at most 65535 matrices'):
        wgmma.launch_grid(1, 1, cuda_backend.MAX_GRID_Z + 1)


@pytest.mark.parametrize('words, steps', [
    (1, [1]), (8, [1]), (9, [2]), (12, [2]), (24, [3]), (32, [4]),
    (40, [4, 1]), (48, [4, 2]), (64, [4, 4]), (72, [4, 4, 1])])
def test_steps_stop_at_the_last_word(words, steps):
    # a k256 step is 8 words: K = 384 bits (DeiT-S) packs into 12 words,
    # 2 steps, where a full 32-word stage has 4
    assert wgmma.stage_steps(words) == steps
    assert wgmma.k_steps(words) == sum(steps)


def _kernel_parameters(name):
    text = wgmma.SOURCE.read_text()
    found = re.search(rf'\b{name}\(([^)]*)\)', text)
    return [re.findall(r'\w+', p)[-1] for p in found.group(1).split(',')]


def test_kernel_is_given_the_step_count(fake_launch):
    a = pack_signs(random_values((5, 384), 1))
    b = pack_signs(random_values((7, 384), 2))
    assert a.shape[-1] == 12
    wgmma.launch_bmm(a, b, 384, 'and')
    (name, grid, block, args), = fake_launch
    assert (name, grid, block) == ('mmdidb_bmm_wgmma_and', (1, 1, 1), (128,))
    params = _kernel_parameters(name)
    assert params == _kernel_parameters('mmdidb_bmm_wgmma_xor')
    assert params[3:] == ['M', 'N', 'W', 'k', 'ksteps', 'strideA',
                          'strideB', 'lbo', 'sbo']
    assert dict(zip(params[3:], args[3:])) == dict(
        M=5, N=7, W=12, k=384, ksteps=2, strideA=60, strideB=84,
        lbo=wgmma.LBO, sbo=wgmma.SBO)
    assert len(args) == len(params)


def test_host_constants_match_the_kernel_source():
    text = wgmma.SOURCE.read_text()
    defines = dict(re.findall(r'#define (WG_\w+) (\d+)', text))
    assert (int(defines['WG_BM']), int(defines['WG_BN']),
            int(defines['WG_THREADS'])) == wgmma.TILE
    assert int(defines['WG_STEP_WORDS']) == wgmma.STEP_WORDS
    assert int(defines['WG_STAGE_WORDS']) == wgmma.STAGE_WORDS


@needs_sm90
def test_single_tile_is_exact():
    torch.manual_seed(0)
    x = torch.randn(64, 256, device='cuda')
    w = torch.randn(128, 256, device='cuda')
    a, b = pack_signs(x), pack_signs(w)
    expected = exact_pm1_product(x.cpu(), w.cpu())
    got = wgmma.bmm_pm1_wgmma(a, b, 256)
    assert torch.equal(got.cpu(), expected)


@needs_sm90
@pytest.mark.parametrize('op', ['xor', 'and'])
def test_products_are_exact(op):
    rng = random.Random(1)
    for index in range(20):
        batch = (rng.randint(1, 3), ) if index % 3 == 0 else ()
        m, n = rng.randint(1, 300), rng.randint(1, 300)
        k = [1, 31, 32, 255, 256, 257, 1023, 1024, 1025, 1536][index % 10] \
            if index < 10 else rng.randint(1, 3000)
        x = random_values(batch + (m, k), index)
        v = random_values(batch + (n, k), 100 + index)
        if op == 'xor':
            a, expected = pack_signs(x), exact_pm1_product(x, v)
        else:
            mask = random_mask(batch + (m, k), 200 + index)
            expected = ((mask != 0).double()
                        @ pm1(v).transpose(-1, -2)).to(torch.int32)
            a = pack_mask(mask)
        got = wgmma.bmm_pm1_wgmma(a.cuda(), pack_signs(v).cuda(), k, op=op)
        assert torch.equal(got.cpu(), expected), (op, batch, m, n, k)


@needs_sm90
@pytest.mark.parametrize('op', ['xor', 'and'])
@pytest.mark.parametrize('k', [384, 768, 1792])
def test_partial_last_stage_is_exact(k, op):
    # 2, 3 and 4 + 3 k256 steps: the kernel stops before a stage's padding
    x = random_values((70, k), 11)
    v = random_values((130, k), 12)
    if op == 'xor':
        a, expected = pack_signs(x), exact_pm1_product(x, v)
    else:
        mask = random_mask((70, k), 13)
        a = pack_mask(mask)
        expected = ((mask != 0).double() @ pm1(v).T).to(torch.int32)
    got = wgmma.bmm_pm1_wgmma(a.cuda(), pack_signs(v).cuda(), k, op=op)
    assert torch.equal(got.cpu(), expected)


@needs_sm90
def test_named_backend_runs_the_wgmma_kernels(monkeypatch):
    monkeypatch.setenv('MMDIDB_OPS_STRICT', '1')
    calls = []
    real = wgmma.launch_bmm
    monkeypatch.setattr(wgmma, 'launch_bmm',
                        lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    x = random_values((2, 3, 77, 300), 7)
    v = random_values((2, 3, 50, 300), 8)
    mask = random_mask((2, 3, 77, 300), 9)
    got = bmm_pm1(pack_signs(x).cuda(), pack_signs(v).cuda(), 300,
                  backend='wgmma')
    assert torch.equal(got.cpu(), exact_pm1_product(x, v))
    got = bmm_mask_pm1(pack_mask(mask).cuda(), pack_signs(v).cuda(), 300,
                       backend='wgmma')
    expected = ((mask != 0).double() @ pm1(v).transpose(-1, -2)).to(
        torch.int32)
    assert torch.equal(got.cpu(), expected)
    assert calls == ['xor', 'and']
