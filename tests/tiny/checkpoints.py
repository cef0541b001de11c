"""Tiny full-precision checkpoints in the formats users hold.

The tensors come from mmpretrain's own ``VisionTransformer`` (so shapes and
the fused ``qkv`` layout are the real ones); the official DeiT / timm file
renames them as timm names its ``VisionTransformer``.
"""
import re

import torch


def randomised(state_dict, seed=1):
    """Distinct random values everywhere (norms are 1/0 when built)."""
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) if v.is_floating_point()
            else v for k, v in state_dict.items()}


def mmpretrain_vit_state_dict(arch, img_size, patch_size):
    """A random mmpretrain ViT backbone state dict (final norm included)."""
    from mmpretrain.models import VisionTransformer
    return randomised(VisionTransformer(
        arch=arch, img_size=img_size, patch_size=patch_size,
        final_norm=True).state_dict())


def timm_from_mmpretrain(sd, num_classes=10):
    """The official DeiT / timm names of a ViT, with a classification head."""
    out = {}
    for key, value in sd.items():
        new = key.replace('patch_embed.projection.', 'patch_embed.proj.')
        new = re.sub(r'^layers\.(\d+)\.ln([12])\.', r'blocks.\1.norm\2.', new)
        new = re.sub(r'^layers\.', 'blocks.', new)
        new = new.replace('.ffn.layers.0.0.', '.mlp.fc1.')
        new = new.replace('.ffn.layers.1.', '.mlp.fc2.')
        new = re.sub(r'^ln1\.', 'norm.', new)
        out[new] = value
    dims = sd['cls_token'].shape[-1]
    out['head.weight'] = torch.randn(num_classes, dims)
    out['head.bias'] = torch.randn(num_classes)
    return out


def save_deit_release(path, arch, img_size, patch_size):
    """Write the official DeiT file layout (``{'model': timm state dict}``).

    Returns:
        dict: The mmpretrain-named tensors it holds.
    """
    sd = mmpretrain_vit_state_dict(arch, img_size, patch_size)
    torch.save({'model': timm_from_mmpretrain(sd)}, path)
    return sd
#: no datasets here (see the package docstring)
MAKERS = {}
