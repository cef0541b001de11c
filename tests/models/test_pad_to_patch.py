"""Inputs that are not a multiple of the patch, padded as mmseg's ViT/Swin."""
import pytest
import torch
import torch.nn.functional as F

from mmdidb.models import DIDBBinaryViT, DIDBSwin, DIDBViT

BACKBONES = {
    'vit': lambda **kw: DIDBViT(
        arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                  feedforward_channels=64), img_size=32, patch_size=8,
        out_type='featmap', out_indices=(0, 1), **kw),
    'swin': lambda **kw: DIDBSwin(
        arch=dict(embed_dims=16, depths=[2, 2], num_heads=[1, 2]),
        img_size=32, patch_size=4, window_size=4, out_indices=(0, 1), **kw),
    'binaryvit': lambda **kw: DIDBBinaryViT(
        arch='mini', img_size=32, out_type='featmap', out_indices=(0, 1),
        **kw),
}


@pytest.mark.parametrize('name', list(BACKBONES))
def test_odd_input_equals_the_corner_padded_input(name):
    model = BACKBONES[name]()
    model.eval()
    x = torch.randn(2, 3, 30, 37)
    patch = 8 if name == 'vit' else 4
    padded = F.pad(x, (0, -(-37 // patch) * patch - 37,
                       0, -(-30 // patch) * patch - 30))
    with torch.no_grad():
        outs, ref = model(x), model(padded)
    # the grid of the padded input: position embedding and IRPReLU's token
    # offsets (made for 32x32) follow it; outputs are not cropped (mmseg's
    # ViT and Swin return the padded grid, the decode head resizes)
    assert outs[0].shape[-2:] == (-(-30 // patch), -(-37 // patch))
    for out, expected in zip(outs, ref):
        torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize('name', list(BACKBONES))
def test_pad_to_patch_false_keeps_the_strict_error(name):
    model = BACKBONES[name](pad_to_patch=False)
    with pytest.raises(ValueError, match='not divisible by patch_size'):
        model(torch.randn(1, 3, 30, 37))
    assert model(torch.randn(1, 3, 32, 32))[0].dim() == 4
