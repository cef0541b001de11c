"""The fused kernels (sign-shift + pack, GEMM + scale + bias epilogue).

CPU: the public functions equal the unfused formulas they replace, on
values chosen at the rounding edges, and refuse bad arguments. GPU (skipped
without CUDA + CuPy): the CUDA kernels equal the CPU reference bit for bit.
"""
import importlib.util
import random

import pytest
import torch

from mmdidb.ops import (
    bmm_pm1,
    bmm_pm1_scaled,
    cuda_backend,
    pack_shifted_signs,
    pack_signs,
    unpack_signs,
)

HAS_GPU = torch.cuda.is_available() and importlib.util.find_spec(
    'cupy') is not None
needs_gpu = pytest.mark.skipif(not HAS_GPU,
                               reason='needs a CUDA GPU and cupy')
LENGTHS = [1, 31, 32, 33, 100, 256, 257, 700, 1536]
TINY = 1.401298464324817e-45  # the smallest float32 subnormal


def _edge_values(shape, dtype, seed):
    """Random ``x`` and ``shift`` with sums at the sign's edges."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen).to(dtype)
    shift = (torch.randn(shape[-1], generator=gen) * 0.5).to(dtype)
    flat = x.view(-1, shape[-1])
    rng = random.Random(seed)
    for _ in range(min(40, flat.numel())):
        row, col = rng.randrange(flat.shape[0]), rng.randrange(shape[-1])
        case = rng.randrange(7)
        if case == 0:  # x + shift == +0 exactly: sign(0) = +1
            flat[row, col] = -shift[col]
        elif case == 1:
            flat[row, col] = float('nan')
        elif case == 2:
            flat[row, col] = float('inf') if rng.random() < .5 else -float(
                'inf')
        elif case == 3:
            flat[row, col] = -0.0
        elif case == 4 and dtype == torch.float32:
            # a subnormal sum: a flush-to-zero kernel would give -0 -> +1
            flat[row, col] = 3 * TINY
            shift[col] = -4 * TINY
        elif case == 5:  # rounds to the neighbour of -shift
            flat[row, col] = torch.nextafter(-shift[col:col + 1].float(),
                                             torch.zeros(1)).to(dtype)[0]
        else:
            flat[row, col] = 1e4 if dtype == torch.float16 else 3e38
    return x, shift


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16,
                                   torch.bfloat16, torch.float64])
def test_pack_shifted_signs_equals_rsign_then_pack(dtype):
    for index, k in enumerate(LENGTHS):
        x, shift = _edge_values((3, 5, k), dtype, index)
        expected = pack_signs(((x + shift) >= 0).to(dtype) * 2 - 1)
        assert torch.equal(pack_shifted_signs(x, shift), expected), k


def test_pack_shifted_signs_refuses_bad_arguments():
    x = torch.randn(4, 40)
    with pytest.raises(ValueError, match=r'shift must have shape \(40,\)'):
        pack_shifted_signs(x, torch.zeros(39))
    with pytest.raises(TypeError, match='x must be a float tensor'):
        pack_shifted_signs(x.to(torch.int32), torch.zeros(40))
    with pytest.raises(TypeError, match='shift must be a float tensor'):
        pack_shifted_signs(x, torch.zeros(40, dtype=torch.int64))
    with pytest.raises(ValueError, match='0-d'):
        pack_shifted_signs(torch.tensor(1.0), torch.zeros(()))


def _scaled_reference(a_pm1, b_pm1, scale, bias, dtype):
    counts = (a_pm1.double() @ b_pm1.double().T).to(torch.int32)
    out = counts.to(dtype) * scale.to(dtype)
    return out + bias if bias is not None else out


def _gemm_case(m, n, k, dtype, seed, with_bias=True):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=gen)
    b = torch.randn(n, k, generator=gen)
    scale = (torch.rand(n, generator=gen) * 0.1).to(dtype)
    bias = torch.randn(n, generator=gen).to(dtype) if with_bias else None
    return pack_signs(a), pack_signs(b), scale, bias


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
@pytest.mark.parametrize('with_bias', [True, False])
def test_bmm_pm1_scaled_equals_the_unfused_formula(dtype, with_bias):
    for index, k in enumerate(LENGTHS):
        a, b, scale, bias = _gemm_case(70, 33, k, dtype, index, with_bias)
        got = bmm_pm1_scaled(a, b, k, scale, bias)
        expected = _scaled_reference(unpack_signs(a, k), unpack_signs(b, k),
                                     scale, bias, dtype)
        assert got.dtype == dtype and torch.equal(got, expected), k


def test_bmm_pm1_scaled_refuses_bad_arguments():
    a, b, scale, bias = _gemm_case(4, 6, 40, torch.float32, 0)
    with pytest.raises(ValueError, match=r'scale must have shape \(6,\)'):
        bmm_pm1_scaled(a, b, 40, scale[:5])
    with pytest.raises(ValueError, match=r'bias must have shape \(6,\)'):
        bmm_pm1_scaled(a, b, 40, scale, bias[:2])
    with pytest.raises(ValueError, match='2-D operands'):
        bmm_pm1_scaled(a[None], b, 40, scale)
    with pytest.raises(ValueError, match='k=70 needs'):
        bmm_pm1_scaled(a, b, 70, scale)


def test_kernel_names_are_listed():
    assert 'mmdidb_pack_shift_f16' in cuda_backend.KERNELS['pack']
    assert 'mmdidb_bmm_mma_xor_f32' in cuda_backend.KERNELS['mma']


# --------------------------------------------------------------------------
# GPU


@pytest.fixture
def _strict(monkeypatch):
    monkeypatch.setenv('MMDIDB_OPS_STRICT', '1')
    monkeypatch.delenv('MMDIDB_OPS_BACKEND', raising=False)


@needs_gpu
@pytest.mark.usefixtures('_strict')
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_pack_shift_kernel_matches_cpu(dtype):
    for index, k in enumerate(LENGTHS):
        x, shift = _edge_values((4, 7, k), dtype, 50 + index)
        expected = pack_shifted_signs(x, shift)
        got = pack_shifted_signs(x.cuda(), shift.cuda(), backend='cuda')
        assert torch.equal(got.cpu(), expected), (dtype, k)


@needs_gpu
@pytest.mark.usefixtures('_strict')
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
@pytest.mark.parametrize('with_bias', [True, False])
def test_scaled_gemm_kernel_matches_cpu(dtype, with_bias):
    # the fused epilogue is on the mma path (sm_80+); older GPUs take the
    # popc product with the epilogue in torch, which must give the same
    backend = 'mma' if torch.cuda.get_device_capability() >= (8, 0) \
        else 'popc'
    rng = random.Random(3)
    for index, k in enumerate(LENGTHS + [rng.randint(1, 3000)
                                         for _ in range(4)]):
        m, n = rng.randint(1, 300), rng.randint(1, 200)
        a, b, scale, bias = _gemm_case(m, n, k, dtype, index, with_bias)
        expected = bmm_pm1_scaled(a, b, k, scale, bias)
        cuda = [t.cuda() if t is not None else None
                for t in (a, b, scale, bias)]
        got = bmm_pm1_scaled(*cuda[:2], k, *cuda[2:], backend=backend)
        assert got.dtype == dtype
        assert torch.equal(got.cpu(), expected), (dtype, m, n, k)
        # and the unfused CUDA formula
        counts = bmm_pm1(*cuda[:2], k, backend=backend)
        unfused = counts.to(dtype) * cuda[2]
        unfused = unfused + cuda[3] if with_bias else unfused
        assert torch.equal(got, unfused)
