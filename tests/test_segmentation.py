"""DIDB-ViT in mmsegmentation: configs, backbone, datasets, checks, metric."""
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmpretrain.models import VisionTransformer
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
from PIL import Image

from mmdidb.datasets import BadSegSampleError, CheckSegSample
from mmdidb.engine.hooks.seg_input_size_check_hook import size_problems
from mmdidb.evaluation import ClassIoUMetric

from helpers import REPO_ROOT, assert_gradients_reach
from tiny.segmentation import make_ade20k, make_binary_seg

register_all_modules(init_default_scope=False)


@pytest.fixture(autouse=True)
def _mmseg_scope():
    """Build nested modules and transforms from mmseg's registries."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield

ADE_CONFIGS = ['deit-s_ade20k.py', 'deit-t_ade20k.py', 'deit-s-naive_ade20k.py',
               'deit-s-fp_ade20k.py']
RSLVF_CONFIGS = ['deit-s_rslvf.py', 'deit-s-naive_rslvf.py',
                 'deit-s-fp_rslvf.py']
#: A 12-layer backbone small enough for unit tests (out_indices 2, 5, 8, 11).
TINY_ARCH = dict(embed_dims=32, num_layers=12, num_heads=2,
                 feedforward_channels=64)


def load(name):
    return Config.fromfile(os.path.join(REPO_ROOT, 'configs', 'didbvit', name))


def transform_of(pipeline, type_):
    return [t for t in pipeline if t['type'] == type_][0]


# ------------------------------------------------------------------ configs
@pytest.mark.parametrize('name', ADE_CONFIGS)
def test_ade20k_configs_really_run_160k_iterations(name):
    cfg = load(name)
    assert cfg.train_cfg.max_iters == 160000
    schedulers = cfg.param_scheduler
    # the schedulers tile [0, 160000) without gap, the cosine ends at 160k
    assert schedulers[0].begin == 0
    for before, after in zip(schedulers, schedulers[1:]):
        assert before.end == after.begin
    cosine = schedulers[-1]
    assert cosine.type == 'CosineAnnealingLR' and cosine.end == 160000
    assert cosine.T_max == cosine.end - cosine.begin
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    binary = 'fp' not in name
    assert cfg.optim_wrapper.optimizer.lr == (1e-3 if binary else 6e-5)


@pytest.mark.parametrize('name', ADE_CONFIGS)
def test_ade20k_configs_follow_the_paper_and_mmseg(name):
    cfg = load(name)
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(imports=['mmdidb'],
                                      allow_failed_imports=False)
    # 2 processes x 9 images = the paper's batch of 18
    assert cfg.train_dataloader.batch_size == 9
    assert cfg.auto_scale_lr.base_batch_size == 18
    dataset = cfg.train_dataloader.dataset
    assert dataset.type == 'ADE20KDataset'
    assert dataset.data_root == 'data/ade/ADEChallengeData2016'
    assert dataset.data_prefix == dict(img_path='images/training',
                                       seg_map_path='annotations/training')
    assert cfg.val_dataloader.dataset.data_prefix.img_path == \
        'images/validation'
    crop = transform_of(dataset.pipeline, 'RandomCrop')
    assert crop.crop_size == (512, 512) and crop.cat_max_ratio == 0.75
    model = cfg.model
    assert model.data_preprocessor.size == (512, 512)
    assert model.neck.type == 'MultiLevelNeck'
    assert model.neck.scales == [4, 2, 1, 0.5]
    assert model.decode_head.type == 'UPerHead'
    assert model.auxiliary_head.type == 'FCNHead'
    assert model.decode_head.num_classes == 150
    assert model.auxiliary_head.num_classes == 150
    assert model.backbone.out_indices == (2, 5, 8, 11)
    assert model.backbone.out_type == 'featmap'
    dims = 192 if 'deit-t' in name else 384
    assert model.neck.in_channels == [dims] * 4
    assert model.decode_head.in_channels == [dims] * 4
    assert model.backbone.init_cfg.type == 'Pretrained'
    assert model.backbone.init_cfg.prefix == 'backbone.'
    if 'naive' in name:
        assert not (model.backbone.diba or model.backbone.hfsc
                    or model.backbone.irprelu)
    if 'fp' in name:
        assert model.backbone.type == 'mmpretrain.VisionTransformer'


@pytest.mark.parametrize('name', RSLVF_CONFIGS)
def test_rslvf_configs(name):
    cfg = load(name)
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.train_dataloader.dataset.type == 'RSLVFDataset'
    assert cfg.model.decode_head.num_classes == 2
    assert cfg.model.auxiliary_head.num_classes == 2
    assert cfg.val_evaluator == dict(type='ClassIoUMetric',
                                     iou_metrics=['mIoU', 'mFscore'],
                                     classes=['road'])
    assert cfg.param_scheduler[-1].end == cfg.train_cfg.max_iters
    assert cfg.param_scheduler[-1].type == 'CosineAnnealingLR'


# ----------------------------------------------------------------- backbone
def seg_model(mode='whole', crop=(64, 64), stride=(32, 32), **backbone):
    backbone = dict(dict(type='DIDBViT', arch=TINY_ARCH, img_size=64,
                         patch_size=16, out_indices=(2, 5, 8, 11),
                         out_type='featmap'), **backbone)
    test_cfg = dict(mode=mode)
    if mode == 'slide':
        test_cfg.update(crop_size=crop, stride=stride)
    return MODELS.build(ConfigDict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.] * 3,
                               std=[1.] * 3, size=(64, 64),
                               test_cfg=dict(size_divisor=16)),
        backbone=backbone,
        neck=dict(type='MultiLevelNeck', in_channels=[32] * 4,
                  out_channels=32, scales=[4, 2, 1, 0.5]),
        decode_head=dict(type='UPerHead', in_channels=[32] * 4,
                         in_index=[0, 1, 2, 3], channels=16, num_classes=3,
                         norm_cfg=dict(type='BN')),
        auxiliary_head=dict(type='FCNHead', in_channels=32, in_index=3,
                            channels=8, num_classes=3,
                            norm_cfg=dict(type='BN')),
        test_cfg=test_cfg))


@pytest.mark.parametrize('size', [(64, 64), (96, 48)])
def test_backbone_feeds_multilevel_neck_and_upernet(size):
    model = seg_model()
    x = torch.randn(2, 3, *size)
    levels = model.extract_feat(x)
    grid = (size[0] // 16, size[1] // 16)
    assert [tuple(f.shape) for f in levels] == [
        (2, 32, int(grid[0] * s), int(grid[1] * s)) for s in (4, 2, 1, 0.5)
    ]
    gt = [SegDataSample(metainfo=dict(img_shape=size, pad_shape=size))
          for _ in range(2)]
    for sample in gt:
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, *size)))
    losses = model.loss(x, gt)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    loss.backward()
    assert_gradients_reach(model, ['backbone.layers.0.attn.q.weight',
                                   'backbone.layers.0.ffn.fc1.weight'])


def test_slide_equals_whole_when_the_window_is_the_image():
    whole = seg_model().eval()
    slide = seg_model(mode='slide', crop=(64, 96), stride=(32, 32)).eval()
    slide.load_state_dict(whole.state_dict())
    x = torch.randn(1, 3, 64, 96)
    metas = [dict(img_shape=(64, 96), ori_shape=(64, 96),
                  pad_shape=(64, 96))]
    with torch.no_grad():
        expected = whole.inference(x, metas)
        same = slide.inference(x, [dict(m) for m in metas])
        smaller = seg_model(mode='slide', crop=(64, 64), stride=(32, 32))
        smaller.load_state_dict(whole.state_dict())
        windows = smaller.eval().inference(x, [dict(m) for m in metas])
    assert torch.allclose(same, expected, atol=1e-6)
    assert windows.shape == expected.shape == (1, 3, 64, 96)


def test_test_images_of_any_size_are_padded_then_cropped_back():
    # our configs' strict backbone: the data preprocessor pads
    model = seg_model(pad_to_patch=False).eval()
    image = torch.randint(0, 255, (3, 70, 90), dtype=torch.uint8)
    sample = SegDataSample(metainfo=dict(img_shape=(70, 90),
                                         ori_shape=(70, 90)))
    with torch.no_grad():
        out = model.test_step(dict(inputs=[image], data_samples=[sample]))
    assert out[0].pred_sem_seg.data.shape == (1, 70, 90)
    with pytest.raises(ValueError, match='patch_size=16'):
        model.backbone(torch.randn(1, 3, 70, 90))


def test_fp_deit_checkpoint_initialises_the_segmentation_backbone(tmp_path):
    fp = VisionTransformer(arch=TINY_ARCH, img_size=224, patch_size=16)
    checkpoint = tmp_path / 'deit.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in fp.state_dict().items()}},
               checkpoint)
    model = seg_model(init_cfg=dict(type='Pretrained',
                                    checkpoint=str(checkpoint),
                                    prefix='backbone.'))
    model.init_weights()
    backbone = model.backbone
    q, _, v = fp.layers[5].attn.qkv.weight.chunk(3)
    assert torch.equal(backbone.layers[5].attn.q.weight, q)
    assert torch.equal(backbone.layers[5].attn.v.weight, v)
    assert torch.equal(backbone.cls_token, fp.cls_token)
    # 14x14 position grid resized to the 4x4 grid of 64x64 crops
    assert backbone.pos_embed.shape == (1, 1 + 16, 32)


# ----------------------------------------------------------------- datasets
def rslvf(root, **kwargs):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                dict(type='CheckSegSample', num_classes=2)]
    return DATASETS.build(dict(
        type='RSLVFDataset', data_root=str(root),
        data_prefix=dict(img_path='images/train',
                         seg_map_path='labels/train'),
        pipeline=pipeline, **kwargs))


def raw_label(root, name='tile0'):
    return np.asarray(Image.open(root / 'labels' / 'train' / f'{name}.png'))


@pytest.mark.parametrize('foreground', [1, 255])
def test_road_masks_0_1_and_0_255_give_the_same_labels(tmp_path, foreground):
    root = tmp_path / 'rs'
    make_binary_seg(str(root), foreground=foreground)
    dataset = rslvf(root)
    assert len(dataset) == 4
    assert dataset.metainfo['classes'] == ('background', 'road')
    raw = raw_label(root)
    assert set(np.unique(raw)) == {0, foreground}
    gt = dataset[0]['gt_seg_map']
    np.testing.assert_array_equal(gt, (raw > 0).astype(np.uint8))


def test_255_stays_the_ignore_index_when_only_1_means_road(tmp_path):
    root = tmp_path / 'rs'
    make_binary_seg(str(root), foreground=1)
    path = root / 'labels' / 'train' / 'tile0.png'
    label = raw_label(root).copy()
    label[:4] = 255
    Image.fromarray(label).save(path)
    gt = rslvf(root, foreground_values=(1, ))[0]['gt_seg_map']
    np.testing.assert_array_equal(gt, label)
    assert (gt == 255).sum() == 4 * label.shape[1]


def test_label_values_outside_the_classes_fail_at_build(tmp_path):
    root = tmp_path / 'rs'
    make_binary_seg(str(root))
    label = raw_label(root, 'tile2').copy()
    label[0, 0] = 7
    Image.fromarray(label).save(root / 'labels' / 'train' / 'tile2.png')
    with pytest.raises(BadSegSampleError) as err:
        rslvf(root)
    message = str(err.value)
    assert 'tile2.png' in message and 'label values 7 ' in message
    assert "on_bad_sample='skip'" in message
    # a long run can skip the file instead, with a warning
    dataset = rslvf(root, on_bad_sample='skip')
    names = [os.path.basename(dataset.get_data_info(i)['img_path'])
             for i in range(len(dataset))]
    assert names == ['tile0.png', 'tile1.png', 'tile3.png']


def test_size_mismatch_and_missing_partners_fail_at_build(tmp_path):
    root = tmp_path / 'rs'
    make_binary_seg(str(root))
    labels, images = root / 'labels' / 'train', root / 'images' / 'train'
    Image.fromarray(raw_label(root, 'tile1')[:60]).save(labels / 'tile1.png')
    os.remove(labels / 'tile2.png')
    os.remove(images / 'tile3.png')
    with pytest.raises(BadSegSampleError) as err:
        rslvf(root, validate='files')
    message = str(err.value)
    assert '3 bad image/label pair(s)' in message
    assert f'{labels}/tile1.png: label is 60x80 (HxW) but its image is ' \
        '64x80' in message
    assert f'{labels}/tile2.png: label file is missing' in message
    assert f'{labels}/tile3.png: label file has no image' in message
    assert len(rslvf(root, on_bad_sample='skip')) == 1
    for name in ('tile0', 'tile1'):
        os.remove(labels / f'{name}.png')
    with pytest.raises(BadSegSampleError, match='no usable image/label'):
        rslvf(root, on_bad_sample='skip')


def test_a_split_file_lists_a_subset_without_orphan_errors(tmp_path):
    root = tmp_path / 'rs'
    make_binary_seg(str(root))
    (root / 'split.txt').write_text('tile1\ntile3\n')
    dataset = rslvf(root, ann_file='split.txt')
    assert [os.path.basename(dataset.get_data_info(i)['seg_map_path'])
            for i in range(len(dataset))] == ['tile1.png', 'tile3.png']


def test_bad_dataset_arguments_name_the_field(tmp_path):
    with pytest.raises(ValueError, match='foreground_values'):
        rslvf(tmp_path, foreground_values=(0, 1))
    with pytest.raises(ValueError, match='on_bad_sample'):
        rslvf(tmp_path, on_bad_sample='ignore')
    with pytest.raises(ValueError, match='validate'):
        rslvf(tmp_path, validate='some')


# ----------------------------------------------------- per-sample checks
def test_ade20k_pipeline_names_a_label_outside_150_classes(tmp_path):
    root = make_ade20k(str(tmp_path))
    path = os.path.join(root, 'annotations', 'training',
                        'ADE_train_00000002.png')
    label = np.asarray(Image.open(path)).copy()
    label[5, 5] = 200  # 199 after reduce_zero_label: no such class
    Image.fromarray(label).save(path)
    cfg = load('deit-s_ade20k.py').train_dataloader.dataset
    cfg.data_root = root
    dataset = DATASETS.build(cfg)
    dataset[0]  # a good sample passes
    with pytest.raises(BadSegSampleError) as err:
        dataset[1]
    assert path in str(err.value) and 'label values 199 ' in str(err.value)
    assert '0..149, 255' in str(err.value)


def test_per_sample_check_of_sizes_after_a_test_resize(tmp_path):
    root = make_ade20k(str(tmp_path))
    path = os.path.join(root, 'annotations', 'validation',
                        'ADE_val_00000001.png')
    Image.fromarray(np.asarray(Image.open(path))[:, :90]).save(path)
    cfg = load('deit-s_ade20k.py').val_dataloader.dataset
    cfg.data_root = root
    with pytest.raises(BadSegSampleError, match='label is 80x90 .* image '
                       'is 80x96'):
        DATASETS.build(cfg)[0]


def test_skip_draws_another_sample_in_training(tmp_path):
    root = tmp_path / 'rs'
    make_binary_seg(str(root))
    label = raw_label(root, 'tile1').copy()
    label[0, 0] = 9
    Image.fromarray(label).save(root / 'labels' / 'train' / 'tile1.png')
    dataset = DATASETS.build(dict(
        type='RSLVFDataset', data_root=str(root), validate='none',
        data_prefix=dict(img_path='images/train',
                         seg_map_path='labels/train'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations'),
                  dict(type='CheckSegSample', num_classes=2,
                       on_bad_sample='skip')]))
    sample = dataset[1]
    assert not sample['img_path'].endswith('tile1.png')
    check = CheckSegSample(num_classes=2)
    with pytest.raises(BadSegSampleError, match='tile1.png'):
        check(dict(gt_seg_map=label, ori_shape=label.shape,
                   seg_map_path=str(root / 'labels/train/tile1.png')))


# ------------------------------------------------------ input size checks
def test_sizes_not_divisible_by_the_patch_are_named():
    cfg = load('deit-s_rslvf.py')
    errors, warnings = size_problems(cfg, 16)
    assert errors == [] and warnings == []
    crop = transform_of(cfg.train_dataloader.dataset.pipeline, 'RandomCrop')
    crop.crop_size = (500, 500)
    cfg.model.test_cfg.crop_size = (500, 512)
    cfg.model.data_preprocessor.test_cfg = None
    errors, warnings = size_problems(cfg, 16)
    assert errors == [
        'train_dataloader.dataset.pipeline.4.crop_size (RandomCrop)=(500, '
        '500)', 'model.test_cfg.crop_size (slide inference)=(500, 512)'
    ]
    assert 'size_divisor=16' in warnings[0]


def test_a_crop_not_divisible_stops_the_run_before_training(tmp_path):
    cfg = load('vit-mini_nuclei.py')
    root = make_binary_seg(str(tmp_path / 'nuclei'), foreground=255)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    cfg.model.data_preprocessor.size = (60, 60)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError) as err:
        runner.train()
    assert 'model.data_preprocessor.size=(60, 60)' in str(err.value)
    assert 'patch_size=8' in str(err.value)
    assert runner.iter == 0


# ------------------------------------------------------------------- metric
def test_road_iou_f1_precision_recall_are_exact():
    metric = ClassIoUMetric(iou_metrics=['mIoU', 'mFscore'],
                            classes=['road'])
    metric.dataset_meta = dict(classes=('background', 'road'))
    gt = torch.tensor([[0, 0, 1, 1, 255], [0, 0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    sample = dict(pred_sem_seg=dict(data=pred[None]),
                  gt_sem_seg=dict(data=gt[None]))
    metric.process({}, [sample])
    result = metric.evaluate(1)
    # road: 4 true, 4 predicted (ignoring the 255 pixel), 3 in common
    assert result['IoU.road'] == 60.0           # 3 / (4 + 4 - 3)
    assert result['Precision.road'] == 75.0     # 3 / 4
    assert result['Recall.road'] == 75.0        # 3 / 4
    assert result['Fscore.road'] == 75.0
    assert result['Acc.road'] == 75.0
    # background: 5 true, 5 predicted, 4 in common -> IoU 4 / 6
    assert result['mIoU'] == round((60.0 + 400 / 6) / 2, 2)
    assert result['aAcc'] == round(700 / 9, 2)


def test_metric_on_a_dataset_with_known_predictions(tmp_path):
    root = tmp_path / 'rs'
    make_binary_seg(str(root), foreground=255)
    dataset = rslvf(root)
    metric = ClassIoUMetric(iou_metrics=['mIoU', 'mFscore'],
                            classes=['road'])
    metric.dataset_meta = dataset.metainfo
    road = background = 0
    for index in range(len(dataset)):
        gt = torch.from_numpy(dataset[index]['gt_seg_map']).long()[None]
        # half the tiles predicted perfectly, half as all background
        pred = gt.clone() if index % 2 == 0 else torch.zeros_like(gt)
        metric.process({}, [dict(pred_sem_seg=dict(data=pred),
                                 gt_sem_seg=dict(data=gt))])
        road += int((gt == 1).sum()) if index % 2 == 0 else 0
        background += int((gt == 1).sum()) if index % 2 else 0
    result = metric.evaluate(len(dataset))
    assert result['Precision.road'] == 100.0
    assert result['Recall.road'] == round(100 * road / (road + background), 2)
    assert result['IoU.road'] == result['Recall.road']
