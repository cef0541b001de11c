"""Full-precision checkpoint formats, converted to mmpretrain's key names.

The DIDB backbones name their parameters as mmpretrain's
``VisionTransformer`` / ``SwinTransformer`` do (the binary layers' own load
hooks then split the fused ``qkv`` and rename mmcv's FFN keys). Users
usually hold other files: the official DeiT / timm ViT releases, mmseg's
converted ViT checkpoints (``tools/model_converters/vit2mmseg.py``), the
official Swin releases and timm's Swin files (timm >= 0.9). One function
per source format maps such a backbone state dict to mmpretrain's names;
:func:`convert_state_dict` detects the format and applies it.

mmseg's converted Swin checkpoints (``swin2mmseg.py``, the
``pretrain/swin/*.pth`` files of mmseg's model zoo) already use
mmpretrain's Swin names and unfold order, so they need no conversion.
"""
import re
from typing import Dict, List, Tuple

#: readable names of the formats, for logs and errors
FORMAT_NAMES = {
    'mmpretrain': "mmpretrain's",
    'timm_vit': 'official DeiT / timm ViT',
    'mmseg_vit': "mmseg's converted ViT (vit2mmseg)",
    'official_swin': 'official Swin',
    'timm_swin': 'timm Swin (timm >= 0.9)',
}

# keys of the classification head and of DeiT's distillation token: not
# part of a backbone
_TIMM_NOT_BACKBONE = re.compile(r'^(head|head_dist|dist_token|fc_norm|'
                                r'pre_logits)(\.|$)')


def convert_timm_vit(state_dict: dict) -> Tuple[dict, List[str]]:
    """Official DeiT / timm ViT keys to mmpretrain's ViT keys.

    ``patch_embed.proj`` -> ``patch_embed.projection``;
    ``blocks.N.norm1/norm2`` -> ``layers.N.ln1/ln2``; ``blocks.N.attn.qkv``
    and ``.proj`` keep their names under ``layers.N``; ``blocks.N.mlp.fc1``
    / ``fc2`` -> ``layers.N.ffn.layers.0.0`` / ``layers.1``; the final
    ``norm`` -> ``ln1``; ``pos_embed`` and ``cls_token`` are unchanged.

    Returns:
        tuple[dict, list[str]]: The converted dict and the keys dropped
        (head, distillation token: not part of the backbone).
    """
    out, dropped = {}, []
    for key, value in state_dict.items():
        if _TIMM_NOT_BACKBONE.match(key):
            dropped.append(key)
            continue
        new = key
        if key.startswith('patch_embed.proj.'):
            new = 'patch_embed.projection.' + key[len('patch_embed.proj.'):]
        elif key.startswith('norm.'):
            new = 'ln1.' + key[len('norm.'):]
        elif key.startswith('blocks.'):
            new = 'layers.' + key[len('blocks.'):]
            new = re.sub(r'\.norm([12])\.', r'.ln\1.', new)
            new = new.replace('.mlp.fc1.', '.ffn.layers.0.0.')
            new = new.replace('.mlp.fc2.', '.ffn.layers.1.')
        out[new] = value
    return out, dropped


def convert_mmseg_vit(state_dict: dict) -> Tuple[dict, List[str]]:
    """mmseg's ViT keys (``nn.MultiheadAttention``) to mmpretrain's.

    ``layers.N.attn.attn.in_proj_weight/bias`` ->
    ``layers.N.attn.qkv.weight/bias`` (the same q, k, v row order) and
    ``layers.N.attn.attn.out_proj`` -> ``layers.N.attn.proj``; the rest
    (``ln1``, ``ln2``, ``ffn.layers.*``, ``patch_embed.projection``, the
    final ``ln1``) already has mmpretrain's names.
    """
    out, dropped = {}, []
    for key, value in state_dict.items():
        if _TIMM_NOT_BACKBONE.match(key):
            dropped.append(key)
            continue
        new = re.sub(r'\.attn\.attn\.in_proj_(weight|bias)$', r'.attn.qkv.\1',
                     key)
        new = new.replace('.attn.attn.out_proj.', '.attn.proj.')
        out[new] = value
    return out, dropped


def _unfold_reduction_order(weight):
    """Official merge order (x0, x1, x2, x3 concatenated) to ``nn.Unfold``'s.

    Swin concatenates the 2x2 neighbours (0,0), (1,0), (0,1), (1,1) block by
    block; ``nn.Unfold`` puts them channel-major in the order (0,0), (0,1),
    (1,0), (1,1).
    """
    out_channels, in_channels = weight.shape
    weight = weight.reshape(out_channels, 4, in_channels // 4)
    return weight[:, [0, 2, 1, 3]].transpose(1, 2).reshape(
        out_channels, in_channels)


def _unfold_norm_order(weight):
    """As :func:`_unfold_reduction_order`, for the merge's LayerNorm."""
    weight = weight.reshape(4, -1)
    return weight[[0, 2, 1, 3]].transpose(0, 1).reshape(-1)


def convert_official_swin(state_dict: dict) -> Tuple[dict, List[str]]:
    """Official Swin keys to mmpretrain's, as mmseg's ``swin_converter``.

    ``layers.i`` -> ``stages.i``; ``attn.*`` -> ``attn.w_msa.*``;
    ``mlp.fc1/fc2`` -> ``ffn.layers.0.0`` / ``ffn.layers.1``; the patch
    merging's reduction and norm are reordered to ``nn.Unfold``'s order;
    ``patch_embed.proj`` -> ``patch_embed.projection``. The final ``norm``
    is left for the backbone (mmpretrain renames it to the last stage's
    norm for such legacy checkpoints) and ``head`` is dropped.
    """
    out, dropped = {}, []
    for key, value in state_dict.items():
        if _TIMM_NOT_BACKBONE.match(key):
            dropped.append(key)
            continue
        new = key
        if key.startswith('layers.'):
            new = 'stages.' + key[len('layers.'):]
            new = new.replace('.attn.', '.attn.w_msa.')
            new = new.replace('.mlp.fc1.', '.ffn.layers.0.0.')
            new = new.replace('.mlp.fc2.', '.ffn.layers.1.')
            if '.downsample.reduction.' in key:
                value = _unfold_reduction_order(value)
            elif '.downsample.norm.' in key:
                value = _unfold_norm_order(value)
        elif key.startswith('patch_embed.proj.'):
            new = 'patch_embed.projection.' + key[len('patch_embed.proj.'):]
        out[new] = value
    return out, dropped


_MERGE_KEY = re.compile(r'^layers\.(\d+)\.downsample\.')


def _merge_stages(keys) -> set:
    """The stage numbers N of the ``layers.N.downsample`` keys."""
    return {int(m.group(1)) for m in map(_MERGE_KEY.match, keys) if m}


def convert_timm_swin(state_dict: dict) -> Tuple[dict, List[str]]:
    """timm's Swin keys (timm >= 0.9) to mmpretrain's.

    timm puts each patch merging at the start of the stage it feeds:
    its ``layers.N.downsample`` (N >= 1) is the official release's
    ``layers.(N-1).downsample``, the merging after stage N-1, with the same
    tensors and the same neighbour order. After that renumbering the keys
    are the official ones (the classifier, ``head.fc``, is dropped), so
    :func:`convert_official_swin` does the rest.
    """
    renumbered = {}
    for key, value in state_dict.items():
        match = _MERGE_KEY.match(key)
        if match:
            key = (f'layers.{int(match.group(1)) - 1}.downsample.'
                   f'{key[match.end():]}')
        renumbered[key] = value
    return convert_official_swin(renumbered)


CONVERTERS = {
    'timm_vit': convert_timm_vit,
    'mmseg_vit': convert_mmseg_vit,
    'official_swin': convert_official_swin,
    'timm_swin': convert_timm_swin,
}

#: the formats each backbone family reads, besides mmpretrain's
FAMILY_FORMATS = {
    'vit': ('timm_vit', 'mmseg_vit'),
    'swin': ('official_swin', 'timm_swin'),
    'pyramid': (),
}


def detect_format(keys, family: str) -> str:
    """The format of a backbone state dict's ``keys`` for a family.

    Args:
        keys (Iterable[str]): Keys, without any model prefix.
        family (str): 'vit', 'swin' or 'pyramid'.

    Returns:
        str: A key of :data:`FORMAT_NAMES`.
    """
    keys = list(keys)
    if family == 'vit':
        if any(k.startswith('blocks.') or k.startswith('patch_embed.proj.')
               for k in keys):
            return 'timm_vit'
        if any('.attn.attn.in_proj_' in k or '.attn.attn.out_proj.' in k
               for k in keys):
            return 'mmseg_vit'
    elif family == 'swin':
        if any(re.match(r'layers\.\d+\.blocks\.', k) or
               k.startswith('patch_embed.proj.') for k in keys):
            # the official layout merges after stages 0..S-2, timm's before
            # stages 1..S-1: stage 0 never has a merging in timm's
            merges = _merge_stages(keys)
            return 'timm_swin' if merges and 0 not in merges \
                else 'official_swin'
    return 'mmpretrain'


def convert_state_dict(state_dict: Dict[str, object], family: str
                       ) -> Tuple[dict, str, List[Tuple[str, str]],
                                  List[str]]:
    """Detect the format of a backbone state dict and convert it.

    Args:
        state_dict (dict): Backbone keys (no model prefix).
        family (str): 'vit' (DIDBViT), 'swin' (DIDBSwin) or 'pyramid'
            (DIDBBinaryViT, mmpretrain's format only).

    Returns:
        tuple: The converted dict, the format (a key of
        :data:`FORMAT_NAMES`), the ``(old, new)`` key pairs that were
        renamed and the keys dropped as not part of the backbone.
    """
    if family not in FAMILY_FORMATS:
        raise ValueError(f'unknown backbone family {family!r}; accepted: '
                         f'{", ".join(FAMILY_FORMATS)}')
    fmt = detect_format(state_dict, family)
    if fmt == 'mmpretrain':
        return dict(state_dict), fmt, [], []
    # convert key by key to know which keys were renamed
    out, dropped = CONVERTERS[fmt](state_dict)
    old_keys = [k for k in state_dict if k not in dropped]
    renamed = [(old, new) for old, new in zip(old_keys, out) if old != new]
    return out, fmt, renamed, dropped
