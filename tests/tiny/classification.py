"""Tiny runs of the classification configs: small images, generated checkpoints.

- 224-px classification configs run at 64 px (a 4x4 patch grid): a DIDB-ViT
  DeiT-Small step (batch 8) takes ~9 s on one CPU core at 224 px, ~1.5 s
  at 64 px.
- A distilled config's teacher gets a generated (randomly initialised)
  checkpoint; ``load_from`` points at that checkpoint when the config
  starts from the teacher's weights (single-stage, stage 1), else (stage 2)
  at a checkpoint of the config's own freshly built model, standing in for
  the stage-1 result.
"""
import os

import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from mmdidb.engine.hooks.distillation_hook import teacher_model_cfg

#: 224-px crops and their 256-px resize, and what tiny runs use instead.
TINY_SIZES = {224: 64, 256: 73}
_SIZE_KEYS = ('img_size', 'scale', 'crop_size')
#: Window backbones whose last maps (2x2 at 64 px) are smaller than a window.
_WINDOW_BACKBONES = ('DIDBSwin', 'SwinTransformer')


def shrink_images(node):
    """Replace 224 / 256 px sizes in a config (sub)tree, in place.

    Swin-type backbones also get ``pad_small_map=True``: at 64 px their last
    stages are smaller than a 7x7 window.
    """
    if isinstance(node, dict):
        if node.get('type') in _WINDOW_BACKBONES:
            node['pad_small_map'] = True
        for key, value in node.items():
            if key in _SIZE_KEYS and not isinstance(value, bool) and \
                    value in TINY_SIZES:
                node[key] = TINY_SIZES[value]
            else:
                shrink_images(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            shrink_images(item)
    return node


def distillation_hooks(cfg):
    return [h for h in cfg.get('custom_hooks') or []
            if h.get('type') == 'DistillationHook']


#: Generated teacher checkpoints, by teacher config: several configs share
#: a teacher, and a DeiT-Small takes a second to build and save.
_TEACHERS = {}


def _save_random(model_cfg, path):
    # segmentation runners earlier in the process leave 'mmseg' as scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    torch.save({'state_dict': model.state_dict()}, str(path))
    return str(path)


def _teacher_checkpoint(teacher, path):
    key = repr(teacher)
    if key not in _TEACHERS or not os.path.isfile(_TEACHERS[key]):
        _TEACHERS[key] = _save_random(teacher, path)
    return _TEACHERS[key]


def prepare_classification(cfg, tmp_path):
    """Shrink a classification config and give it the checkpoints it needs."""
    if cfg.get('default_scope') != 'mmpretrain':
        return cfg
    shrink_images(cfg.model)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            shrink_images(cfg[key]['dataset'].get('pipeline', []))
    load_from = cfg.get('load_from')
    for i, hook in enumerate(distillation_hooks(cfg)):
        teacher = shrink_images(teacher_model_cfg(hook['teacher']))
        path = _teacher_checkpoint(teacher, tmp_path / f'teacher_{i}.pth')
        if load_from == hook.get('teacher_checkpoint',
                                 cfg.get('teacher_checkpoint')):
            cfg.load_from = path
        hook['teacher'] = teacher
        hook['teacher_checkpoint'] = path
    if cfg.get('load_from') and cfg.load_from == load_from:
        cfg.load_from = _save_random(cfg.model, tmp_path / 'load_from.pth')
    return cfg
