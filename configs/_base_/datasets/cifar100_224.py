# CIFAR-100 (50k train / 10k test, 32x32, 100 classes) from the python
# pickle batches of cifar-100-python.tar.gz, unpacked under data_root:
#   cifar-100-python/{train,test,meta}
# Upsampled to DeiT's 224 px with 16 px patches: the binary-ViT papers'
# CIFAR setting (the BinaryViT and BHViT code runs CIFAR through the
# ImageNet transforms at input size 224, with DeiT-S/16 teachers), which the
# paper's FP DeiT-Small of 73.0 % also points to. Augmentation as for
# ImageNet: random-resized crop and flip for binary students.
_base_ = ['./imagenet_224.py']

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

# the ImageNet base's loaders (batch 64 per process, 4 processes = 256,
# evaluator) on the in-memory pickles: their own pipelines, the test split
train_dataloader = dict(
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root,
                 pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
