"""CIFAR-100 as the python pickle batches of cifar-100-python.tar.gz.

::

    cifar100/cifar-100-python/{train,test,meta}
"""
import os
import pickle

import numpy as np
from mmpretrain.datasets.categories import CIFAR100_CATEGORIES


def make_cifar100(root, num_train=16, num_test=8, seed=0):
    """Write the three pickles with the keys and dtypes of the real ones."""
    root = str(root)
    folder = os.path.join(root, 'cifar-100-python')
    if os.path.isfile(os.path.join(folder, 'meta')):
        return root
    rng = np.random.default_rng(seed)
    os.makedirs(folder)
    for name, count in (('train', num_train), ('test', num_test)):
        labels = [(7 * i) % 100 for i in range(count)]
        images = rng.integers(0, 256, (count, 3 * 32 * 32), dtype=np.uint8)
        entry = {
            'filenames': [f'img_{i}.png' for i in range(count)],
            'batch_label': f'{name} batch',
            'fine_labels': labels,
            'coarse_labels': [label // 5 for label in labels],
            'data': images,
        }
        with open(os.path.join(folder, name), 'wb') as f:
            pickle.dump(entry, f)
    with open(os.path.join(folder, 'meta'), 'wb') as f:
        pickle.dump({'fine_label_names': list(CIFAR100_CATEGORIES),
                     'coarse_label_names': [f'c{i}' for i in range(20)]}, f)
    return root


MAKERS = {
    'LocalCIFAR100': lambda tmp: dict(
        data_root=make_cifar100(tmp / 'cifar100')),
}
