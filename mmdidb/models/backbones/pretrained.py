"""Pretrained initialisation of the DIDB backbones from any supported format."""
import logging
import re
from typing import List, Optional

from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmengine.runner.checkpoint import CheckpointLoader

from ...utils.checkpoint_sources import check_checkpoint
from .ckpt_convert import FORMAT_NAMES, convert_state_dict

# the binary model's own parameters, which no full-precision checkpoint has:
# binarizers, HFSC's band weight, DIBA's local term, and the norm and
# activation each wrapped binary linear adds
BY_DESIGN = re.compile(
    r'\.(input_binarizer|attn_binarizer|v_binarizer|similarity|'
    r'local_difference|act)\.|\.(q|k|v|proj|fc1|fc2|reduction)\.norm\.')

# buffers the model computes from its arch: a file need not hold them (timm
# >= 0.9 does not save Swin's relative position index)
COMPUTED = re.compile(r'\.relative_position_index$')

# the kind of such a parameter: 'act.gamma', 'norm.weight', ...
KIND = re.compile(r'^.*?\.((input_binarizer|attn_binarizer|v_binarizer|'
                  r'similarity|local_difference|act|norm)\..*)$')


def pretrained_init_cfg(name: str, pretrained: Optional[str],
                        init_cfg) -> Optional[dict]:
    """``init_cfg`` from mmseg's ``pretrained`` argument, as mmseg's backbones.

    mmseg's ``EncoderDecoder`` passes its own ``pretrained`` to the backbone;
    a string becomes ``init_cfg=dict(type='Pretrained', checkpoint=...)``.

    Raises:
        ValueError: Both are set.
        TypeError: ``pretrained`` is neither a string nor None.
    """
    if pretrained is None:
        return init_cfg
    if not isinstance(pretrained, str):
        raise TypeError(f'{name}: pretrained must be a checkpoint path or '
                        f'URL (str) or None, got {pretrained!r}')
    if init_cfg:
        raise ValueError(
            f'{name}: init_cfg and pretrained cannot be set at the same '
            'time; keep init_cfg=dict(type="Pretrained", checkpoint=...) '
            'and set model.pretrained=None')
    return dict(type='Pretrained', checkpoint=pretrained)


def _pattern(key: str) -> str:
    """Layer, block and stage numbers as N (not mmcv FFN's 'layers.0.0')."""
    return ' -> '.join(
        re.sub(r'(?<!ffn\.)\b(layers|blocks|stages)\.\d+', r'\1.N', part)
        for part in key.split(' -> '))


def _summary(keys: List[str]) -> str:
    """Keys with layer numbers collapsed: 'layers.N.ln1.weight (x12), ...'."""
    counts = {}
    for key in keys:
        counts[_pattern(key)] = counts.get(_pattern(key), 0) + 1
    return ', '.join(k if n == 1 else f'{k} (x{n})' for k, n in counts.items())


def _unwrap(checkpoint) -> dict:
    """The state dict inside a checkpoint file (mmengine, DeiT, timm)."""
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint, dict) and \
                isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if checkpoint and all(k.startswith('module.') for k in checkpoint):
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return dict(checkpoint)


def _select(state_dict: dict, prefix: Optional[str], name: str,
            path: str) -> dict:
    """The backbone's keys: those under ``prefix`` (or ``backbone.``).

    A file without any key under the prefix is read as a bare backbone
    checkpoint (a DeiT, timm or Swin release under a config written for
    mmpretrain's classifier checkpoints).
    """
    explicit = prefix is not None
    prefix = (prefix or 'backbone').rstrip('.') + '.'
    selected = {k[len(prefix):]: v for k, v in state_dict.items()
                if k.startswith(prefix)}
    if selected:
        return selected
    if explicit:
        print_log(f'{name}: {path} has no {prefix!r} keys, reading it as a '
                  'bare backbone checkpoint', logger='current')
    return state_dict


def load_pretrained(module, cfg: dict, family: str, field: str) -> None:
    """Initialise a backbone from ``cfg['checkpoint']``, in any format.

    The file may be mmpretrain's, mmseg's converted ViT, an official DeiT /
    timm ViT, an official Swin release or a timm (>= 0.9) Swin file (see
    :mod:`.ckpt_convert`). Logs
    which keys were converted, which parameters are the binary model's own
    (missing by design) and which are missing or unused otherwise.

    Args:
        module (nn.Module): The backbone.
        cfg (dict): The Pretrained init config (``checkpoint``, optional
            ``prefix`` and ``map_location``).
        family (str): The backbone family (see :func:`convert_state_dict`).
        field (str): The config key of the checkpoint, for errors.

    Raises:
        CheckpointUnavailableError: The file is missing or the URL cannot be
            fetched; names ``field``.
        ValueError: A tensor's shape does not fit, or no key fits at all.
    """
    name = type(module).__name__
    path = cfg['checkpoint']
    check_checkpoint(path, field)
    checkpoint = CheckpointLoader.load_checkpoint(
        path, map_location=cfg.get('map_location', 'cpu'), logger='current')
    state_dict = _select(_unwrap(checkpoint), cfg.get('prefix'), name, path)
    state_dict, fmt, renamed, dropped = convert_state_dict(state_dict, family)
    own = module.state_dict()
    if not set(state_dict) & set(own) and not any(
            k.endswith('.qkv.weight') for k in state_dict):
        raise ValueError(
            f'{name}: no key of {path} fits the model (read as '
            f'{FORMAT_NAMES[fmt]} format; first keys: '
            f'{", ".join(list(state_dict)[:4])}). Is it a checkpoint of this '
            'kind of backbone?')
    try:
        result = module.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:
        mismatches = [line.strip() for line in str(err).splitlines()
                      if 'size mismatch' in line]
        if not mismatches:
            raise
        raise ValueError(
            f'{name}: {path} ({FORMAT_NAMES[fmt]} format) does not fit the '
            f'model: {" ".join(mismatches)} Check that arch (and '
            'patch_size, window_size) are those of the checkpoint.') from err
    by_design = [k for k in result.missing_keys if BY_DESIGN.search(k)]
    missing = [k for k in result.missing_keys
               if not BY_DESIGN.search(k) and not COMPUTED.search(k)]
    unused = list(result.unexpected_keys)
    lines = [f'{name}: loaded {path} ({FORMAT_NAMES[fmt]} format)']
    if renamed:
        lines.append(f'converted {len(renamed)} keys to mmpretrain names: ' +
                     _summary([f'{a} -> {b}' for a, b in renamed]))
    if dropped:
        lines.append('not part of the backbone, ignored: ' + _summary(dropped))
    if by_design:
        kinds = sorted({KIND.sub(r'\1', k) for k in by_design})
        lines.append(f'{len(by_design)} parameters of the binary model have '
                     'no full-precision counterpart (missing by design, '
                     'initialised as usual), of the kinds: ' +
                     ', '.join(kinds))
    print_log('\n  '.join(lines), logger='current')
    if missing:
        print_log(f'{name}: not in {path}, left at their initialisation: '
                  + _summary(missing), logger='current',
                  level=logging.WARNING)
    if unused:
        print_log(f'{name}: in {path} but not in the model, ignored: '
                  + _summary(unused), logger='current', level=logging.WARNING)
    if hasattr(module, '_params_init_info'):
        update_init_info(module, init_info=f'{name}: loaded from {path}')


class PretrainedMixin:
    """mmseg's ``pretrained`` argument and format-aware Pretrained init.

    The backbone passes its ``__init__`` arguments through
    :func:`pretrained_init_cfg`, sets ``from_pretrained_arg`` (whether the
    checkpoint came from ``pretrained``) and ``ckpt_family``; a Pretrained
    ``init_cfg`` is then loaded by :func:`load_pretrained` after every other
    initialisation (so the checkpoint wins, as in mmengine).
    """

    ckpt_family = 'vit'

    def _pretrained_cfg(self) -> Optional[dict]:
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) \
            else [self.init_cfg]
        found = [c for c in cfgs if isinstance(c, dict) and
                 c.get('type') == 'Pretrained']
        return found[0] if found else None

    def init_extra_weights(self) -> None:
        """Initialisation the backbone adds (before any checkpoint loads)."""

    def init_weights(self):
        pretrained = self._pretrained_cfg()
        if pretrained is None:
            super().init_weights()
            self.init_extra_weights()
            return
        saved = self.init_cfg
        others = [c for c in (saved if isinstance(saved, list) else [saved])
                  if c is not pretrained]
        self.init_cfg = others or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = saved
        self.init_extra_weights()
        # mmseg's EncoderDecoder hands its `pretrained` to the backbone
        field = 'model.pretrained' if getattr(self, 'from_pretrained_arg',
                                              False) \
            else 'model.backbone.init_cfg.checkpoint'
        load_pretrained(self, pretrained, self.ckpt_family, field)
