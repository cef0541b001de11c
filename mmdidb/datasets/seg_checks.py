"""Checks of segmentation samples: image/label pairs, sizes, label values.

Shared by the datasets (a pass over the file list when the dataset is
built) and by :class:`~mmdidb.datasets.transforms.CheckSegSample` (cheap
checks of each loaded sample). Each check returns a problem as a sentence
(or ``None``), so callers decide whether to raise or to skip.
"""
import os
import os.path as osp
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

ON_BAD_SAMPLE = ('raise', 'skip')

#: How many problems an error message lists before it summarises the rest.
MAX_LISTED = 20


class BadSegSampleError(ValueError):
    """A segmentation sample (image/label pair) is unusable."""


def check_on_bad_sample(value: str) -> str:
    """Validate the ``on_bad_sample`` argument."""
    if value not in ON_BAD_SAMPLE:
        raise ValueError(f"on_bad_sample must be 'raise' or 'skip', got "
                         f'{value!r}')
    return value


def label_value_problem(label: np.ndarray,
                        allowed: Iterable[int]) -> Optional[str]:
    """Describe label values outside ``allowed``, or ``None`` if all fit.

    Args:
        label (np.ndarray): A 2-D label map.
        allowed (Iterable[int]): The values that may occur (class indices
            and the ignore index).
    """
    if label.ndim != 2:
        return (f'label map has shape {label.shape}; expected a single-'
                'channel (H, W) map of class indices')
    if label.dtype == np.uint8:
        # a histogram is O(pixels) and cheaper than np.unique's sort
        present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    else:
        present = np.unique(label)
    bad = sorted(set(present.tolist()) - set(int(v) for v in allowed))
    if not bad:
        return None
    shown = ', '.join(str(v) for v in bad[:10])
    more = f' and {len(bad) - 10} more' if len(bad) > 10 else ''
    return (f'label values {shown}{more} are outside the allowed values '
            f'{_ranges(sorted(set(int(v) for v in allowed)))}')


def size_problem(image_shape: Sequence[int],
                 label_shape: Sequence[int]) -> Optional[str]:
    """Describe an image/label size mismatch (both as (H, W)), or ``None``."""
    if tuple(image_shape[:2]) == tuple(label_shape[:2]):
        return None
    return (f'label is {label_shape[0]}x{label_shape[1]} (HxW) but its '
            f'image is {image_shape[0]}x{image_shape[1]}')


def _ranges(values: List[int]) -> str:
    """``[0, 1, 2, 3, 255]`` -> ``'0..3, 255'``."""
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(v) if v == start else f'{start}..{v}')
            start = None
    return ', '.join(parts)


def _header_size(path: str) -> Tuple[int, int]:
    """(H, W) of an image file, from its header only."""
    with Image.open(path) as img:
        return img.size[1], img.size[0]


def pair_problems(data_list: List[dict],
                  ann_dir: Optional[str],
                  seg_map_suffix: str,
                  allowed_values: Optional[Iterable[int]] = None
                  ) -> List[Tuple[Optional[int], str]]:
    """Check every image/label pair of a segmentation data list.

    Finds images without a label file, label files in ``ann_dir`` without
    an image, unreadable files, sizes that differ (from the file headers)
    and, when ``allowed_values`` is given, label values outside it (this
    reads every label map).

    Args:
        data_list (list[dict]): ``img_path`` / ``seg_map_path`` entries.
        ann_dir (str, optional): The label folder, scanned for orphans.
        seg_map_suffix (str): Suffix of the label files in ``ann_dir``.
        allowed_values (Iterable[int], optional): Raw label values allowed.

    Returns:
        list[tuple]: ``(index in data_list or None, problem)`` pairs; the
        problem names the file.
    """
    problems = []
    listed = set()
    for index, info in enumerate(data_list):
        img_path, seg_path = info['img_path'], info.get('seg_map_path')
        if seg_path is None:
            continue
        listed.add(osp.normpath(seg_path))
        if not osp.isfile(img_path):
            problems.append((index, f'{img_path}: image file is missing '
                             f'(its label is {seg_path})'))
            continue
        if not osp.isfile(seg_path):
            problems.append((index, f'{seg_path}: label file is missing '
                             f'(its image {img_path} exists)'))
            continue
        try:
            img_size = _header_size(img_path)
        except (OSError, ValueError) as err:
            problems.append((index, f'{img_path}: cannot read image ({err})'))
            continue
        try:
            if allowed_values is None:
                label_size = _header_size(seg_path)
                value_problem = None
            else:
                with Image.open(seg_path) as label_img:
                    label = np.asarray(label_img)
                label_size = label.shape[:2]
                value_problem = label_value_problem(label, allowed_values)
        except (OSError, ValueError) as err:
            problems.append((index, f'{seg_path}: cannot read label ({err})'))
            continue
        problem = size_problem(img_size, label_size) or value_problem
        if problem:
            problems.append((index, f'{seg_path}: {problem} ({img_path})'))
    if ann_dir and osp.isdir(ann_dir):
        for root, _, files in sorted(os.walk(ann_dir)):
            for name in sorted(files):
                path = osp.normpath(osp.join(root, name))
                if name.endswith(seg_map_suffix) and path not in listed:
                    problems.append((None, f'{path}: label file has no '
                                     'image (image missing or its suffix '
                                     'differs from img_suffix)'))
    return problems


def format_problems(problems: List[Tuple[Optional[int], str]]) -> str:
    """The problems, one a line, at most :data:`MAX_LISTED` of them."""
    lines = [f'  - {p}' for _, p in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(f'  ... and {len(problems) - MAX_LISTED} more')
    return '\n'.join(lines)
