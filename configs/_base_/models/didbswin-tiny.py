# DIDBSwin on Swin-Tiny (224 px, 4 px patches, windows of 7), trained with
# distillation: DistilledImageClassifier adds the KD term from the teacher
# that the DistillationHook of the top-level config attaches.
model = dict(
    type='DistilledImageClassifier',
    backbone=dict(
        type='DIDBSwin',
        arch='tiny',
        img_size=224,
        patch_size=4,
        window_size=7,
        out_indices=(3, ),
        # binary students are trained without stochastic depth (BinaryViT,
        # BHViT): they underfit rather than overfit
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
    neck=dict(type='GlobalAveragePooling'),
    # Swin's head, so that a Swin checkpoint (student init) loads into it
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        # the CE part of (1 - w)·CE + w·KD; labels are hard (no mixup)
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
