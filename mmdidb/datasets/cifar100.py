"""CIFAR-100 read from its python pickle batches, without download or md5."""
import os.path as osp
from typing import List

from mmpretrain.datasets import CIFAR100
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class LocalCIFAR100(CIFAR100):
    """mmpretrain's :class:`CIFAR100` on a local copy of the pickle batches.

    Reads the real on-disk layout of ``cifar-100-python.tar.gz``::

        data_root/cifar-100-python/{train,test,meta}

    exactly as mmpretrain's class does (same images, labels and class
    names), but never downloads and checks no md5, so copies that were
    re-pickled (other protocol) or cut down load as well. A missing folder or
    file fails at build time naming ``data_root``; mmpretrain's class would
    try to download or report a failed integrity check.

    Args:
        data_root (str): The folder that holds ``cifar-100-python``.
        split (str): 'train' (50k images) or 'test' (10k).
        **kwargs: Other arguments of mmpretrain's ``CIFAR100``;
            ``test_mode`` defaults to ``split == 'test'``.
    """

    train_list = [['train', None]]
    test_list = [['test', None]]
    meta = dict(CIFAR100.meta, md5=None)

    def __init__(self, data_root: str = '', split: str = 'train', **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"LocalCIFAR100: split must be 'train' or "
                             f"'test', got {split!r}")
        kwargs.setdefault('test_mode', split == 'test')
        kwargs['download'] = False
        super().__init__(data_root=data_root, split=split, **kwargs)

    def load_data_list(self) -> List[dict]:
        root = self.data_prefix['root']
        folder = osp.join(root, self.base_folder)
        names = [name for name, _ in self.train_list + self.test_list]
        missing = [n for n in names if not osp.isfile(osp.join(folder, n))]
        if missing:
            where = f'{folder!r} does not exist' if not osp.isdir(folder) \
                else f'{folder!r} lacks {", ".join(missing)}'
            raise FileNotFoundError(
                f'LocalCIFAR100: data_root={self.data_root!r}: {where}. Set the '
                "dataset's data_root to the folder that holds "
                'cifar-100-python/ (unpack cifar-100-python.tar.gz there).')
        return super().load_data_list()
