# Real Fashion-MNIST (60k train / 10k test, 28x28 grey) as Debian's
# dataset-fashion-mnist package installs it; point data_prefix elsewhere for
# another copy (gzipped or unzipped idx files).
dataset_type = 'LocalFashionMNIST'
data_prefix = '/usr/share/datasets/fashion-mnist'

data_preprocessor = dict(
    num_classes=10,
    # dataset mean and std of the grey values, on the 0-255 scale
    mean=[72.94],
    std=[90.02],
    to_rgb=False)

# flips only: with a budget of a few epochs, random crops cost more
# accuracy than they regularise
train_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# ToGrayscale: an image path given to mmpretrain's inferencer is read as a
# colour image; the dataset's own grey samples pass unchanged
test_pipeline = [dict(type='ToGrayscale'), dict(type='PackInputs')]

# Data loading in the main process: the images are tiny, and it keeps
# `--resume` exact (see ReseedHook).
train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_prefix=data_prefix,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=500,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_prefix=data_prefix,
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
