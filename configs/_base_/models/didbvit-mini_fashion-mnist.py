# The quick-start DIDB-ViT: 4 layers, 64 channels, 2 heads on 28x28 grey
# images cut into 7x7 patches (a 4x4 patch grid + the class token).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DIDBViT',
        arch='mini',
        img_size=28,
        patch_size=7,
        in_channels=1,
        drop_path_rate=0.0,
        # the DIDB switches (all on = DIDB-ViT)
        diba=True,
        # DIBA without its self term (1 - A·1) ⊙ V at this scale: measured
        # better than the paper's formula on the 7x7-grid benchmark (3 seeds
        # each; docs/method.md, choice 22). 'paper' is the reference.
        diba_self_term='off',
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
