"""Bit packing: layout, sign(0) = +1, round trips, any length, any axis."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdidb.ops import pack_mask, pack_signs, unpack_mask, unpack_signs

from ops_helpers import pm1, random_mask, random_values

SETTINGS = settings(max_examples=60, deadline=None)
lengths = st.integers(min_value=1, max_value=700)
lead_shapes = st.lists(st.integers(min_value=1, max_value=4), max_size=2)


def _unsigned(words: torch.Tensor) -> torch.Tensor:
    return words.to(torch.int64) & 0xFFFFFFFF


def test_layout_is_lsb_first_and_zero_is_positive():
    x = -torch.ones(70)
    x[0] = 0.0       # sign(0) = +1 -> bit 0 of word 0
    x[31] = 2.0      # bit 31 of word 0: the int32 sign bit
    x[32] = -0.0     # -0 >= 0 as well -> bit 0 of word 1
    x[69] = 5.0      # bit 5 of word 2
    packed = pack_signs(x)
    assert packed.dtype == torch.int32
    assert packed.shape == (3, )
    assert _unsigned(packed).tolist() == [1 | (1 << 31), 1, 1 << 5]


def test_nan_packs_as_minus_one_and_inf_by_sign():
    x = torch.tensor([float('nan'), float('inf'), -float('inf'), 1e-40,
                      -1e-40])
    assert _unsigned(pack_signs(x)).tolist() == [0b01010]
    assert _unsigned(pack_mask(x)).tolist() == [0b11111]


def test_bool_and_integer_inputs():
    b = torch.tensor([True, False, True])
    assert _unsigned(pack_signs(b)).tolist() == [0b101]
    assert _unsigned(pack_mask(b)).tolist() == [0b101]
    i = torch.tensor([-3, 0, 2, -1], dtype=torch.int64)
    assert _unsigned(pack_signs(i)).tolist() == [0b0110]
    assert _unsigned(pack_mask(i)).tolist() == [0b1101]


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16,
                                   torch.float64])
def test_other_float_dtypes_match_float32(dtype):
    x = random_values((5, 77), seed=3)
    assert torch.equal(pack_signs(x.to(dtype)), pack_signs(x))
    assert torch.equal(pack_mask(x.to(dtype)), pack_mask(x))


@SETTINGS
@given(lead=lead_shapes, length=lengths, seed=st.integers(0, 2**31 - 1))
def test_sign_round_trip_and_zero_tail(lead, length, seed):
    x = random_values(tuple(lead) + (length, ), seed)
    packed = pack_signs(x)
    assert packed.shape == tuple(lead) + ((length + 31) // 32, )
    assert torch.equal(unpack_signs(packed, length).double(), pm1(x))
    rest = length % 32
    if rest:
        assert bool((_unsigned(packed[..., -1]) >> rest == 0).all())


@SETTINGS
@given(lead=lead_shapes, length=lengths, seed=st.integers(0, 2**31 - 1))
def test_mask_round_trip(lead, length, seed):
    m = random_mask(tuple(lead) + (length, ), seed)
    packed = pack_mask(m)
    assert torch.equal(unpack_mask(packed, length), m)


@SETTINGS
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3),
       data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_any_axis(shape, data, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = random_values(tuple(shape), seed)
    packed = pack_signs(x, dim=dim)
    assert torch.equal(packed, pack_signs(x.movedim(dim, -1)))
    out = unpack_signs(packed, x.shape[dim], dim=dim, dtype=torch.float64)
    assert out.shape == x.shape
    assert torch.equal(out, pm1(x))


def test_unpack_dtype_and_empty():
    x = random_values((4, 33), seed=1)
    assert unpack_signs(pack_signs(x), 33, dtype=torch.float16).dtype == \
        torch.float16
    empty = pack_signs(torch.zeros(3, 0))
    assert empty.shape == (3, 0)
    assert unpack_signs(empty, 0).shape == (3, 0)


def test_requires_grad_input_is_fine():
    x = torch.randn(3, 40, requires_grad=True)
    assert torch.equal(pack_signs(x), pack_signs(x.detach()))
