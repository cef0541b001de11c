"""Model dicts of the paper's ImageNet classifiers, for tools run without a config.

``tools/analysis/get_ops.py`` and ``tools/deploy/checkpoint_sizes.py`` take
``--model ARCH`` and build these at 224x224 with 1000 classes:

- 'deit-tiny', 'deit-small': DIDB-ViT (or the naive binary ViT) and
  mmpretrain's full-precision DeiT (``VisionTransformerClsHead``, patch 16);
- 'swin-tiny': DIDBSwin and mmpretrain's ``SwinTransformer`` (global average
  pooling + ``LinearClsHead``);
- 'binaryvit-small': DIDBBinaryViT and the same pyramid in full precision
  (no mmpretrain counterpart).
"""
import copy

#: The paper's ImageNet backbones.
ARCHS = ('deit-tiny', 'deit-small', 'swin-tiny', 'binaryvit-small')
#: 'didb': the DIDB model; 'naive': its DIDB modules off; 'fp': full
#: precision.
VARIANTS = ('didb', 'naive', 'fp')

_EMBED_DIMS = {'deit-tiny': 192, 'deit-small': 384, 'swin-tiny': 768,
               'binaryvit-small': 512}
_FP_PYRAMID = dict(diba=False, hfsc=False, irprelu=False,
                   binary_weights=False, binary_acts=False,
                   act_cfg=dict(type='GELU'))


def classifier_cfg(arch: str,
                   variant: str = 'didb',
                   img_size: int = 224,
                   num_classes: int = 1000) -> dict:
    """An mmpretrain ``ImageClassifier`` config of the given arch and variant.

    Args:
        arch (str): One of :data:`ARCHS`.
        variant (str): 'didb', 'naive' or 'fp'. Defaults to 'didb'.
        img_size (int): Input size. Defaults to 224.
        num_classes (int): Classes of the head. Defaults to 1000.

    Returns:
        dict: A config for ``mmpretrain.registry.MODELS.build``.

    Raises:
        ValueError: Unknown arch or variant.
    """
    if arch not in ARCHS:
        raise ValueError(f'arch must be one of {ARCHS}, got {arch!r}')
    if variant not in VARIANTS:
        raise ValueError(f'variant must be one of {VARIANTS}, got '
                         f'{variant!r}')
    naive = dict(diba=False, hfsc=False, irprelu=False) \
        if variant == 'naive' else {}
    neck = None
    head = 'LinearClsHead'
    if arch == 'swin-tiny':
        backbone = dict(type='SwinTransformer' if variant == 'fp' else
                        'DIDBSwin', arch='tiny', img_size=img_size, **naive)
        neck = dict(type='GlobalAveragePooling')
    elif arch == 'binaryvit-small':
        backbone = dict(type='DIDBBinaryViT', arch='small',
                        img_size=img_size, **naive,
                        **(_FP_PYRAMID if variant == 'fp' else {}))
    else:
        head = 'VisionTransformerClsHead'
        backbone = dict(type='VisionTransformer' if variant == 'fp' else
                        'DIDBViT', arch=arch, img_size=img_size,
                        patch_size=16, **naive)
    return copy.deepcopy(dict(
        type='ImageClassifier',
        backbone=backbone,
        neck=neck,
        head=dict(type=head, num_classes=num_classes,
                  in_channels=_EMBED_DIMS[arch])))
