"""Bit helpers of the torch path: known masks, widths and counts."""
import torch

from mmdidb.ops.bits import num_words, popcount64, tail_mask, to_unsigned64


def test_tail_mask_keeps_the_valid_bits_of_the_last_word():
    assert tail_mask(1) == 0b1
    assert tail_mask(37) == 0b11111  # 5 bits past one full word
    assert tail_mask(32) == tail_mask(64) == 0xFFFFFFFF  # a full last word


def test_words_are_widened_unsigned_and_the_padding_cleared():
    words = torch.tensor([[-1, -1], [-2**31, 5]], dtype=torch.int32)
    wide = to_unsigned64(words, 37)
    assert wide.dtype == torch.int64
    assert wide.tolist() == [[0xFFFFFFFF, 0b11111], [2**31, 5]]
    assert to_unsigned64(words, 64).tolist() == [[0xFFFFFFFF] * 2, [2**31, 5]]
    assert [num_words(n) for n in (0, 1, 32, 33)] == [0, 1, 1, 2]
    assert popcount64(wide).tolist() == [[32, 5], [1, 2]]
