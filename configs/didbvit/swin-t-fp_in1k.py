# Full-precision Swin-Tiny on ImageNet-1k with the DeiT/Swin recipe: the
# teacher of the DIDBSwin configs. They use mmpretrain's model-zoo weights
# of this model, so this config is needed only to retrain the teacher.
_base_ = [
    '../_base_/models/swin-tiny-fp.py',
    '../_base_/datasets/imagenet_224_deit-aug.py',
    '../_base_/schedules/deit_adamw_cosine_300e.py',
    '../_base_/default_runtime.py',
]
