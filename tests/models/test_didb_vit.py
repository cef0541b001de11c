import pytest
import torch
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

from mmdidb.models import (
    HFSC,
    DIDBViT,
    DotProductSimilarity,
    IRPReLU,
    LocalDifference,
)

SMALL = dict(arch='mini', img_size=32, patch_size=8, in_channels=3)
BINARY_LAYER_WEIGHTS = ('attn.q.weight', 'attn.k.weight', 'attn.v.weight',
                        'attn.proj.weight', 'ffn.fc1.weight', 'ffn.fc2.weight')


@pytest.mark.parametrize('size', [(32, 32), (48, 64)])
def test_output_shapes_at_two_sizes(size):
    model = DIDBViT(**SMALL, out_indices=(1, 3), out_type='featmap')
    outs = model(torch.randn(2, 3, *size))
    grid = (size[0] // 8, size[1] // 8)
    assert [tuple(o.shape) for o in outs] == [(2, 64, *grid)] * 2
    cls = DIDBViT(**SMALL)(torch.randn(2, 3, *size))
    assert len(cls) == 1 and cls[0].shape == (2, 64)
    raw = DIDBViT(**SMALL, out_type='raw')(torch.randn(1, 3, *size))
    assert raw[0].shape == (1, 1 + grid[0] * grid[1], 64)


def test_non_square_configured_size_runs_at_other_sizes():
    model = DIDBViT(arch='mini', img_size=(24, 40), patch_size=8,
                    out_type='featmap')
    assert model.layers[0].attn.q.act.token_grid == (3, 5)
    assert model(torch.randn(1, 3, 24, 40))[0].shape == (1, 64, 3, 5)
    assert model(torch.randn(1, 3, 40, 24))[0].shape == (1, 64, 5, 3)


def test_builds_from_the_mmpretrain_registry_and_trains():
    model = MODELS.build(dict(type='DIDBViT', **SMALL))
    out = model(torch.randn(2, 3, 32, 32))[0]
    # a fixed projection: the plain sum of a LayerNorm output has no gradient
    (out * torch.randn(out.shape)).sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads['layers.0.attn.q.weight'].abs().sum() > 0
    assert grads['patch_embed.projection.weight'].abs().sum() > 0


def test_registered_in_mmseg_too():
    from mmseg.registry import MODELS as SEG_MODELS
    assert SEG_MODELS.get('DIDBViT') is DIDBViT
    assert SEG_MODELS.get('mmpretrain.DIDBViT') is DIDBViT


def _deit_small_state():
    return VisionTransformer(arch='deit-small', img_size=224).state_dict()


def test_mmpretrain_deit_small_state_dict_loads_every_binary_weight():
    fp_state = _deit_small_state()
    model = DIDBViT(arch='deit-small', img_size=224)
    result = model.load_state_dict(dict(fp_state), strict=False)
    assert result.unexpected_keys == []
    missing = set(result.missing_keys)
    assert not [k for k in missing if k.endswith(BINARY_LAYER_WEIGHTS)]
    assert not [k for k in missing if k.endswith(('ln1.weight', 'pos_embed',
                                                  'patch_embed.projection.'
                                                  'weight'))]
    state = model.state_dict()
    for i in (0, 11):
        q, k, v = fp_state[f'layers.{i}.attn.qkv.weight'].chunk(3)
        assert torch.equal(state[f'layers.{i}.attn.q.weight'], q)
        assert torch.equal(state[f'layers.{i}.attn.v.weight'], v)
        assert torch.equal(state[f'layers.{i}.ffn.fc1.weight'],
                           fp_state[f'layers.{i}.ffn.layers.0.0.weight'])
        assert torch.equal(state[f'layers.{i}.ffn.fc2.bias'],
                           fp_state[f'layers.{i}.ffn.layers.1.bias'])
    # what stays missing are the binary model's own extras
    assert all(('binarizer' in k or '.norm.' in k or '.act.' in k
                or 'similarity' in k or 'local_difference' in k)
               for k in missing)


def test_pretrained_init_cfg_with_resized_position_embedding(tmp_path):
    fp = VisionTransformer(arch='deit-tiny', img_size=224)
    ckpt = tmp_path / 'deit-tiny.pth'
    torch.save({'state_dict': fp.state_dict()}, ckpt)
    model = DIDBViT(arch='deit-tiny', img_size=128,
                    init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    model.init_weights()
    assert model.pos_embed.shape == (1, 1 + 64, 192)
    assert torch.equal(model.cls_token, fp.cls_token)
    assert torch.equal(model.layers[3].attn.proj.weight,
                       fp.layers[3].attn.proj.weight)


def test_switches_change_the_module_graph():
    full = DIDBViT(**SMALL)
    attn = full.layers[0].attn
    assert isinstance(attn.similarity, HFSC)
    assert isinstance(attn.local_difference, LocalDifference)
    assert attn.q.act.token_offset is not None
    assert attn.attn_binarizer is not None and attn.q.input_binarizer

    naive = DIDBViT(**SMALL, diba=False, hfsc=False, irprelu=False)
    attn = naive.layers[0].attn
    assert isinstance(attn.similarity, DotProductSimilarity)
    assert attn.local_difference is None and not attn.diba
    assert isinstance(attn.q.act, IRPReLU) and attn.q.act.token_offset is None

    assert DIDBViT(**SMALL, theta=1).layers[0].attn.local_difference is None
    fp = DIDBViT(**SMALL, binary_weights=False, binary_acts=False)
    attn = fp.layers[0].attn
    assert attn.q.input_binarizer is None and attn.attn_binarizer is None
    assert not attn.q.binary_weights
    assert torch.equal(attn.q.binary_weight(), attn.q.weight)
    gelu = DIDBViT(**SMALL, act_cfg=dict(type='GELU'))
    assert isinstance(gelu.layers[0].ffn.fc1.act, torch.nn.GELU)


def test_binary_weights_flag_alone_gives_w1a32():
    model = DIDBViT(**SMALL, binary_acts=False)
    layer = model.layers[0].ffn.fc1
    assert layer.input_binarizer is None
    weight = layer.binary_weight().detach()
    assert all(row.abs().unique().numel() == 1 for row in weight)


@pytest.mark.parametrize('kwargs, field', [
    (dict(arch='deit-huge'), 'arch'),
    (dict(arch=dict(embed_dims=8)), 'arch'),
    (dict(img_size=30, patch_size=8), 'img_size'),
    (dict(theta=2), 'theta'),
    (dict(theta=0), 'theta'),
    (dict(hfsc_alpha=1.2), 'hfsc_alpha'),
    (dict(hfsc_alpha=-0.5), 'hfsc_alpha'),
    (dict(out_type='tokens'), 'out_type'),
    (dict(out_indices=(7, )), 'out_indices'),
])
def test_bad_config_fails_at_build_naming_the_field(kwargs, field):
    args = {**SMALL, **kwargs}
    with pytest.raises(ValueError, match=field):
        DIDBViT(**args)


def test_unknown_arch_lists_accepted_values():
    with pytest.raises(ValueError, match='deit-tiny, deit-small'):
        DIDBViT(arch='vit-giant')


def test_input_not_divisible_by_patch_size_is_refused():
    with pytest.raises(ValueError, match='patch_size=8'):
        DIDBViT(**SMALL)(torch.randn(1, 3, 30, 32))
