# Full-precision BinaryViT-S pyramid on ImageNet-1k with DeiT's recipe: the
# teacher and initialisation of the DIDBBinaryViT configs (train it first).
_base_ = [
    '../_base_/models/binaryvit-small-fp.py',
    '../_base_/datasets/imagenet_224_deit-aug.py',
    '../_base_/schedules/deit_adamw_cosine_300e.py',
    '../_base_/default_runtime.py',
]
