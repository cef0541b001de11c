# ADE20K (SceneParsing, 150 classes) in its official layout,
# data/ade/ADEChallengeData2016/{images,annotations}/{training,validation},
# with mmseg's standard pipeline: random rescale of the (2048, 512) scale by
# 0.5-2, 512x512 crops, flip, photometric distortion; testing at the
# (2048, 512) scale.
dataset_type = 'ADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
crop_size = (512, 512)
num_classes = 150
# Right after the annotations are read: image/label size mismatches and
# label values outside 0..149 (after reduce_zero_label; 255 = ignore) fail
# naming the file, instead of a CUDA assert or a silently mis-cropped label.
check_sample = dict(type='CheckSegSample', num_classes=num_classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    check_sample,
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    # the labels are read after Resize: they are scored at full resolution
    dict(type='LoadAnnotations', reduce_zero_label=True),
    check_sample,
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    # the paper's batch of 18 is 2 processes x 9 images
    batch_size=9,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
