# Full-precision DeiT-Small on ImageNet-1k with DeiT's recipe: the teacher
# of the distilled DIDB-ViT-Small ImageNet configs. They use the weights
# mmpretrain trained with this model (80.7 % top-1, its model zoo),
# so this config is needed only to retrain the teacher.
_base_ = [
    '../_base_/models/vit-deit-small-fp.py',
    '../_base_/datasets/imagenet_224_deit-aug.py',
    '../_base_/schedules/deit_adamw_cosine_300e.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=1000))
