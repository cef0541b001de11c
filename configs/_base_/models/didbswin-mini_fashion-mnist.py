# DIDBSwin on 28x28 grey images: 4x4 patches (a 7x7 grid), windows of 4
# (padded to 8x8, shifted in every second block), 2 stages of 32/64
# channels; global average pooling of the last stage feeds the head.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DIDBSwin',
        arch='mini',
        img_size=28,
        patch_size=4,
        in_channels=1,
        window_size=4,
        out_indices=(1, ),
        drop_path_rate=0.0,
        # the DIDB switches (all on = DIDB-ViT's modules)
        diba=True,
        theta=3,
        hfsc=True,
        hfsc_alpha=0.9,
        irprelu=True,
        binary_weights=True,
        binary_acts=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
