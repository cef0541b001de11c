# DIDBSwin-T (W1A1) + UPerNet for RS-LVF road segmentation (background /
# road), 512x512 crops, batch 4, AdamW lr 1e-3 + cosine; reports the road
# class's IoU, F1, precision and recall (the task settings of
# deit-s_rslvf.py on the Swin model).
_base_ = [
    '../_base_/models/upernet_didbswin.py',
    '../_base_/datasets/rslvf.py',
    '../_base_/schedules/seg_40k_adamw.py',
    '../_base_/seg_runtime.py',
]
model = dict(
    decode_head=dict(num_classes=2), auxiliary_head=dict(num_classes=2))
default_hooks = dict(
    checkpoint=dict(interval=4000, save_best='IoU.road', rule='greater'))
