"""mmpretrain's inferencer on the quick-start model, which sees grey images."""
import os.path as osp

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmpretrain.apis import ImageClassificationInferencer
from mmpretrain.registry import DATASETS, TRANSFORMS

from mmdidb.datasets import LocalFashionMNIST

from helpers import REPO_ROOT, make_fashion_mnist

QUICK_START = osp.join(REPO_ROOT, 'configs', 'didbvit',
                       'vit-mini_fashion-mnist.py')


def grey_image(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (28, 28), dtype=np.uint8)


def test_an_image_path_predicts_as_the_same_grey_array(tmp_path):
    """A grey PNG path (read as 3-channel BGR by the inferencer) and the same
    image as a 2-D array give the same prediction; no checkpoint is read."""
    classes = LocalFashionMNIST.METAINFO['classes']
    torch.manual_seed(0)
    inferencer = ImageClassificationInferencer(
        QUICK_START, pretrained=False, device='cpu', classes=classes)
    img = grey_image()
    path = str(tmp_path / 'grey.png')
    assert cv2.imwrite(path, img)
    from_path = inferencer(path)[0]
    from_array = inferencer(img)[0]
    assert from_path['pred_scores'].shape == (len(classes), )
    assert from_path['pred_class'] == classes[from_path['pred_label']]
    assert from_path['pred_label'] == from_array['pred_label']
    np.testing.assert_array_equal(from_path['pred_scores'],
                                  from_array['pred_scores'])


def test_to_grayscale_converts_colour_and_passes_grey():
    transform = TRANSFORMS.build(dict(type='ToGrayscale'))
    grey = grey_image()
    assert transform(dict(img=grey))['img'] is grey
    single = grey[..., None]
    assert transform(dict(img=single))['img'] is single
    bgr = np.stack([grey] * 3, axis=-1)
    np.testing.assert_array_equal(transform(dict(img=bgr))['img'], grey)
    bgra = np.concatenate([bgr, np.full_like(grey, 7)[..., None]], axis=-1)
    np.testing.assert_array_equal(transform(dict(img=bgra))['img'], grey)
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[..., 2] = 255  # pure red in BGR order
    assert (transform(dict(img=colour))['img'] ==
            cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)).all()


def test_the_datasets_grey_samples_are_unchanged(tmp_path):
    """Evaluation reads the dataset's own (H, W) images: the test pipeline
    packs exactly what it packed without ToGrayscale."""
    root = make_fashion_mnist(str(tmp_path), 4, 6)
    cfg = Config.fromfile(QUICK_START)
    dataset_cfg = dict(cfg.val_dataloader.dataset, data_prefix=root)
    assert cfg.test_pipeline[0]['type'] == 'ToGrayscale'
    with_gray = DATASETS.build(dataset_cfg)
    without = DATASETS.build(dict(dataset_cfg,
                                  pipeline=cfg.test_pipeline[1:]))
    for i in range(len(with_gray)):
        a, b = with_gray[i]['inputs'], without[i]['inputs']
        assert a.shape == (1, 28, 28) and torch.equal(a, b)
