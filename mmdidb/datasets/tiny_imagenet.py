"""Tiny-ImageNet (200 classes, 64x64) in its official folder layout."""
import glob
import os.path as osp
from typing import Dict, List

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

#: Image files of the official archive (``.JPEG``); other cases also count.
_IMG_EXTENSIONS = ('.jpeg', '.jpg', '.png')


@DATASETS.register_module()
class TinyImageNet(BaseDataset):
    """Tiny-ImageNet-200 read from the unpacked ``tiny-imagenet-200.zip``.

    The official layout (``data_root`` is the ``tiny-imagenet-200`` folder)::

        wnids.txt                      the 200 class ids (WordNet ids)
        words.txt                      wnid<TAB>names (optional: class names)
        train/<wnid>/images/*.JPEG     500 images per class
        val/images/*.JPEG              10k images
        val/val_annotations.txt        file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1

    The test split has no labels and is not supported. Class indices follow
    the sorted wnids, which is the order ``torchvision.ImageFolder`` (and
    mmpretrain's ``CustomDataset``) gives ``train/``, so checkpoints match
    models trained with those. Class names come from ``words.txt`` when it
    is there, else they are the wnids.

    A missing or malformed file fails at build time naming ``data_root`` and
    the file.

    Args:
        data_root (str): The ``tiny-imagenet-200`` folder.
        split (str): 'train' (100k images) or 'val' (10k).
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``
            (``pipeline``, ``test_mode``, ...); ``test_mode`` defaults to
            ``split == 'val'``.
    """

    def __init__(self, data_root: str = '', split: str = 'train',
                 **kwargs):
        if split not in ('train', 'val'):
            raise ValueError(
                f"TinyImageNet: split must be 'train' or 'val' (the test "
                f'split has no labels), got {split!r}')
        if not isinstance(data_root, str) or not osp.isdir(data_root):
            raise FileNotFoundError(
                f'TinyImageNet: data_root={data_root!r} does not exist. Set '
                "the dataset's data_root to the unpacked tiny-imagenet-200 "
                'folder (with wnids.txt, train/ and val/).')
        self.split = split
        kwargs.setdefault('test_mode', split == 'val')
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def _path(self, *parts: str) -> str:
        return osp.join(self.data_root, *parts)

    def _fail(self, what: str) -> None:
        raise FileNotFoundError(
            f'TinyImageNet: data_root={self.data_root!r} {what}; expected '
            'the official tiny-imagenet-200 layout (wnids.txt, '
            'train/<wnid>/images/*.JPEG, val/images/*.JPEG, '
            'val/val_annotations.txt)')

    def _wnids(self) -> List[str]:
        path = self._path('wnids.txt')
        if not osp.isfile(path):
            self._fail('has no wnids.txt')
        with open(path) as f:
            wnids = [line.strip() for line in f if line.strip()]
        if not wnids or len(set(wnids)) != len(wnids):
            self._fail('has an empty wnids.txt or one with repeated ids')
        return sorted(wnids)

    def _names(self, wnids: List[str]) -> List[str]:
        path = self._path('words.txt')
        words: Dict[str, str] = {}
        if osp.isfile(path):
            with open(path) as f:
                for line in f:
                    wnid, _, names = line.rstrip('\n').partition('\t')
                    words[wnid] = names.strip()
        return [words.get(w) or w for w in wnids]

    def load_data_list(self) -> List[dict]:
        wnids = self._wnids()
        self._metainfo['classes'] = tuple(self._names(wnids))
        label_of = {w: i for i, w in enumerate(wnids)}
        if self.split == 'train':
            return self._train_list(wnids, label_of)
        return self._val_list(label_of)

    def _train_list(self, wnids, label_of) -> List[dict]:
        data_list = []
        for wnid in wnids:
            folder = self._path('train', wnid, 'images')
            if not osp.isdir(folder):
                self._fail(f'has no train/{wnid}/images folder (wnid listed '
                           'in wnids.txt)')
            files = sorted(p for p in glob.glob(osp.join(folder, '*'))
                           if p.lower().endswith(_IMG_EXTENSIONS))
            data_list += [dict(img_path=p, gt_label=label_of[wnid])
                          for p in files]
        if not data_list:
            self._fail('has no training images')
        return data_list

    def _val_list(self, label_of) -> List[dict]:
        ann = self._path('val', 'val_annotations.txt')
        if not osp.isfile(ann):
            self._fail('has no val/val_annotations.txt')
        data_list = []
        with open(ann) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                fields = line.split('\t')
                label = label_of.get(fields[1].strip()) \
                    if len(fields) > 1 else None
                if label is None:
                    raise ValueError(
                        f'TinyImageNet: data_root={self.data_root!r}: '
                        f'val/val_annotations.txt line {number} is not '
                        '"file<TAB>wnid..." with a wnid of wnids.txt: '
                        f'{line.strip()!r}')
                img = self._path('val', 'images', fields[0].strip())
                if not osp.isfile(img):
                    self._fail(f'lacks val/images/{fields[0].strip()} '
                               f'(val_annotations.txt line {number})')
                data_list.append(dict(img_path=img, gt_label=label))
        if not data_list:
            self._fail('has an empty val/val_annotations.txt')
        return data_list

    def extra_repr(self) -> List[str]:
        return [f'Root of dataset: \t{self.data_root}',
                f'Split: \t{self.split}']
