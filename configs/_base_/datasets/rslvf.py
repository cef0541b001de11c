# RS-LVF aerial road segmentation (background / road) in the layout
# data/rs-lvf/{images,labels}/{train,val,test}/NAME.png (see RSLVFDataset;
# override data_root, data_prefix, img_suffix or seg_map_suffix for other
# copies). Road masks may be 0/1 or 0/255.
dataset_type = 'RSLVFDataset'
data_root = 'data/rs-lvf'
crop_size = (512, 512)
# the tiles' size: training rescales it by 0.5-2 and crops, testing reads it
# as is (set it to your tiles' size)
img_scale = (512, 512)
check_sample = dict(type='CheckSegSample', num_classes=2)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    check_sample,
    dict(
        type='RandomResize',
        scale=img_scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    # no cat_max_ratio: background covers most of nearly every road crop
    dict(type='RandomCrop', crop_size=crop_size),
    # aerial views have no up or down
    dict(
        type='RandomFlip',
        prob=[0.25, 0.25],
        direction=['horizontal', 'vertical']),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    check_sample,
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    # the paper's road batch: 4
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/train', seg_map_path='labels/train'),
        # 0/1 and 0/255 masks: 1 and 255 both mean road
        foreground_values=(1, 255),
        # every pair is checked when the dataset is built; 'skip' leaves
        # bad pairs out with a warning instead of stopping
        on_bad_sample='raise',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/val', seg_map_path='labels/val'),
        foreground_values=(1, 255),
        on_bad_sample='raise',
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/test', seg_map_path='labels/test'),
        foreground_values=(1, 255),
        on_bad_sample='raise',
        pipeline=test_pipeline))

# mIoU, mFscore (F1), mPrecision, mRecall and the road class's own IoU,
# Fscore, Precision, Recall and Acc (IoU.road, Fscore.road, ...)
val_evaluator = dict(
    type='ClassIoUMetric', iou_metrics=['mIoU', 'mFscore'], classes=['road'])
test_evaluator = val_evaluator
