"""Model dicts of the paper's ImageNet classifiers, for tools run without a config.

``tools/analysis/get_ops.py``, ``tools/deploy/checkpoint_sizes.py`` and
``tools/benchmark/inference.py`` take ``--model deit-tiny|deit-small`` and
build these: DIDB-ViT (or the naive binary ViT) and the full-precision
mmpretrain DeiT of the same size, each with a 1000-class
``VisionTransformerClsHead`` at 224x224, patch 16.
"""
import copy

#: Archs with a DeiT counterpart in mmpretrain's ``VisionTransformer``.
ARCHS = ('deit-tiny', 'deit-small')
#: 'didb': DIDB-ViT; 'naive': the naive binary ViT; 'fp': mmpretrain's DeiT.
VARIANTS = ('didb', 'naive', 'fp')

_EMBED_DIMS = {'deit-tiny': 192, 'deit-small': 384}


def classifier_cfg(arch: str,
                   variant: str = 'didb',
                   img_size: int = 224,
                   num_classes: int = 1000) -> dict:
    """An mmpretrain ``ImageClassifier`` config of the given arch and variant.

    Args:
        arch (str): 'deit-tiny' or 'deit-small'.
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
    backbone = dict(arch=arch, img_size=img_size, patch_size=16)
    if variant == 'fp':
        backbone.update(type='VisionTransformer')
    else:
        backbone.update(type='DIDBViT')
        if variant == 'naive':
            backbone.update(diba=False, hfsc=False, irprelu=False)
    return copy.deepcopy(dict(
        type='ImageClassifier',
        backbone=backbone,
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=num_classes,
                  in_channels=_EMBED_DIMS[arch])))
