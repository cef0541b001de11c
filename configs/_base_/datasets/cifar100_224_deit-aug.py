# CIFAR-100 at 224 px with DeiT's augmentation, for the full-precision
# teacher: RandAugment and random erasing here, mixup / cutmix and label
# smoothing in the model (models/vit-deit-*-fp.py).
_base_ = ['./cifar100_224.py']

# the pickles hold RGB pixels: pad and fill with the RGB mean
rgb_mean = [129.304, 124.070, 112.434]
rgb_std = [68.170, 65.392, 70.418]
deit_train_pipeline = [
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in rgb_mean],
                      interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3, fill_color=rgb_mean,
         fill_std=rgb_std),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=deit_train_pipeline))
