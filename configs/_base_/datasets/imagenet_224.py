# ImageNet-1k (1.28M train / 50k val, 1000 classes) in mmpretrain's standard
# layout under data_root:
#   train/<wnid>/<name>.JPEG, val/<name>.JPEG,
#   meta/train.txt, meta/val.txt ("<path in the split folder> <label>" lines)
# Binary students see the binary-ViT augmentation (BinaryViT, BHViT:
# "--aa noaug --mixup 0 --cutmix 0 --reprob 0"): random-resized crop and
# flip only. The KD target already regularises, and a 1-bit model underfits;
# the full-precision teachers use DeiT's augmentation (*_deit-aug.py).
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

# 64 per process, 4 processes: the paper's batch of 256 (auto_scale_lr
# adapts the lr to other counts). Workers are re-created every epoch
# (persistent_workers=False) so that ReseedHook makes --resume exact.
train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
