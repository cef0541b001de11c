"""The native CPU kernels (``csrc/cpu_bits.c``) equal the torch reference.

Every instruction-set path this CPU runs (AVX-512, AVX2, portable C) and
one or two threads are checked on the same inputs against the torch
reference bit for bit: reductions that are not a multiple of the word or
vector sizes, single rows, odd channel counts, broadcast batches, all-zero
and all-one rows, garbage in the padding bits.
"""
import ctypes

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdidb.ops import (
    backend,
    bmm_mask_pm1,
    bmm_pm1,
    bmm_pm1_bands,
    bmm_pm1_scaled,
    cpu_bits,
    native,
    pack_mask,
    pack_shifted_signs,
    pack_signs,
    sign_linear,
)
from mmdidb.ops.reference import bmm_mask_pm1_torch, bmm_pm1_torch

from ops_helpers import random_values, scribble_padding

# every path this CPU runs (each ISA implies the ones before it)
PATHS = cpu_bits.ISAS[:cpu_bits.ISAS.index(cpu_bits.best_isa()) + 1]


def test_the_c_kernels_build_here():
    # without them the rest of this file would test torch against itself
    assert cpu_bits.available()


def random_words(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-2**31, 2**31, shape, generator=gen,
                         dtype=torch.int64).to(torch.int32)


def check_all_paths(a, b, k, batch):
    expected = {'xor': bmm_pm1_torch(a, b, k),
                'and': bmm_mask_pm1_torch(a, b, k)}
    for isa in PATHS:
        for threads in (1, 2):
            for op, ref in expected.items():
                got = cpu_bits.bgemm(a, b, k, op, batch, isa=isa,
                                     threads=threads)
                assert got.dtype == torch.int32
                assert torch.equal(got, ref), (op, isa, threads, k)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 13), n=st.integers(1, 70), k=st.integers(1, 1100),
       seed=st.integers(0, 2**16))
def test_products_equal_the_reference_on_every_path(m, n, k, seed):
    words = (k + 31) // 32
    a = scribble_padding(random_words((m, words), seed), k, seed + 1)
    b = scribble_padding(random_words((n, words), seed + 2), k, seed + 3)
    check_all_paths(a, b, k, torch.Size())


@pytest.mark.parametrize('a_batch,b_batch', [((3, 2), (3, 2)), ((2, ), ()),
                                             ((), (4, )), ((2, 1), (1, 3))])
def test_broadcast_batches(a_batch, b_batch):
    k = 197
    a = random_words(a_batch + (9, 7), 0)
    b = random_words(b_batch + (33, 7), 1)
    batch = torch.broadcast_shapes(a_batch, b_batch)
    check_all_paths(a, b, k, batch)


@pytest.mark.parametrize('k', [32, 64, 992, 993, 1536])
def test_all_zero_and_all_one_rows(k):
    # the byte counters of the AVX2 path flush every 31 words: full rows of
    # ones reach the largest counts
    words = (k + 31) // 32
    ones, zeros = torch.full((5, words), -1, dtype=torch.int32), \
        torch.zeros((5, words), dtype=torch.int32)
    a = torch.cat([ones, zeros, random_words((3, words), k)])
    b = torch.cat([zeros, ones, random_words((17, words), k + 1)])
    check_all_paths(a, b, k, torch.Size())
    full = cpu_bits.bgemm(ones, ones, k, 'xor', torch.Size())
    assert torch.equal(full, torch.full((5, 5), k, dtype=torch.int32))
    assert torch.equal(cpu_bits.bgemm(ones, zeros, k, 'xor', torch.Size()),
                       torch.full((5, 5), -k, dtype=torch.int32))


@pytest.mark.parametrize('isa', PATHS)
def test_scaled_epilogue_is_torchs_two_roundings(isa):
    x, w = random_values((11, 300), 0), random_values((45, 300), 1)
    scale, bias = torch.rand(45) + 0.01, torch.randn(45)
    a, b = pack_signs(x), pack_signs(w)
    counts = bmm_pm1_torch(a, b, 300)
    expected = counts.float() * scale + bias
    got = cpu_bits.bgemm(a, b, 300, 'xor', torch.Size(), scale, bias,
                         isa=isa)
    assert torch.equal(got, expected)
    assert torch.equal(
        cpu_bits.bgemm(a, b, 300, 'xor', torch.Size(), scale, isa=isa),
        counts.float() * scale)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 9), k=st.integers(1, 300),
       seed=st.integers(0, 2**16))
def test_packing_equals_the_reference(rows, k, seed):
    x = random_values((rows, k), seed)
    x[0, 0] = float('nan')
    shift = random_values((k, ), seed + 1)
    for isa in PATHS:
        assert torch.equal(cpu_bits.pack_rows(x, isa=isa),
                           pack_signs(x, backend='torch'))
        assert torch.equal(cpu_bits.pack_rows(x, mask=True, isa=isa),
                           pack_mask(x, backend='torch'))
        assert torch.equal(cpu_bits.pack_rows(x, shift, isa=isa),
                           pack_signs(x + shift, backend='torch'))
    cols = random_values((2, k, rows), seed + 2)
    assert torch.equal(cpu_bits.pack_cols(cols),
                       pack_signs(cols, dim=-2, backend='torch'))
    assert torch.equal(cpu_bits.pack_cols(cols, mask=True),
                       pack_mask(cols, dim=-2, backend='torch'))


def test_public_functions_take_the_c_path_by_default(monkeypatch):
    calls = []
    real = cpu_bits.bgemm

    def spy(*args, **kwargs):
        calls.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(cpu_bits, 'bgemm', spy)
    x, w = random_values((4, 70), 0), random_values((6, 70), 1)
    a, b = pack_signs(x), pack_signs(w)
    assert torch.equal(bmm_pm1(a, b, 70), bmm_pm1_torch(a, b, 70))
    assert torch.equal(bmm_mask_pm1(a, b, 70), bmm_mask_pm1_torch(a, b, 70))
    scale = torch.rand(6)
    assert torch.equal(bmm_pm1_scaled(a, b, 70, scale),
                       bmm_pm1_torch(a, b, 70).float() * scale)
    assert calls == ['xor', 'and', 'xor']
    shift = torch.randn(70)
    assert torch.equal(pack_shifted_signs(x, shift),
                       pack_signs(x + shift, backend='torch'))


def test_other_dtypes_take_the_torch_path():
    x = random_values((3, 40), 0, dtype=torch.float64)
    assert torch.equal(pack_signs(x), pack_signs(x.float(), backend='torch'))
    with pytest.raises(TypeError, match="backend='cpu' packs float32"):
        pack_signs(x, backend='cpu')
    counts = bmm_pm1(pack_signs(x), pack_signs(x), 40)
    scale = torch.rand(3, dtype=torch.float64)
    assert torch.equal(bmm_pm1_scaled(pack_signs(x), pack_signs(x), 40,
                                      scale), counts.double() * scale)


def test_bad_operands_are_refused_before_the_kernel():
    a = random_words((4, 3), 0)
    with pytest.raises(ValueError, match='words per row'):
        bmm_pm1(a, random_words((4, 2), 1), 70)
    with pytest.raises(ValueError, match='needs ceil'):
        bmm_pm1(a, a, 200)
    with pytest.raises(ValueError, match='contiguous'):
        bmm_pm1(random_words((3, 4), 0).t(), a, 70)
    with pytest.raises(TypeError, match='int32'):
        bmm_pm1(a.long(), a, 70)
    # the C entry point checks its own arguments too (status -2)
    lib = cpu_bits._load()
    status = lib.mmdidb_bgemm(None, None, 1, 1, 1, 1, 1, 2, 65, 0, None,
                              None, None, None, 0, 1)
    assert status == -2


def test_an_isa_the_cpu_lacks_is_an_error(monkeypatch):
    monkeypatch.setattr(cpu_bits, 'best_isa', lambda: 'portable')
    assert cpu_bits.resolve_isa() == 'portable'
    with pytest.raises(RuntimeError, match="isa='avx2' is not supported"):
        cpu_bits.resolve_isa('avx2')
    monkeypatch.setenv(cpu_bits.ENV_ISA, 'avx512')
    with pytest.raises(RuntimeError, match='not supported'):
        cpu_bits.resolve_isa()
    monkeypatch.setenv(cpu_bits.ENV_ISA, 'sse')
    with pytest.raises(ValueError, match='must be one of'):
        cpu_bits.resolve_isa()


def test_without_a_compiler_torch_runs_after_one_warning(
        monkeypatch, tmp_path, caplog):
    monkeypatch.setenv('CC', 'no-such-compiler')
    monkeypatch.setenv('MMDIDB_CPU_KERNEL_DIR', str(tmp_path))
    monkeypatch.setattr(cpu_bits, '_state', {})
    assert not cpu_bits.available()
    assert any('unavailable' in r.getMessage() for r in caplog.records)
    cpu = torch.device('cpu')
    assert backend.resolve_product_backend(None, cpu) == 'torch'
    assert backend.resolve_pack_backend(None, cpu) == 'torch'
    with pytest.raises(RuntimeError, match='native CPU kernels are '
                       'unavailable'):
        backend.resolve_product_backend('cpu', cpu)
    x = random_values((3, 50), 0)
    assert torch.equal(bmm_pm1(pack_signs(x), pack_signs(x), 50),
                       bmm_pm1_torch(pack_signs(x), pack_signs(x), 50))


def test_env_switch_turns_the_c_path_off(monkeypatch):
    monkeypatch.setenv(native.ENV_SWITCH, '0')
    monkeypatch.setattr(cpu_bits, '_state', {})
    assert not cpu_bits.available()
    assert backend.resolve_product_backend(None, torch.device('cpu')) == \
        'torch'


def test_best_isa_matches_the_cpu_flags():
    flags = set()
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('flags'):
                flags = set(line.split(':', 1)[1].split())
                break
    assert flags, 'no flags line in /proc/cpuinfo'
    if {'avx512f', 'avx512vl', 'avx512bw', 'avx512_vpopcntdq'} <= flags:
        expected = 'avx512'
    elif 'avx2' in flags:
        expected = 'avx2'
    else:
        expected = 'portable'
    assert cpu_bits.best_isa() == expected


def test_library_loads_with_ctypes_signatures():
    lib = cpu_bits._load()
    assert isinstance(lib, ctypes.CDLL)
    assert lib.mmdidb_bgemm.restype is ctypes.c_int


@pytest.mark.parametrize('k', [1, 64, 70, 1536])
def test_sign_linear_is_the_two_step_formula(k, monkeypatch):
    x = random_values((2, 5, k), k)
    shift, w = random_values((k, ), k + 1), random_values((33, k), k + 2)
    scale, bias = torch.rand(33) + 0.01, torch.randn(33)
    packed = pack_signs(w)
    bits = pack_signs(x.reshape(-1, k) + shift, backend='torch')
    expected = (bmm_pm1_torch(bits, packed, k).float() * scale
                + bias).reshape(2, 5, 33)
    calls = []
    real = cpu_bits.sign_linear
    monkeypatch.setattr(cpu_bits, 'sign_linear',
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    assert torch.equal(sign_linear(x, shift, packed, scale, bias), expected)
    assert calls == [1]  # one C call for the whole layer
    assert torch.equal(
        sign_linear(x, shift, packed, scale, bias, backend='torch'),
        expected)
    unbiased = bmm_pm1_torch(bits, packed, k).float() * scale
    for isa in PATHS:
        got = real(x.reshape(-1, k), shift, packed, scale, None, isa=isa,
                   threads=2)
        assert torch.equal(got, unbiased), isa


def test_sign_linear_refuses_bad_arguments():
    x, shift = torch.randn(3, 70), torch.randn(70)
    packed, scale = pack_signs(torch.randn(8, 70)), torch.rand(8)
    with pytest.raises(ValueError, match='needs ceil'):
        sign_linear(torch.randn(3, 100), torch.randn(100), packed, scale)
    with pytest.raises(ValueError, match=r'shift must have shape \(70,\)'):
        sign_linear(x, torch.randn(69), packed, scale)
    with pytest.raises(ValueError, match=r'scale must have shape \(8,\)'):
        sign_linear(x, shift, packed, torch.rand(7))
    with pytest.raises(TypeError, match='float tensor'):
        sign_linear(x.int(), shift, packed, scale)
    with pytest.raises(TypeError, match='int32'):
        sign_linear(x, shift, packed.long(), scale)


@pytest.mark.parametrize('bands', [1, 2])
@pytest.mark.parametrize('dims', [8, 64, 70])
def test_band_similarity_is_torchs_formula(bands, dims):
    gen = torch.Generator().manual_seed(dims)
    q = random_values((bands, 2, 3, 13, dims), dims)
    k = random_values((bands, 2, 3, 11, dims), dims + 1)
    a = torch.rand((), generator=gen)
    weights = torch.stack([a, 1 - a]) if bands == 2 else None
    sims = bmm_pm1_torch(pack_signs(q), pack_signs(k), dims).float()
    expected = sims[0] if bands == 1 else a * sims[0] + (1 - a) * sims[1]
    expected = expected * dims**-0.5
    pair = None if weights is None else tuple(weights.tolist())
    for isa in PATHS:
        for threads in (1, 2):
            got = cpu_bits.bgemm_bands(pack_signs(q), pack_signs(k), dims,
                                       torch.Size((2, 3)), pair,
                                       dims**-0.5, isa=isa, threads=threads)
            assert torch.equal(got, expected), (isa, threads)
    assert torch.equal(bmm_pm1_bands(pack_signs(q), pack_signs(k), dims,
                                     weights, dims**-0.5), expected)
    assert torch.equal(bmm_pm1_bands(pack_signs(q), pack_signs(k), dims,
                                     weights, dims**-0.5, backend='torch'),
                       expected)


def test_band_similarity_refuses_bad_arguments():
    q = pack_signs(torch.randn(2, 5, 64))
    with pytest.raises(ValueError, match='weights are needed for two'):
        bmm_pm1_bands(q, q, 64)
    with pytest.raises(ValueError, match='only then'):
        bmm_pm1_bands(q[:1], q[:1], 64, torch.rand(2))
    with pytest.raises(ValueError, match='1 or 2 bands'):
        bmm_pm1_bands(q[:1].expand(3, 5, 2).contiguous(),
                      q[:1].expand(3, 5, 2).contiguous(), 64)
    with pytest.raises(ValueError, match=r'weights must have shape \(2,\)'):
        bmm_pm1_bands(q, q, 64, torch.rand(3))
