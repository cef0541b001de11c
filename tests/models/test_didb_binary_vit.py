import copy

import pytest
import torch
from mmpretrain.registry import MODELS

from mmdidb.models import (
    SRDIBA,
    BinaryLinear,
    ChannelAffine,
    DIDBBinaryViT,
    DotProductSimilarity,
    IRPReLU,
    PoolingBranches,
)
from mmdidb.models.deploy import switch_to_deploy

from deploy.deploy_helpers import (
    assert_same_binarized,
    randomise,
    record_binarized,
)
from helpers import assert_gradients_reach, projection_loss

SMALL = dict(arch=dict(embed_dims=[16, 32, 64], depths=[1, 2, 1],
                       num_heads=[1, 2, 4], ffn_ratios=[4, 4, 2],
                       sr_ratios=[2, 1, 1]),
             img_size=32, patch_size=2, in_channels=3)
#: the FP teacher of the configs (configs/_base_/models/binaryvit-small-fp.py)
FP_SWITCHES = dict(diba=False, hfsc=False, irprelu=False,
                   binary_weights=False, binary_acts=False,
                   act_cfg=dict(type='GELU'))


@pytest.mark.parametrize('size', [(32, 32), (40, 24)])
def test_output_shapes_at_two_sizes(size):
    model = DIDBBinaryViT(**SMALL, out_indices=(0, 1, 2), out_type='featmap')
    outs = model(torch.randn(2, 3, *size))
    grids = [(-(-size[0] // 2**(i + 1)), -(-size[1] // 2**(i + 1)))
             for i in range(3)]
    assert [tuple(o.shape) for o in outs] == [
        (2, 16 * 2**i, *grid) for i, grid in enumerate(grids)]
    pooled = DIDBBinaryViT(**SMALL, out_indices=(-1, ))(
        torch.randn(2, 3, *size))
    assert len(pooled) == 1 and pooled[0].shape == (2, 64)


def test_binaryvit_small_and_registries():
    model = MODELS.build(dict(type='DIDBBinaryViT', arch='small'))
    assert model.depths == [3, 4, 8, 4]
    assert model.stages[0].blocks[0].attn.sr_ratio == 8
    assert model.stages[0].blocks[0].attn.k.act.token_offset.shape == (49, 1)
    assert model(torch.randn(1, 3, 224, 224))[0].shape == (1, 512)
    from mmseg.registry import MODELS as SEG_MODELS
    assert SEG_MODELS.get('DIDBBinaryViT') is DIDBBinaryViT


def test_fp_checkpoint_loads_every_binary_weight():
    fp = DIDBBinaryViT(arch='small', **FP_SWITCHES)
    fp_state = fp.state_dict()
    model = DIDBBinaryViT(arch='small')
    result = model.load_state_dict(dict(fp_state), strict=False)
    assert result.unexpected_keys == []
    binary_weights = [name + '.weight' for name, m in model.named_modules()
                      if isinstance(m, BinaryLinear)]
    # 19 blocks x (q, k, v, proj, fc1, fc2), 7 reductions, 3 mergings
    assert len(binary_weights) == 19 * 6 + 7 + 3
    assert not set(result.missing_keys) & set(binary_weights)
    state = model.state_dict()
    for key in binary_weights + ['pos_embed.2', 'norm3.weight',
                                 'stages.1.blocks.0.pool.scale']:
        assert torch.equal(state[key], fp_state[key]), key
    assert all(('binarizer' in k or 'similarity' in k or 'local_difference'
                in k or 'token_offset' in k or k.endswith(('.act.gamma',
                                                           '.act.zeta',
                                                           '.act.slope')))
               for k in result.missing_keys)


def test_position_embeddings_resize_on_load():
    src = DIDBBinaryViT(**SMALL)
    dst = DIDBBinaryViT(**{**SMALL, 'img_size': 48})
    dst.load_state_dict(src.state_dict())
    assert dst.pos_embed[0].shape == (1, 24 * 24, 16)
    assert torch.equal(dst.stages[1].blocks[0].attn.q.weight,
                       src.stages[1].blocks[0].attn.q.weight)


def test_switches_change_the_module_graph():
    full = DIDBBinaryViT(**SMALL)
    block = full.stages[0].blocks[0]
    assert isinstance(block.attn, SRDIBA) and block.attn.reduction is not None
    assert full.stages[1].blocks[0].attn.reduction is None
    assert isinstance(block.pool, PoolingBranches)
    assert block.pool.kernel_sizes == (3, 5)
    assert isinstance(block.ls1, ChannelAffine)
    assert block.attn.local_difference is not None
    # offsets on the query grid (16x16) and the pooled key grid (8x8)
    assert block.attn.q.act.token_grid == (16, 16)
    assert block.attn.v.act.token_grid == (8, 8)
    assert block.attn.attn_binarizer.alpha[0].item() == pytest.approx(2 / 64)

    plain = DIDBBinaryViT(**SMALL, pool_kernels=(), layer_scale=None,
                          diba=False, hfsc=False, irprelu=False)
    block = plain.stages[0].blocks[0]
    assert block.pool is None and isinstance(block.ls1, torch.nn.Identity)
    assert isinstance(block.attn.similarity, DotProductSimilarity)
    assert block.attn.local_difference is None
    assert not [m for m in plain.modules()
                if isinstance(m, IRPReLU) and m.token_offset is not None]
    fp = DIDBBinaryViT(**SMALL, **FP_SWITCHES)
    assert isinstance(fp.stages[0].blocks[0].ffn.fc1.act, torch.nn.GELU)
    assert not [m for m in fp.modules()
                if type(m).__name__ in ('RSign', 'ElasticBinarizer')]


def test_pooling_branches_average_rows_and_columns():
    branches = PoolingBranches(2, (3, ))
    branches.scale.data = torch.tensor([[1., 1.], [0., 0.]])  # rows only
    grid = torch.arange(12.).view(1, 3, 4)
    x = grid.flatten(1).unsqueeze(-1).expand(1, 12, 2)
    out = branches(x, (3, 4))[0, :, 0].view(3, 4)
    # 1x3 average along each row, border averages the real tokens only
    assert out[1, 0] == (4 + 5) / 2 and out[1, 1] == (4 + 5 + 6) / 3
    assert out[2, 3] == (10 + 11) / 2


def test_spatial_reduction_self_term_uses_the_pooled_cell():
    torch.manual_seed(0)
    attn_layer = SRDIBA(8, 2, (4, 4), sr_ratio=2, theta=1)
    attn = torch.rand(3, 2, 16, 4)
    v = torch.randn(3, 4, 8)
    out = attn_layer.aggregate(attn, v, (4, 4), v_hw_shape=(2, 2))
    up = v.view(3, 2, 2, 8).repeat_interleave(2, 1).repeat_interleave(2, 2)
    up = up.reshape(3, 16, 2, 4).transpose(1, 2)
    v_heads = v.view(3, 4, 2, 4).transpose(1, 2)
    expected = attn @ v_heads + (1 - attn.sum(-1, keepdim=True)) * up
    torch.testing.assert_close(out, expected.transpose(1, 2).reshape(3, 16, 8))


@pytest.mark.parametrize('kwargs, field', [
    (dict(arch='large'), 'arch'),
    (dict(arch=dict(embed_dims=[16, 32], depths=[1, 1], num_heads=[1, 2],
                    ffn_ratios=[4], sr_ratios=[1, 1])), 'one entry per stage'),
    (dict(arch=dict(embed_dims=[16, 24], depths=[1, 1], num_heads=[1, 2],
                    ffn_ratios=[4, 4], sr_ratios=[1, 1])), 'multiple'),
    (dict(arch=dict(embed_dims=[16, 32], depths=[1, 1], num_heads=[3, 2],
                    ffn_ratios=[4, 4], sr_ratios=[1, 1])), 'num_heads'),
    (dict(arch=dict(embed_dims=[16, 32], depths=[1, 1], num_heads=[1, 2],
                    ffn_ratios=[4, 4], sr_ratios=[0, 1])), 'sr_ratio'),
    (dict(out_type='cls_token'), 'out_type'),
    (dict(out_indices=(5, )), 'out_indices'),
    (dict(pool_kernels=(2, )), 'kernel sizes'),
    (dict(theta=4), 'theta'),
])
def test_bad_config_fails_at_build_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DIDBBinaryViT(**{**SMALL, **kwargs})


def test_trains_and_every_binary_weight_gets_a_gradient():
    model = DIDBBinaryViT(**SMALL)
    # the pooled output follows a LayerNorm: weigh each element differently
    projection_loss(model(torch.randn(2, 3, 32, 32))).backward()
    names = [f'{name}.weight' for name, module in model.named_modules()
             if isinstance(module, BinaryLinear)]
    assert_gradients_reach(model, names)


@pytest.mark.parametrize('size', [(32, 32), (40, 24)])
def test_deploy_mode_equals_the_training_graph(size):
    torch.manual_seed(0)
    model = randomise(DIDBBinaryViT(**SMALL, out_indices=(0, 1, 2),
                                    out_type='featmap')).eval()
    x = torch.randn(2, 3, *size)
    deployed = copy.deepcopy(model)
    # fused=False: every binarizer still runs, so the hooks can compare
    assert switch_to_deploy(deployed, fused=False)
    with torch.no_grad(), record_binarized(model) as train_bits:
        expected = model(x)
    with torch.no_grad(), record_binarized(deployed) as deploy_bits:
        outs = deployed(x)
    assert_same_binarized(train_bits, deploy_bits)
    fused = copy.deepcopy(model)
    switch_to_deploy(fused)  # the default, fused kernels: the same bits
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(fused(x), outs))
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
