"""Registering the backbones in mmsegmentation's registry as well."""
import importlib.util

from .backbones import DIDBBinaryViT, DIDBSwin, DIDBViT

SEGMENTATION_BACKBONES = (DIDBViT, DIDBSwin, DIDBBinaryViT)


def register_in_mmseg() -> bool:
    """Register our backbones in ``mmseg.registry.MODELS`` if mmseg exists.

    mmseg configs then use ``type='DIDBViT'`` under ``default_scope='mmseg'``
    (``type='mmpretrain.DIDBViT'`` works as well).

    Returns:
        bool: Whether mmsegmentation is installed.
    """
    if importlib.util.find_spec('mmseg') is None:
        return False
    from mmseg.registry import MODELS
    for module in SEGMENTATION_BACKBONES:
        if MODELS.get(module.__name__) is not module:
            MODELS.register_module(module=module, force=True)
    return True
