"""The shared base of the DIDB backbones: switches, token layout, plumbing."""
import pytest
import torch
from torch import nn

from mmdidb.models import DIDBBinaryViT, DIDBSwin, DIDBViT
from mmdidb.models.backbones.base_didb import DIDBBackbone, DIDBStage
from mmdidb.models.backbones.switches import DIDB_SWITCHES
from mmdidb.models.deploy import switch_to_deploy
from mmdidb.models.layers import (
    BinaryFFN,
    BinaryPatchMerging,
    DIDBTransformerEncoderLayer,
    IRPReLU,
)

BACKBONES = {
    'vit': lambda **kw: DIDBViT(arch='mini', img_size=16, patch_size=4, **kw),
    'swin': lambda **kw: DIDBSwin(arch='mini', img_size=16, patch_size=2,
                                  window_size=4, **kw),
    'binaryvit': lambda **kw: DIDBBinaryViT(arch='mini', img_size=16,
                                            patch_size=2, **kw),
}
#: a value other than the default for each switch
NOT_DEFAULT = dict(diba=False, theta=1, hfsc=False, hfsc_alpha=0.5,
                   irprelu=False, binary_weights=False, binary_acts=False,
                   act_cfg=dict(type='GELU'), qkv_bias=False,
                   diba_self_term='off', d_init_scale=0.5,
                   hfsc_alpha_param='sigmoid')


def test_every_switch_has_a_non_default_value_here():
    assert set(NOT_DEFAULT) == set(DIDB_SWITCHES)


@pytest.mark.parametrize('name', list(BACKBONES))
@pytest.mark.parametrize('switch', list(NOT_DEFAULT))
def test_every_backbone_takes_every_switch_as_one_keyword(name, switch):
    model = BACKBONES[name](**{switch: NOT_DEFAULT[switch]})
    if switch in ('act_cfg', 'qkv_bias'):
        assert model.didb_cfgs['attn'][switch] == NOT_DEFAULT[switch]
    else:
        assert model.switches[switch] == NOT_DEFAULT[switch]


@pytest.mark.parametrize('name', list(BACKBONES))
def test_switch_defaults_are_declared_once(name):
    expected = {k: v for k, v in DIDB_SWITCHES.items()
                if k not in ('act_cfg', 'qkv_bias')}
    if name == 'vit':
        expected['last_block_d'] = True
    assert BACKBONES[name]().switches == expected


@pytest.mark.parametrize('name', list(BACKBONES))
def test_unknown_keyword_names_the_backbone_and_the_switches(name):
    with pytest.raises(TypeError,
                       match=r'DIDB\w+: unknown argument.*dibaa.*qkv_bias'):
        BACKBONES[name](dibaa=False)


@pytest.mark.parametrize('name', list(BACKBONES))
def test_bad_switch_value_names_the_field_in_every_backbone(name):
    with pytest.raises(ValueError, match='hfsc_alpha'):
        BACKBONES[name](hfsc_alpha=1.5)


@pytest.mark.parametrize('name', list(BACKBONES))
def test_base_plumbing_is_shared(name):
    model = BACKBONES[name]()
    assert isinstance(model, DIDBBackbone)
    assert model.eval() is model and model.train() is model
    with pytest.raises(ValueError, match='not divisible by patch_size'):
        BACKBONES[name](pad_to_patch=False)(torch.randn(1, 3, 18, 17))
    with pytest.raises(ValueError, match='out_indices'):
        BACKBONES[name](out_indices=(9, ))


@pytest.mark.parametrize('name', list(BACKBONES))
def test_irprelu_offsets_know_their_grid_from_construction(name):
    """Each offset is given its grid (or window) when it is built."""
    model = BACKBONES[name]()
    offsets = [m for m in model.modules()
               if isinstance(m, IRPReLU) and m.token_offset is not None]
    assert offsets
    for act in offsets:
        if name == 'swin':
            assert act.window_size == 4 and len(act.token_offset) == 16
        else:
            grid = act.token_grid
            extra = 1 if name == 'vit' else 0
            assert len(act.token_offset) == grid[0] * grid[1] + extra


def test_layers_pass_the_token_layout_down():
    layer = DIDBTransformerEncoderLayer(8, 2, 16, 1 + 6, token_grid=(2, 3))
    grids = {m.token_grid for m in layer.modules() if isinstance(m, IRPReLU)}
    assert grids == {(2, 3)}
    ffn = BinaryFFN(8, 16, num_tokens=16, num_extra_tokens=0, window_size=4)
    assert {m.window_size for m in ffn.modules()
            if isinstance(m, IRPReLU)} == {4}
    merge = BinaryPatchMerging(8, 16, num_tokens=6, token_grid=(3, 2))
    assert merge.reduction.act.token_grid == (3, 2)
    # an explicit entry of act_cfg wins over the layout
    ffn = BinaryFFN(8, 16, num_tokens=6, num_extra_tokens=0,
                    token_grid=(2, 3),
                    act_cfg=dict(type='IRPReLU', token_grid=(3, 2)))
    assert ffn.fc1.act.token_grid == (3, 2)


class _TinyPlainBackbone(DIDBBackbone):
    """A new DIDB backbone: arch zoo, topology and forward only."""

    arch_zoo = {'tiny': dict(embed_dims=16, depth=2, heads=2)}
    out_type = 'avg_featmap'

    def __init__(self, arch='tiny', img_size=16, patch_size=4, in_channels=3,
                 out_indices=-1, norm_cfg=dict(type='LN'), pad_to_patch=True,
                 pretrained=None, deploy=False, init_cfg=None, **switches):
        super().__init__(patch_size, pad_to_patch, norm_cfg, switches,
                         pretrained, init_cfg)
        arch = self.arch_zoo[arch]
        self.out_indices = self.parse_out_indices(out_indices, 1)
        grid = self.build_patch_embed(in_channels, img_size,
                                      arch['embed_dims'])
        blocks = [DIDBTransformerEncoderLayer(
            arch['embed_dims'], arch['heads'], 2 * arch['embed_dims'],
            grid[0] * grid[1], 0, norm_cfg=norm_cfg,
            attn_cfg=self.didb_cfgs['attn'],
            ffn_cfg=self.didb_cfgs['binary'], token_grid=grid)
            for _ in range(arch['depth'])]
        self.stages = nn.ModuleList([DIDBStage(blocks)])
        self.add_out_norms(norm_cfg, [arch['embed_dims']])
        self._init_deploy(deploy)

    def forward(self, x):
        x, hw_shape = self.embed_patches(x)
        x = self.stages[0](x, hw_shape)
        return (self.format_stage_output(0, x, hw_shape), )


def test_a_new_backbone_needs_its_arch_topology_and_forward_only():
    torch.manual_seed(0)
    model = _TinyPlainBackbone(diba=True, hfsc=True, irprelu=True).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(x)[0]
    assert out.shape == (2, 16)
    naive = _TinyPlainBackbone(diba=False, hfsc=False, irprelu=False)
    assert naive.switches['diba'] is False
    deployed = _TinyPlainBackbone()
    deployed.load_state_dict(model.state_dict())
    assert switch_to_deploy(deployed.eval())
    with torch.no_grad():
        torch.testing.assert_close(deployed(x)[0], out, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match='not divisible by patch_size'):
        _TinyPlainBackbone(pad_to_patch=False)(torch.randn(1, 3, 18, 16))
