# Tiny-ImageNet-200 (100k train / 10k val, 64x64, 200 classes) in the layout
# of the official tiny-imagenet-200.zip, unpacked as data_root:
#   wnids.txt, words.txt, train/<wnid>/images/*.JPEG,
#   val/images/*.JPEG, val/val_annotations.txt
# (mmdidb's TinyImageNet dataset reads it; the unlabelled test/ is unused).
# Upsampled to DeiT's 224 px with 16 px patches, as CIFAR-100: the same
# pipeline and teachers as ImageNet. Its images come from ImageNet, so the
# ImageNet normalisation is kept.
dataset_type = 'TinyImageNet'
data_root = 'data/tiny-imagenet-200'
data_preprocessor = dict(
    num_classes=200,
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

# 64 per process, 4 processes = 256 (auto_scale_lr adapts the lr)
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
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
    num_workers=4,
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
