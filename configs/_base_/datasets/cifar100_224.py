# CIFAR-100 (50k train / 10k test, 32x32, 100 classes) from the python
# pickle batches of cifar-100-python.tar.gz, unpacked under data_root:
#   cifar-100-python/{train,test,meta}
# Upsampled to DeiT's 224 px with 16 px patches: the binary-ViT papers'
# CIFAR setting (the BinaryViT and BHViT code runs CIFAR through the
# ImageNet transforms at input size 224, with DeiT-S/16 teachers), which the
# paper's FP DeiT-Small of 73.0 % also points to. Augmentation as for
# ImageNet: random-resized crop and flip for binary students.
dataset_type = 'LocalCIFAR100'
data_root = 'data/cifar100'
# the pickles hold RGB pixels: no channel swap
data_preprocessor = dict(
    num_classes=100,
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
    to_rgb=False)

train_pipeline = [
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# 32 -> 256 -> centre 224, the ImageNet test ratio (as the timm pipeline)
test_pipeline = [
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
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
