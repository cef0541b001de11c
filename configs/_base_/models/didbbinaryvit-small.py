# DIDBBinaryViT on BinaryViT-Small (Le & Li 2023: 4 stages of 64-128-256-512
# channels, 4 px patches, keys/values pooled 8x8 and 4x4 in stages 1-2),
# trained with distillation (the DistillationHook of the top-level config).
model = dict(
    type='DistilledImageClassifier',
    backbone=dict(
        type='DIDBBinaryViT',
        arch='small',
        img_size=224,
        patch_size=4,
        out_indices=(3, ),
        out_type='avg_featmap',
        # BinaryViT's pooling branches (3 and 5) and layer scales
        pool_kernels=(3, 5),
        layer_scale=0.1,
        drop_path_rate=0.0,
        # the DIDB switches (all on; naive configs turn them off)
        diba=True,
        theta=3,
        hfsc=True,
        hfsc_alpha=0.9,
        irprelu=True,
        # stage-1 configs set binary_weights=False (W32A1)
        binary_weights=True,
        binary_acts=True),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
