"""The datasets of the distillation configs, in their real on-disk layouts."""
import os
import pickle
import shutil

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

from mmdidb.datasets import LocalCIFAR100, TinyImageNet

from tiny.cifar100 import make_cifar100
from tiny.imagenet import make_imagenet
from tiny.tiny_imagenet import WNIDS, make_tiny_imagenet


@pytest.fixture
def tiny_root(tmp_path):
    return make_tiny_imagenet(tmp_path / 'tiny-imagenet-200')


def test_tiny_imagenet_train_split(tiny_root):
    ds = DATASETS.build(dict(type='TinyImageNet', data_root=tiny_root,
                             split='train'))
    assert len(ds) == 16 and not ds.test_mode
    # class indices follow the sorted wnids, names come from words.txt
    order = sorted(WNIDS)
    assert ds.metainfo['classes'] == tuple(
        f'thing {WNIDS.index(w)}, other name' for w in order)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        wnid = os.path.basename(info['img_path']).split('_')[0]
        assert info['gt_label'] == order.index(wnid)
        assert info['img_path'].startswith(
            os.path.join(tiny_root, 'train', wnid, 'images'))


def test_tiny_imagenet_val_split_reads_the_annotations(tiny_root):
    ds = TinyImageNet(data_root=tiny_root, split='val')
    assert len(ds) == 8 and ds.test_mode
    order = sorted(WNIDS)
    with open(os.path.join(tiny_root, 'val', 'val_annotations.txt')) as f:
        lines = [line.split('\t') for line in f]
    for i, (name, wnid, *_) in enumerate(lines):
        info = ds.get_data_info(i)
        assert info['img_path'] == os.path.join(tiny_root, 'val', 'images',
                                                name)
        assert info['gt_label'] == order.index(wnid)


def test_tiny_imagenet_without_words_uses_wnids(tiny_root):
    os.remove(os.path.join(tiny_root, 'words.txt'))
    ds = TinyImageNet(data_root=tiny_root, split='val')
    assert ds.metainfo['classes'] == tuple(sorted(WNIDS))


def test_tiny_imagenet_missing_root_names_the_field(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r"data_root='.*nowhere' does not exist"):
        TinyImageNet(data_root=str(tmp_path / 'nowhere'))


@pytest.mark.parametrize('remove,match', [
    ('wnids.txt', 'has no wnids.txt'),
    ('val/val_annotations.txt', 'has no val/val_annotations.txt'),
    (f'train/{WNIDS[2]}', f'has no train/{WNIDS[2]}/images'),
    ('val/images/val_3.JPEG', r'lacks val/images/val_3.JPEG .*line 4'),
])
def test_tiny_imagenet_incomplete_layout_names_what_is_missing(
        tiny_root, remove, match):
    path = os.path.join(tiny_root, remove)
    if os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.remove(path)
    split = 'val' if remove.startswith('val') else 'train'
    with pytest.raises(FileNotFoundError, match=f'data_root=.*{match}'):
        TinyImageNet(data_root=tiny_root, split=split)


def test_tiny_imagenet_unknown_wnid_in_annotations(tiny_root):
    with open(os.path.join(tiny_root, 'val', 'val_annotations.txt'),
              'a') as f:
        f.write('val_0.JPEG\tn00000000\t0\t0\t1\t1\n')
    with pytest.raises(ValueError, match='line 9 .*wnid of wnids.txt'):
        TinyImageNet(data_root=tiny_root, split='val')


def test_tiny_imagenet_test_split_is_refused(tiny_root):
    with pytest.raises(ValueError, match="'train' or 'val'"):
        TinyImageNet(data_root=tiny_root, split='test')


def test_local_cifar100_reads_the_pickles(tmp_path):
    root = make_cifar100(tmp_path / 'c100', 12, 6)
    with open(os.path.join(root, 'cifar-100-python', 'train'), 'rb') as f:
        raw = pickle.load(f)
    train = DATASETS.build(dict(type='LocalCIFAR100', data_root=root,
                                split='train'))
    test = LocalCIFAR100(data_root=root, split='test')
    assert len(train) == 12 and len(test) == 6 and test.test_mode
    assert train.metainfo['classes'][:2] == ('apple', 'aquarium_fish')
    info = train.get_data_info(5)
    assert info['gt_label'] == raw['fine_labels'][5]
    # CHW rows of the pickle -> HWC image, as mmpretrain's CIFAR100
    expected = raw['data'][5].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(info['img'], expected)


def test_local_cifar100_missing_files_name_data_root(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r"data_root='.*nowhere'.*does not exist"):
        LocalCIFAR100(data_root=str(tmp_path / 'nowhere'))
    root = make_cifar100(tmp_path / 'c100', 4, 4)
    os.remove(os.path.join(root, 'cifar-100-python', 'test'))
    with pytest.raises(FileNotFoundError, match='lacks test'):
        LocalCIFAR100(data_root=root, split='train')


def test_imagenet_maker_layout_loads_in_mmpretrains_imagenet(tmp_path):
    """The ImageNet maker writes what mmpretrain's ImageNet expects."""
    root = make_imagenet(tmp_path / 'imagenet')
    train = DATASETS.build(dict(type='ImageNet', data_root=root,
                                split='train'))
    val = DATASETS.build(dict(type='ImageNet', data_root=root, split='val'))
    assert len(train) == 16 and len(val) == 8
    assert train.get_data_info(3)['gt_label'] == 999
    assert train.get_data_info(3)['img_path'].endswith(
        'train/n09999999/n09999999_3.JPEG')
