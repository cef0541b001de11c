"""ImageNet-1k in mmpretrain's standard layout (class folders + meta files).

::

    imagenet/train/<wnid>/<wnid>_<n>.JPEG
    imagenet/val/ILSVRC2012_val_<n>.JPEG
    imagenet/meta/{train,val}.txt     "<relative path> <label>" per line
"""
import os

import numpy as np
from PIL import Image

#: A few real ImageNet-1k wnids with their class indices.
WNIDS = (('n01440764', 0), ('n01443537', 1), ('n02123045', 281),
         ('n09999999', 999))


def write_jpeg(path, rng, size=(40, 32), label=0):
    """A small noisy RGB JPEG whose mean colour depends on ``label``."""
    h, w = size
    img = rng.integers(0, 80, (h, w, 3))
    img[..., label % 3] += 120
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(img.astype(np.uint8)).save(path, quality=90)


def make_imagenet(root, num_train=16, num_val=8, seed=0):
    root = str(root)
    if os.path.isfile(os.path.join(root, 'meta', 'val.txt')):
        return root
    rng = np.random.default_rng(seed)
    lines = {'train': [], 'val': []}
    for i in range(num_train):
        wnid, label = WNIDS[i % len(WNIDS)]
        rel = f'{wnid}/{wnid}_{i}.JPEG'
        write_jpeg(os.path.join(root, 'train', rel), rng, label=label)
        lines['train'].append(f'{rel} {label}')
    for i in range(num_val):
        label = WNIDS[i % len(WNIDS)][1]
        rel = f'ILSVRC2012_val_{i + 1:08d}.JPEG'
        write_jpeg(os.path.join(root, 'val', rel), rng, label=label)
        lines['val'].append(f'{rel} {label}')
    os.makedirs(os.path.join(root, 'meta'), exist_ok=True)
    for split, split_lines in lines.items():
        with open(os.path.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(split_lines) + '\n')
    return root


MAKERS = {
    'ImageNet': lambda tmp: dict(data_root=make_imagenet(tmp / 'imagenet')),
}
