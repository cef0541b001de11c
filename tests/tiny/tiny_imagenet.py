"""Tiny-ImageNet-200 in the layout of the official zip.

::

    tiny-imagenet-200/wnids.txt, words.txt
    tiny-imagenet-200/train/<wnid>/images/<wnid>_<n>.JPEG, <wnid>_boxes.txt
    tiny-imagenet-200/val/images/val_<n>.JPEG, val/val_annotations.txt
    tiny-imagenet-200/test/images/test_<n>.JPEG
"""
import os

import numpy as np

from .imagenet import write_jpeg

#: wnids.txt is not sorted in the official file either.
WNIDS = ('n02124075', 'n01443537', 'n04067472', 'n01629819')


def make_tiny_imagenet(root, num_train=16, num_val=8, seed=0):
    root = str(root)
    if os.path.isfile(os.path.join(root, 'val', 'val_annotations.txt')):
        return root
    rng = np.random.default_rng(seed)
    os.makedirs(root)
    with open(os.path.join(root, 'wnids.txt'), 'w') as f:
        f.write('\n'.join(WNIDS) + '\n')
    with open(os.path.join(root, 'words.txt'), 'w') as f:
        # words.txt lists every WordNet id, not only the 200 classes
        f.write('n00001740\tentity\n')
        f.write(''.join(f'{w}\tthing {i}, other name\n'
                        for i, w in enumerate(WNIDS)))
    boxes = {w: [] for w in WNIDS}
    for i in range(num_train):
        wnid = WNIDS[i % len(WNIDS)]
        name = f'{wnid}_{i}.JPEG'
        write_jpeg(os.path.join(root, 'train', wnid, 'images', name), rng,
                   size=(64, 64), label=i)
        boxes[wnid].append(f'{name}\t0\t0\t63\t63\n')
    for wnid, lines in boxes.items():
        with open(os.path.join(root, 'train', wnid, f'{wnid}_boxes.txt'),
                  'w') as f:
            f.writelines(lines)
    annotations = []
    for i in range(num_val):
        wnid = WNIDS[(i + 1) % len(WNIDS)]
        name = f'val_{i}.JPEG'
        write_jpeg(os.path.join(root, 'val', 'images', name), rng,
                   size=(64, 64), label=i)
        annotations.append(f'{name}\t{wnid}\t1\t2\t60\t61\n')
    with open(os.path.join(root, 'val', 'val_annotations.txt'), 'w') as f:
        f.writelines(annotations)
    write_jpeg(os.path.join(root, 'test', 'images', 'test_0.JPEG'), rng,
               size=(64, 64))
    return root


MAKERS = {
    'TinyImageNet': lambda tmp: dict(
        data_root=make_tiny_imagenet(tmp / 'tiny-imagenet-200')),
}
