"""Fashion-MNIST read straight from the idx files, gzipped or not."""
import gzip
import os.path as osp
from typing import List

import numpy as np
from mmpretrain.datasets import FashionMNIST
from mmpretrain.datasets.mnist import read_sn3_pascalvincent_tensor
from mmpretrain.registry import DATASETS

#: Where Debian's ``dataset-fashion-mnist`` package puts the files.
DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'


@DATASETS.register_module()
class LocalFashionMNIST(FashionMNIST):
    """mmpretrain's :class:`FashionMNIST` on local idx files, ``.gz`` or not.

    Reads the four idx files as Debian's ``dataset-fashion-mnist`` installs
    them (gzipped, in :data:`DEBIAN_FASHION_MNIST`) or unzipped, as
    mmpretrain's class expects; chooses the files by ``split`` (mmpretrain's
    class only looks at ``test_mode``); never downloads, and fails at build
    time naming ``data_prefix`` when the files are not there.

    Args:
        data_prefix (str): Folder with the idx files. Defaults to
            :data:`DEBIAN_FASHION_MNIST`.
        split (str): 'train' (60k images) or 'test' (10k).
        **kwargs: Other arguments of mmpretrain's ``FashionMNIST``.
    """

    def __init__(self,
                 data_prefix: str = DEBIAN_FASHION_MNIST,
                 split: str = 'train',
                 **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"LocalFashionMNIST: split must be 'train' or "
                             f"'test', got {split!r}")
        kwargs.setdefault('test_mode', split == 'test')
        kwargs['download'] = False
        super().__init__(data_prefix=data_prefix, split=split, **kwargs)

    def _files(self) -> List[str]:
        names = self.train_list if self.split == 'train' else self.test_list
        root = self.data_prefix['root']
        paths, missing = [], []
        for gz_name, _ in names:
            plain = osp.join(root, gz_name[:-len('.gz')])
            zipped = osp.join(root, gz_name)
            found = [p for p in (plain, zipped) if osp.isfile(p)]
            paths.append(found[0] if found else None)
            if not found:
                missing.append(gz_name)
        if missing:
            where = 'does not exist' if not osp.isdir(root) else \
                f'lacks {", ".join(missing)} (or the same without .gz)'
            raise FileNotFoundError(
                f'LocalFashionMNIST: data_prefix={root!r} {where}. Set the '
                "dataset's data_prefix to a folder with the Fashion-MNIST "
                'idx files, gzipped or not; `apt-get install '
                f'dataset-fashion-mnist` puts them in {DEBIAN_FASHION_MNIST}.')
        return paths

    def _check_exists(self) -> bool:
        self._files()
        return True

    def load_data_list(self) -> List[dict]:
        images_path, labels_path = self._files()
        images = _read_idx(images_path)
        labels = _read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or \
                len(images) != len(labels):
            raise ValueError(
                f'LocalFashionMNIST: {images_path} and {labels_path} do not '
                f'form a dataset (shapes {images.shape}, {labels.shape})')
        return [{
            'img': img,
            'gt_label': np.array(label, dtype=np.int64)
        } for img, label in zip(images, labels)]


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        return read_sn3_pascalvincent_tensor(f, strict=False).numpy()
