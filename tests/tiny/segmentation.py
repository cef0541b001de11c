"""Tiny segmentation datasets in their real layouts, and config shrinking.

ADE20K: ``ADEChallengeData2016/{images,annotations}/{training,validation}``
with ``.jpg`` images and ``.png`` labels 0..150 (0 = "other", ignored).
RS-LVF and the nuclei tiles: ``{images,labels}/{train,val}`` with ``.png``
files, road / nucleus masks as 0/1 or 0/255.
"""
import os

import numpy as np
from PIL import Image

#: Crop side the segmentation configs are shrunk to in tiny runs.
TINY_CROP = 64


def _stripes(height, width, period, rng):
    """A label map of vertical stripes, and an image where they show."""
    cols = (np.arange(width) // period) % 2
    label = np.broadcast_to(cols, (height, width)).astype(np.uint8)
    img = rng.integers(0, 60, (height, width, 3)) + 150 * label[..., None]
    return img.astype(np.uint8), label


def make_ade20k(root, num_train=4, num_val=2, size=(80, 96), seed=0):
    """ADE20K's official layout with random 150-class labels (0 = other)."""
    base = os.path.join(root, 'ade', 'ADEChallengeData2016')
    if os.path.isdir(base):
        return base
    rng = np.random.default_rng(seed)
    for split, prefix, count in (('training', 'ADE_train', num_train),
                                 ('validation', 'ADE_val', num_val)):
        img_dir = os.path.join(base, 'images', split)
        ann_dir = os.path.join(base, 'annotations', split)
        os.makedirs(img_dir)
        os.makedirs(ann_dir)
        for i in range(count):
            img, stripes = _stripes(*size, 8, rng)
            # a few classes in blocks, some "other" (0) pixels
            label = (stripes * 7 + rng.integers(1, 144)).astype(np.uint8)
            label[:8] = 0
            name = f'{prefix}_{i + 1:08d}'
            Image.fromarray(img).save(os.path.join(img_dir, name + '.jpg'))
            Image.fromarray(label).save(os.path.join(ann_dir, name + '.png'))
    return base


def make_binary_seg(root, num_train=4, num_val=2, size=(64, 80),
                    foreground=1, img_suffix='.png', seed=0, splits=None):
    """``{images,labels}/{train,val}`` with stripe masks (0 / foreground).

    The image is bright exactly where the mask is foreground, so the
    ground truth is known from the image.
    """
    if os.path.isdir(os.path.join(root, 'images')):
        return root
    rng = np.random.default_rng(seed)
    splits = splits or (('train', num_train), ('val', num_val))
    for split, count in splits:
        os.makedirs(os.path.join(root, 'images', split))
        os.makedirs(os.path.join(root, 'labels', split))
        for i in range(count):
            img, label = _stripes(*size, 8 + 2 * i, rng)
            Image.fromarray(img).save(
                os.path.join(root, 'images', split, f'tile{i}{img_suffix}'))
            Image.fromarray(label * foreground).save(
                os.path.join(root, 'labels', split, f'tile{i}.png'))
    return root


def _scaled(value, factor):
    if isinstance(value, int):
        return max(1, int(value * factor))
    return tuple(max(1, int(v * factor)) for v in value)


def shrunk_fields(cfg, crop=TINY_CROP):
    """``{dotted config key: value}`` that shrink a segmentation config.

    Every crop, resize scale, padding size and sliding window is scaled by
    ``crop / current crop``, so the pipelines keep their shape and the
    backbone sees ``crop``-sized inputs; training batches are cut to 2; a
    Pretrained backbone init from a URL is dropped (no network in tests).
    Sizes already at ``crop`` or below are kept.
    """
    fields = {'train_dataloader.batch_size':
              min(cfg.train_dataloader.batch_size, 2)}
    init = cfg.model.backbone.get('init_cfg')
    if isinstance(init, dict) and '://' in str(init.get('checkpoint', '')):
        fields['model.backbone.init_cfg'] = None
    size = cfg.model.data_preprocessor.get('size')
    if not size or max(size) <= crop:
        return fields
    factor = crop / max(size)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if not cfg.get(key):
            continue
        for i, transform in enumerate(cfg[key].dataset.get('pipeline', [])):
            for field in ('crop_size', 'scale'):
                if transform.get(field) is not None:
                    fields[f'{key}.dataset.pipeline.{i}.{field}'] = _scaled(
                        transform[field], factor)
    fields['model.data_preprocessor.size'] = _scaled(size, factor)
    if cfg.model.test_cfg.get('mode') == 'slide':
        for field in ('crop_size', 'stride'):
            fields[f'model.test_cfg.{field}'] = _scaled(
                cfg.model.test_cfg[field], factor)
    return fields


def shrink_segmentation(cfg, crop=TINY_CROP):
    """Apply :func:`shrunk_fields` to a config in place."""
    cfg.merge_from_dict(shrunk_fields(cfg, crop))
    return cfg


def shrink_options(cfg, crop=TINY_CROP):
    """:func:`shrunk_fields` as ``--cfg-options`` arguments."""
    def text(value):
        if isinstance(value, tuple):
            return '(' + ','.join(str(v) for v in value) + ')'
        return str(value)
    return [f'{k}={text(v)}' for k, v in shrunk_fields(cfg, crop).items()]


MAKERS = {
    'ADE20KDataset': lambda tmp: dict(
        data_root=make_ade20k(str(tmp / 'seg_data'))),
    'RSLVFDataset': lambda tmp: dict(
        data_root=make_binary_seg(str(tmp / 'rs-lvf'), foreground=1)),
    'NucleiDataset': lambda tmp: dict(
        data_root=make_binary_seg(str(tmp / 'nuclei'), foreground=255)),
}
