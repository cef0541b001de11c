# DIDB-ViT on DeiT-Tiny (224 px, 16 px patches), trained with distillation:
# DistilledImageClassifier adds the KD term from the teacher that the
# DistillationHook of the top-level config attaches.
model = dict(
    type='DistilledImageClassifier',
    backbone=dict(
        type='DIDBViT',
        arch='deit-tiny',
        img_size=224,
        patch_size=16,
        # binary students are trained without stochastic depth (BinaryViT,
        # BHViT): they underfit rather than overfit
        drop_path_rate=0.0,
        # the DIDB switches (all on = DIDB-ViT; naive configs turn them off)
        diba=True,
        theta=3,
        hfsc=True,
        hfsc_alpha=0.9,
        irprelu=True,
        # stage-1 configs set binary_weights=False (W32A1)
        binary_weights=True,
        binary_acts=True),
    neck=None,
    # DeiT's head, so that a DeiT checkpoint (student init) loads into it
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=1000,
        in_channels=192,
        # the CE part of (1 - w)·CE + w·KD; labels are hard (no mixup)
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
