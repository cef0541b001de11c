# Full-precision reference for RS-LVF: mmpretrain's DeiT-Small + the same
# UPerNet, data and schedule, with mmseg's ViT fine-tuning rate (6e-5).
_base_ = [
    '../_base_/models/upernet_vit-fp.py',
    '../_base_/datasets/rslvf.py',
    '../_base_/schedules/seg_40k_adamw.py',
    '../_base_/seg_runtime.py',
]
model = dict(
    decode_head=dict(num_classes=2), auxiliary_head=dict(num_classes=2))
default_hooks = dict(
    checkpoint=dict(interval=4000, save_best='IoU.road', rule='greater'))
optim_wrapper = dict(optimizer=dict(lr=6e-5))
