import numpy as np
import pytest
from mmpretrain.registry import DATASETS

from mmdidb.datasets import LocalFashionMNIST

from helpers import make_fashion_mnist


@pytest.mark.parametrize('compress', [True, False])
def test_reads_gzipped_and_plain_idx_files(tmp_path, compress):
    root = make_fashion_mnist(str(tmp_path), 20, 10, compress=compress)
    train = LocalFashionMNIST(data_prefix=root, split='train')
    test = DATASETS.build(dict(type='LocalFashionMNIST', data_prefix=root,
                               split='test'))
    assert len(train) == 20 and len(test) == 10
    item = train.get_data_info(3)
    assert item['img'].shape == (28, 28) and int(item['gt_label']) == 3
    assert (item['img'][8:10] == 250).all()
    assert test.metainfo['classes'][0] == 'T-shirt/top'


def test_reads_the_same_images_as_mmpretrains_fashion_mnist(tmp_path):
    root = make_fashion_mnist(str(tmp_path), 12, 6, compress=False)
    ours = LocalFashionMNIST(data_prefix=root, split='train')
    theirs = DATASETS.build(dict(type='FashionMNIST', data_prefix=root,
                                 download=False))
    for i in range(12):
        assert np.array_equal(ours.get_data_info(i)['img'],
                              theirs.get_data_info(i)['img'])


def test_missing_directory_names_the_field(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r"data_prefix='.*nowhere' does not exist"):
        LocalFashionMNIST(data_prefix=str(tmp_path / 'nowhere'))


def test_missing_files_are_listed(tmp_path):
    root = make_fashion_mnist(str(tmp_path), 4, 4)
    (tmp_path / 't10k-labels-idx1-ubyte.gz').unlink()
    LocalFashionMNIST(data_prefix=root, split='train')  # train files intact
    with pytest.raises(FileNotFoundError, match='t10k-labels-idx1-ubyte.gz'):
        LocalFashionMNIST(data_prefix=root, split='test')


def test_bad_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        LocalFashionMNIST(data_prefix=str(tmp_path), split='val')
