# Tiny-ImageNet at 224 px with DeiT's augmentation, for the full-precision
# teachers: the ImageNet DeiT pipeline (same normalisation), on the
# Tiny-ImageNet data of tiny-imagenet_224.py.
_base_ = ['./imagenet_224_deit-aug.py']

dataset_type = 'TinyImageNet'
data_root = 'data/tiny-imagenet-200'
data_preprocessor = dict(num_classes=200)
train_dataloader = dict(
    num_workers=4, dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(
    num_workers=4, dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
