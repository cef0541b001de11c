"""classifier_cfg: the paper's four classifiers in each variant."""
import pytest

from mmdidb.models.deploy.presets import ARCHS, VARIANTS, classifier_cfg

DIMS = {'deit-tiny': 192, 'deit-small': 384, 'swin-tiny': 768,
        'binaryvit-small': 512}


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('variant', VARIANTS)
def test_backbone_head_and_switches(arch, variant):
    cfg = classifier_cfg(arch, variant, img_size=64, num_classes=7)
    backbone, head = cfg['backbone'], cfg['head']
    assert cfg['type'] == 'ImageClassifier'
    assert head['num_classes'] == 7 and head['in_channels'] == DIMS[arch]
    assert backbone['img_size'] == 64
    off = dict(diba=False, hfsc=False, irprelu=False)
    switches = {k: backbone[k] for k in off if k in backbone}
    if variant == 'naive':
        assert switches == off
    elif arch != 'binaryvit-small' or variant == 'didb':
        assert switches == {}
    if arch == 'swin-tiny':
        assert backbone['type'] == ('SwinTransformer' if variant == 'fp'
                                    else 'DIDBSwin')
        assert cfg['neck'] == dict(type='GlobalAveragePooling')
        assert head['type'] == 'LinearClsHead'
    elif arch == 'binaryvit-small':
        assert backbone['type'] == 'DIDBBinaryViT'
        assert cfg['neck'] is None and head['type'] == 'LinearClsHead'
        fp = dict(binary_weights=False, binary_acts=False,
                  act_cfg=dict(type='GELU'), **off)
        if variant == 'fp':
            assert {k: backbone[k] for k in fp} == fp
        else:
            assert 'binary_weights' not in backbone
    else:
        assert backbone['type'] == ('VisionTransformer' if variant == 'fp'
                                    else 'DIDBViT')
        assert backbone['patch_size'] == 16 and backbone['arch'] == arch
        assert cfg['neck'] is None
        assert head['type'] == 'VisionTransformerClsHead'


def test_configs_are_fresh_copies():
    a = classifier_cfg('binaryvit-small', 'fp')
    a['backbone']['act_cfg']['type'] = 'ReLU'
    assert classifier_cfg('binaryvit-small', 'fp')['backbone']['act_cfg'] == \
        dict(type='GELU')


def test_unknown_arch_or_variant():
    with pytest.raises(ValueError, match='arch must be one of'):
        classifier_cfg('deit-base')
    with pytest.raises(ValueError, match='variant must be one of'):
        classifier_cfg('deit-tiny', 'int8')
