# Tiny-ImageNet-200 (100k train / 10k val, 64x64, 200 classes) in the layout
# of the official tiny-imagenet-200.zip, unpacked as data_root:
#   wnids.txt, words.txt, train/<wnid>/images/*.JPEG,
#   val/images/*.JPEG, val/val_annotations.txt
# (mmdidb's TinyImageNet dataset reads it; the unlabelled test/ is unused).
# Upsampled to DeiT's 224 px with 16 px patches, as CIFAR-100: the same
# pipeline and teachers as ImageNet. Its images come from ImageNet, so the
# ImageNet normalisation is kept.
_base_ = ['./imagenet_224.py']

dataset_type = 'TinyImageNet'
data_root = 'data/tiny-imagenet-200'
data_preprocessor = dict(num_classes=200)

# 64 per process, 4 processes = 256 (auto_scale_lr adapts the lr)
train_dataloader = dict(
    num_workers=4, dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(
    num_workers=4, dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
