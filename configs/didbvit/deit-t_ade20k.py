# DIDB-ViT DeiT-Tiny (W1A1) + UPerNet on ADE20K: as deit-s_ade20k.py with
# the tiny arch (192 channels) and a full-precision DeiT-Tiny to start from.
_base_ = ['./deit-s_ade20k.py']
embed_dims = 192
model = dict(
    backbone=dict(
        arch='deit-tiny',
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'deit/deit-tiny_pt-4xb256_in1k_20220218-13b382a0.pth')),
    neck=dict(in_channels=[embed_dims] * 4, out_channels=embed_dims),
    decode_head=dict(in_channels=[embed_dims] * 4),
    auxiliary_head=dict(in_channels=embed_dims))
