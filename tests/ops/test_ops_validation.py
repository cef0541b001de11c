"""Bad inputs raise clear errors that name the argument."""
import pytest
import torch

from mmdidb.ops import (
    bmm_mask_pm1,
    bmm_pm1,
    pack_mask,
    pack_signs,
    unpack_mask,
    unpack_signs,
)


def _words(*shape):
    return torch.zeros(shape, dtype=torch.int32)


@pytest.mark.parametrize('fn', [bmm_pm1, bmm_mask_pm1])
def test_wrong_dtype(fn):
    with pytest.raises(TypeError, match='int32'):
        fn(_words(3, 2).to(torch.int64), _words(4, 2), 40)
    with pytest.raises(TypeError, match='torch.int32'):
        fn(_words(3, 2), _words(4, 2).float(), 40)


@pytest.mark.parametrize('fn, names', [(bmm_pm1, ('a_packed', 'b_packed')),
                                       (bmm_mask_pm1,
                                        ('mask_packed', 'v_packed'))])
def test_messages_name_the_argument(fn, names):
    with pytest.raises(TypeError, match=names[0]):
        fn(_words(3, 2).float(), _words(4, 2), 40)
    with pytest.raises(TypeError, match=names[1]):
        fn(_words(3, 2), [[1, 2]], 40)
    with pytest.raises(ValueError, match=names[1]):
        fn(_words(3, 2), _words(2, 4)[:, :2], 40)  # not contiguous


def test_word_counts():
    with pytest.raises(ValueError, match='words per row'):
        bmm_pm1(_words(3, 2), _words(4, 3), 40)
    with pytest.raises(ValueError, match=r'k=65 needs ceil\(65/32\)=3'):
        bmm_pm1(_words(3, 2), _words(4, 2), 65)
    with pytest.raises(ValueError, match='k=32'):
        bmm_pm1(_words(3, 2), _words(4, 2), 32)
    with pytest.raises(ValueError, match='k must be >= 0'):
        bmm_pm1(_words(3, 2), _words(4, 2), -1)
    with pytest.raises(TypeError, match='k must be an int'):
        bmm_pm1(_words(3, 2), _words(4, 2), 40.0)
    with pytest.raises(TypeError, match='k must be an int'):
        bmm_pm1(_words(3, 1), _words(4, 1), True)


def test_shapes():
    with pytest.raises(ValueError, match='a_packed must have shape'):
        bmm_pm1(_words(2), _words(4, 1), 20)
    with pytest.raises(ValueError, match='do not broadcast'):
        bmm_pm1(_words(2, 3, 1), _words(3, 3, 1), 20)


def test_not_contiguous():
    a = _words(4, 3).t()
    with pytest.raises(ValueError, match='a_packed must be contiguous'):
        bmm_pm1(a, _words(5, 4), 100)


def test_cpu_cuda_mix_is_refused():
    # A meta tensor stands in for another device: the check must not care
    # which device, only that the two differ.
    with pytest.raises(ValueError, match='same device'):
        bmm_pm1(_words(3, 2), _words(4, 2, ).to('meta'), 40)


def test_cuda_backend_on_cpu_is_refused():
    with pytest.raises(ValueError, match="backend='mma' needs CUDA"):
        bmm_pm1(_words(3, 2), _words(4, 2), 40, backend='mma')
    with pytest.raises(ValueError, match='backend must be one of'):
        bmm_pm1(_words(3, 2), _words(4, 2), 40, backend='fast')
    with pytest.raises(ValueError, match="backend='cuda' needs a CUDA"):
        pack_signs(torch.ones(3), backend='cuda')


def test_packing_arguments():
    with pytest.raises(TypeError, match='x must be a torch.Tensor'):
        pack_signs([1.0, -1.0])
    with pytest.raises(TypeError, match='m must be a torch.Tensor'):
        pack_mask(None)
    with pytest.raises(ValueError, match='0-d'):
        pack_signs(torch.tensor(1.0))
    with pytest.raises(ValueError, match='dim=2 is out of range'):
        pack_signs(torch.ones(2, 3), dim=2)
    with pytest.raises(TypeError, match='complex'):
        pack_signs(torch.ones(2, dtype=torch.complex64))
    packed = pack_signs(torch.ones(2, 40))
    with pytest.raises(ValueError, match='length=70'):
        unpack_signs(packed, 70)
    with pytest.raises(TypeError, match='packed must have dtype'):
        unpack_mask(packed.float(), 40)
    with pytest.raises(TypeError, match='length must be an int'):
        unpack_signs(packed, '40')
