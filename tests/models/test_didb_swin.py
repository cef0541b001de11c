import copy

import pytest
import torch
from mmpretrain.models import SwinTransformer
from mmpretrain.registry import MODELS

from mmdidb.models import (
    HFSC,
    BinaryLinear,
    DIDBSwin,
    DotProductSimilarity,
    IRPReLU,
    LocalDifference,
)
from mmdidb.models.deploy import switch_to_deploy

from deploy.deploy_helpers import (
    assert_same_binarized,
    randomise,
    record_binarized,
)
from helpers import assert_gradients_reach, projection_loss

SMALL = dict(arch=dict(embed_dims=16, depths=[2, 2, 2],
                       num_heads=[1, 2, 4]),
             img_size=32, patch_size=2, window_size=4, in_channels=3,
             out_indices=(0, 1, 2))


@pytest.mark.parametrize('size', [(32, 32), (40, 56)])
def test_multi_level_output_shapes_at_two_sizes(size):
    outs = DIDBSwin(**SMALL)(torch.randn(2, 3, *size))
    grids = [(-(-size[0] // 2**(i + 1)), -(-size[1] // 2**(i + 1)))
             for i in range(3)]
    assert [tuple(o.shape) for o in outs] == [
        (2, 16 * 2**i, *grid) for i, grid in enumerate(grids)]


def test_swin_tiny_output_and_registries():
    model = MODELS.build(dict(type='DIDBSwin', arch='tiny',
                              out_indices=(0, 3)))
    outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 96, 56, 56),
                                             (1, 768, 7, 7)]
    from mmseg.registry import MODELS as SEG_MODELS
    assert SEG_MODELS.get('DIDBSwin') is DIDBSwin


def test_mmpretrain_swin_tiny_state_dict_loads_every_binary_weight():
    fp_state = SwinTransformer(arch='tiny').state_dict()
    model = DIDBSwin(arch='tiny')
    result = model.load_state_dict(dict(fp_state), strict=False)
    assert result.unexpected_keys == []
    missing = set(result.missing_keys)
    binary_weights = [name + '.weight' for name, m in model.named_modules()
                      if isinstance(m, BinaryLinear)]
    # 12 blocks x (q, k, v, proj, fc1, fc2) + 3 patch mergings
    assert len(binary_weights) == 12 * 6 + 3
    assert not missing & set(binary_weights)
    state = model.state_dict()
    for key in ('stages.2.blocks.5', 'stages.0.blocks.1'):
        q, k, v = fp_state[f'{key}.attn.w_msa.qkv.weight'].chunk(3)
        assert torch.equal(state[f'{key}.attn.w_msa.k.weight'], k)
        assert torch.equal(state[f'{key}.attn.w_msa.v.weight'], v)
        assert torch.equal(state[f'{key}.ffn.fc2.weight'],
                           fp_state[f'{key}.ffn.layers.1.weight'])
        table = f'{key}.attn.w_msa.relative_position_bias_table'
        assert torch.equal(state[table], fp_state[table])
    for key in ('stages.1.downsample.reduction.weight',
                'stages.1.downsample.norm.weight', 'norm3.weight',
                'patch_embed.projection.weight'):
        assert torch.equal(state[key], fp_state[key])
    # only the binary model's own extras stay missing
    assert all(('binarizer' in k or '.norm.' in k or '.act.' in k
                or 'similarity' in k or 'local_difference' in k)
               for k in missing)


def test_old_mmcls_checkpoint_keys_are_renamed(tmp_path):
    fp = SwinTransformer(arch=dict(embed_dims=16, depths=[2, 2],
                                   num_heads=[1, 2]), window_size=4,
                         out_indices=(1, ))
    state = {('norm.' + k[len('norm1.'):] if k.startswith('norm1.') else k): v
             for k, v in fp.state_dict().items()}
    state['stages.0.blocks.1.attn.attn_mask'] = torch.zeros(4, 16, 16)
    ckpt = tmp_path / 'swin_v0.pth'
    torch.save({'state_dict': state}, ckpt)  # no version metadata
    model = DIDBSwin(arch=dict(embed_dims=16, depths=[2, 2],
                               num_heads=[1, 2]), window_size=4,
                     img_size=64, out_indices=(1, ),
                     init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    model.init_weights()
    assert torch.equal(model.norm1.weight, fp.norm1.weight)
    assert torch.equal(model.stages[1].blocks[0].attn.w_msa.proj.weight,
                       fp.stages[1].blocks[0].attn.w_msa.proj.weight)


def test_switches_change_the_module_graph():
    full = DIDBSwin(**SMALL)
    w_msa = full.stages[0].blocks[1].attn.w_msa
    assert full.stages[0].blocks[1].attn.shift_size == 2
    assert full.stages[0].blocks[0].attn.shift_size == 0
    assert isinstance(w_msa.similarity, HFSC)
    assert isinstance(w_msa.local_difference, LocalDifference)
    offsets = [m for m in full.modules()
               if isinstance(m, IRPReLU) and m.token_offset is not None]
    assert offsets and all(m.window_size == 4 and len(m.token_offset) == 16
                           for m in offsets)

    naive = DIDBSwin(**SMALL, diba=False, hfsc=False, irprelu=False)
    w_msa = naive.stages[0].blocks[1].attn.w_msa
    assert isinstance(w_msa.similarity, DotProductSimilarity)
    assert w_msa.local_difference is None and not w_msa.diba
    assert not [m for m in naive.modules()
                if isinstance(m, IRPReLU) and m.token_offset is not None]
    assert DIDBSwin(**SMALL, theta=1).stages[0].blocks[0].attn.w_msa \
        .local_difference is None

    fp = DIDBSwin(**SMALL, binary_weights=False, binary_acts=False)
    assert not [m for m in fp.modules()
                if type(m).__name__ in ('RSign', 'ElasticBinarizer')]
    assert all(not m.binary_weights for m in fp.modules()
               if isinstance(m, BinaryLinear))
    w32a1 = DIDBSwin(**SMALL, binary_weights=False)
    merge = w32a1.stages[0].downsample.reduction
    assert merge.input_binarizer is not None and not merge.binary_weights


@pytest.mark.parametrize('kwargs, field', [
    (dict(arch='huge'), 'arch'),
    (dict(arch=dict(embed_dims=16, depths=[2, 2], num_heads=[1])),
     'one entry per stage'),
    (dict(arch=dict(embed_dims=16, depths=[2, 2], num_heads=[3, 2])),
     'num_heads'),
    (dict(window_size=1), 'window_size'),
    (dict(img_size=8), 'pad_small_map'),
    (dict(img_size=36, pad_to_window=False), 'pad_to_window'),
    (dict(out_indices=(3, )), 'out_indices'),
    (dict(theta=2), 'theta'),
    (dict(hfsc_alpha=2.0), 'hfsc_alpha'),
])
def test_bad_config_fails_at_build_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DIDBSwin(**{**SMALL, **kwargs})


def test_bad_input_size_fails_naming_the_field():
    model = DIDBSwin(**SMALL, pad_to_window=False)
    with pytest.raises(ValueError, match='pad_to_window'):
        model(torch.randn(1, 3, 40, 40))
    with pytest.raises(ValueError, match='pad_small_map'):
        DIDBSwin(**SMALL)(torch.randn(1, 3, 16, 16))


def test_trains_and_every_binary_weight_gets_a_gradient():
    model = DIDBSwin(**SMALL)
    # every stage output ends in a LayerNorm: weigh each element differently
    projection_loss(model(torch.randn(2, 3, 32, 32))).backward()
    names = [f'{name}.weight' for name, module in model.named_modules()
             if isinstance(module, BinaryLinear)]
    assert len(names) == 3 * 2 * 6 + 2
    assert_gradients_reach(model, names + [
        'stages.0.blocks.1.attn.w_msa.relative_position_bias_table'])


@pytest.mark.parametrize('size', [(32, 32), (48, 40)])
def test_deploy_mode_equals_the_training_graph(size):
    torch.manual_seed(0)
    model = randomise(DIDBSwin(**SMALL)).eval()
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
    packed = [k for k in deployed.state_dict() if k.endswith('_packed')]
    # 3 stages x 2 blocks x (4 attention + 2 FFN linears + D) + 2 mergings
    assert len(packed) == 3 * 2 * 7 + 2
    reloaded = DIDBSwin(**SMALL).eval()
    reloaded.load_state_dict(deployed.state_dict())
    assert reloaded.deploy
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(reloaded(x), outs))
