"""The torch products chunk their (rows, N, W) intermediate as documented."""
import torch

from mmdidb.ops import bmm_mask_pm1, bmm_pm1, pack_mask, pack_signs, reference

from ops_helpers import exact_mask_product, exact_pm1_product, random_values


def _record_chunks(monkeypatch, limit):
    monkeypatch.setattr(reference, 'CHUNK_ELEMENTS', limit)
    sizes = []
    popcount = reference.popcount64

    def recording(x):
        if x.dim() == 4:  # the (B, rows, N, W) products, not popcount(a)
            sizes.append(x.shape)
        return popcount(x)

    monkeypatch.setattr(reference, 'popcount64', recording)
    return sizes


def test_chunks_stay_below_the_limit(monkeypatch):
    sizes = _record_chunks(monkeypatch, 64)
    k = 70  # 3 words
    x = random_values((2, 9, k), 1)
    w = random_values((2, 5, k), 2)
    assert torch.equal(bmm_pm1(pack_signs(x), pack_signs(w), k,
                               backend='torch'), exact_pm1_product(x, w))
    # one row is 2 * 5 * 3 = 30 elements: two rows per chunk, 5 chunks
    assert [s[-3] for s in sizes] == [2, 2, 2, 2, 1]
    assert all(s.numel() <= 64 for s in sizes)


def test_one_row_per_chunk_when_a_row_is_over_the_limit(monkeypatch):
    sizes = _record_chunks(monkeypatch, 64)
    k = 300  # 10 words: a row of 2 * 11 * 10 = 220 elements
    mask = (torch.rand(2, 4, k) < 0.5).float()
    v = random_values((2, k, 11), 3)
    out = bmm_mask_pm1(pack_mask(mask), pack_signs(v, dim=-2), k,
                       backend='torch')
    assert torch.equal(out, exact_mask_product(mask, v))
    assert [tuple(s) for s in sizes] == [(2, 1, 11, 10)] * 4
