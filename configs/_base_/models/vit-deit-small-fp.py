# Full-precision DeiT-Small (mmpretrain's VisionTransformer), the teacher of
# the distilled DIDB-ViT-Small configs and their initialisation. Same model
# as mmpretrain's configs/deit/deit-small_4xb256_in1k.py, so its model-zoo
# weights load into it.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=.02),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
    ],
    # DeiT's batch augmentation (needs data_preprocessor.num_classes)
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)
