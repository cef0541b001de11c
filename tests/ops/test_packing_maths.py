"""Packing: exact words of known inputs and the dim checks."""
import pytest
import torch

from mmdidb.ops import pack_mask, pack_signs, unpack_mask, unpack_signs


def _unsigned(words):
    return (words.to(torch.int64) & 0xFFFFFFFF).tolist()


def test_every_bit_position_of_a_word():
    for j in range(32):
        x = -torch.ones(32)
        x[j] = 1.0
        assert _unsigned(pack_signs(x)) == [1 << j]
        assert _unsigned(pack_mask((x > 0).float())) == [1 << j]
        assert torch.equal(unpack_signs(pack_signs(x), 32), x)
    assert _unsigned(pack_signs(torch.ones(33))) == [0xFFFFFFFF, 1]
    assert _unsigned(pack_signs(-torch.ones(64))) == [0, 0]


def test_unpack_places_the_axis():
    x = torch.randn(3, 5, 40)
    packed = pack_signs(x, dim=1)            # (3, 40, 1)
    assert packed.shape == (3, 40, 1)
    out = unpack_signs(packed, 5, dim=1)
    assert torch.equal(out, torch.where(x >= 0, 1.0, -1.0))
    m = (torch.rand(4, 6) < 0.5).float()
    assert torch.equal(unpack_mask(pack_mask(m, dim=0), 4, dim=0), m)
    assert torch.equal(unpack_mask(pack_mask(m, dim=-2), 4, dim=-2), m)


@pytest.mark.parametrize('dim', [True, False, 1.0, '0', None])
def test_dim_must_be_an_int(dim):
    with pytest.raises(TypeError, match='dim must be an int'):
        pack_signs(torch.randn(2, 3), dim=dim)
    with pytest.raises(TypeError, match='dim must be an int'):
        unpack_signs(pack_signs(torch.randn(2, 3)), 3, dim=dim)


@pytest.mark.parametrize('dim', [-3, 2, 5])
def test_dim_must_be_in_range(dim):
    with pytest.raises(ValueError, match='out of range'):
        pack_mask(torch.randn(2, 3), dim=dim)
    pack_mask(torch.randn(2, 3), dim=-2)
    pack_mask(torch.randn(2, 3), dim=1)
