# Nuclei tiles cut from the ONE real annotated image the stardist package
# ships (tools/dataset_converters/prepare_nuclei.py): 165 overlapping
# 64x64 training tiles and 16 held-out validation tiles from a separate
# strip of the image. Two classes, background / nucleus, masks 0/255.
dataset_type = 'NucleiDataset'
data_root = 'data/nuclei'
check_sample = dict(type='CheckSegSample', num_classes=2)
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadAnnotations'),
    check_sample,
    # fluorescence microscopy has no up or down
    dict(
        type='RandomFlip',
        prob=[0.25, 0.25],
        direction=['horizontal', 'vertical']),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadAnnotations'),
    check_sample,
    dict(type='PackSegInputs'),
]
# Data loading in the main process: the tiles are tiny.
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/train', seg_map_path='labels/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/val', seg_map_path='labels/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='ClassIoUMetric', iou_metrics=['mIoU', 'mFscore'],
    classes=['nucleus'])
test_evaluator = val_evaluator
