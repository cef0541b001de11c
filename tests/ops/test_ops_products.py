"""Packed products equal the float products of the +-1 / {0,1} tensors."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdidb.ops import (
    bmm_mask_pm1,
    bmm_pm1,
    cpu_bits,
    pack_mask,
    pack_signs,
    reference,
)

from ops_helpers import (
    exact_mask_product,
    exact_pm1_product,
    random_mask,
    random_values,
    scribble_padding,
)

SETTINGS = settings(max_examples=60, deadline=None)
lengths = st.integers(min_value=1, max_value=700)
rows = st.integers(min_value=1, max_value=70)
batches = st.lists(st.integers(min_value=1, max_value=3), max_size=2)
seeds = st.integers(0, 2**31 - 1)


@pytest.fixture(scope='module', autouse=True, params=['default', 'torch'])
def product_path(request):
    """Every test twice: on the default path of CPU tensors (the C kernels
    where they build) and on the torch reference path."""
    saved = dict(cpu_bits._state)
    if request.param == 'torch':
        cpu_bits._state['lib'] = None
    yield request.param
    cpu_bits._state.clear()
    cpu_bits._state.update(saved)


@SETTINGS
@given(batch=batches, m=rows, n=rows, k=lengths, seed=seeds)
def test_pm1_product_is_exact(batch, m, n, k, seed):
    x = random_values(tuple(batch) + (m, k), seed)
    w = random_values(tuple(batch) + (n, k), seed + 1)
    out = bmm_pm1(pack_signs(x), pack_signs(w), k)
    assert out.dtype == torch.int32
    assert torch.equal(out, exact_pm1_product(x, w))


@SETTINGS
@given(batch=batches, m=rows, n=rows, k=lengths, seed=seeds)
def test_mask_product_is_exact(batch, m, n, k, seed):
    mask = random_mask(tuple(batch) + (m, k), seed)
    v = random_values(tuple(batch) + (k, n), seed + 1)
    # V is (k, n): pack its columns, i.e. along dim -2 -> (n, W).
    out = bmm_mask_pm1(pack_mask(mask), pack_signs(v, dim=-2), k)
    assert torch.equal(out, exact_mask_product(mask, v))


@settings(max_examples=25, deadline=None)
@given(m=rows, n=rows, k=lengths, seed=seeds)
def test_padding_bits_never_change_a_result(m, n, k, seed):
    x = random_values((2, m, k), seed)
    w = random_values((2, n, k), seed + 1)
    a = scribble_padding(pack_signs(x), k, seed + 2)
    b = scribble_padding(pack_signs(w), k, seed + 3)
    assert torch.equal(bmm_pm1(a, b, k), exact_pm1_product(x, w))
    mask = random_mask((2, m, k), seed + 4)
    am = scribble_padding(pack_mask(mask), k, seed + 5)
    assert torch.equal(bmm_mask_pm1(am, b, k),
                       exact_mask_product(mask, w.transpose(-1, -2)))


def test_batch_dims_broadcast():
    k = 100
    x = random_values((2, 1, 7, k), 0)
    w = random_values((3, 5, k), 1)
    out = bmm_pm1(pack_signs(x), pack_signs(w), k)
    assert out.shape == (2, 3, 7, 5)
    assert torch.equal(out, exact_pm1_product(x, w))
    single = random_values((5, k), 2)  # one matrix against a batch
    assert torch.equal(bmm_pm1(pack_signs(x), pack_signs(single), k),
                       exact_pm1_product(x, single))


def test_chunking_over_rows(monkeypatch):
    monkeypatch.setattr(reference, 'CHUNK_ELEMENTS', 64)
    x = random_values((2, 37, 300), 5)
    w = random_values((2, 11, 300), 6)
    assert torch.equal(bmm_pm1(pack_signs(x), pack_signs(w), 300),
                       exact_pm1_product(x, w))


def test_extreme_values():
    k = 257
    ones = torch.ones(3, k)
    minus = -torch.ones(4, k)
    a, b = pack_signs(ones), pack_signs(minus)
    assert bool((bmm_pm1(a, a, k) == k).all())
    assert bool((bmm_pm1(a, b, k) == -k).all())
    full, empty = pack_mask(ones), pack_mask(torch.zeros(3, k))
    assert bool((bmm_mask_pm1(full, b, k) == -k).all())
    assert bool((bmm_mask_pm1(empty, b, k) == 0).all())


def test_empty_operands():
    a = torch.zeros(0, 2, dtype=torch.int32)
    b = torch.zeros(5, 2, dtype=torch.int32)
    assert bmm_pm1(a, b, 40).shape == (0, 5)
    assert bmm_mask_pm1(b, a, 40).shape == (5, 0)
    z = torch.zeros(3, 0, dtype=torch.int32)
    assert torch.equal(bmm_pm1(z, z, 0), torch.zeros(3, 3, dtype=torch.int32))


def test_attention_shapes():
    # Q.K^T per head (197 tokens, head_dim 64) and mask.V, batched over heads.
    q = random_values((2, 3, 197, 64), 7)
    kt = random_values((2, 3, 197, 64), 8)
    scores = bmm_pm1(pack_signs(q), pack_signs(kt), 64)
    assert torch.equal(scores, exact_pm1_product(q, kt))
    attn = random_mask((2, 3, 197, 197), 9)
    v = random_values((2, 3, 197, 64), 10)
    out = bmm_mask_pm1(pack_mask(attn), pack_signs(v, dim=-2), 197)
    assert torch.equal(out, exact_mask_product(attn, v))
