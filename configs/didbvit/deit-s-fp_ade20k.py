# Full-precision reference: mmpretrain's DeiT-Small + the same UPerNet, data
# and 160k cosine schedule, fine-tuned with mmseg's ViT-UPerNet learning rate
# (6e-5; 1e-3 is the binary models' rate).
_base_ = [
    '../_base_/models/upernet_vit-fp.py',
    '../_base_/datasets/ade20k.py',
    '../_base_/schedules/seg_160k_adamw.py',
    '../_base_/seg_runtime.py',
]
optim_wrapper = dict(optimizer=dict(lr=6e-5))
