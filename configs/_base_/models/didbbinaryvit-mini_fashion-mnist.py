# DIDBBinaryViT on 28x28 grey images: 4x4 patches (a 7x7 grid), 2 stages of
# 32/64 channels (keys/values pooled 2x2 in the first), pooling branches and
# layer scales as BinaryViT; the backbone averages the last stage's tokens.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DIDBBinaryViT',
        arch='mini',
        img_size=28,
        patch_size=4,
        in_channels=1,
        out_indices=(1, ),
        out_type='avg_featmap',
        drop_path_rate=0.0,
        # the DIDB switches (all on = DIDB-ViT's modules)
        diba=True,
        theta=3,
        hfsc=True,
        hfsc_alpha=0.9,
        irprelu=True,
        binary_weights=True,
        binary_acts=True),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
