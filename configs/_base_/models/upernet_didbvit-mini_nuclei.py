# A small UPerNet for 64x64 grey tiles: the mini DIDB-ViT (4 layers, 64
# channels, 2 heads) on 8x8 patches (an 8x8 grid + the class token), every
# layer fed to MultiLevelNeck (strides 2, 4, 8, 16), a 64-channel UPerHead
# and an FCN auxiliary head on the last level.
norm_cfg = dict(type='SyncBN', requires_grad=True)
embed_dims = 64
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # grey values of the training tiles made by prepare_nuclei.py
    mean=[31.49],
    std=[31.11],
    bgr_to_rgb=False,
    pad_val=0,
    seg_pad_val=255,
    size=(64, 64),
    test_cfg=dict(size_divisor=8))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DIDBViT',
        arch='mini',
        img_size=(64, 64),
        patch_size=8,
        in_channels=1,
        out_indices=(0, 1, 2, 3),
        out_type='featmap',
        drop_path_rate=0.0,
        # the DIDB switches (all on = DIDB-ViT)
        diba=True,
        theta=3,
        hfsc=True,
        hfsc_alpha=0.9,
        irprelu=True,
        binary_weights=True,
        binary_acts=True,
        # the data preprocessor pads to whole patches (size_divisor), so
        # the strict mode lets SegInputSizeCheckHook refuse, before the
        # first iteration, a crop or size the patch does not divide (stock
        # mmseg configs rely on the default, pad_to_patch=True)
        pad_to_patch=False),
    neck=dict(
        type='MultiLevelNeck',
        in_channels=[embed_dims] * 4,
        out_channels=embed_dims,
        scales=[4, 2, 1, 0.5]),
    decode_head=dict(
        type='UPerHead',
        in_channels=[embed_dims] * 4,
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 4),
        channels=64,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=embed_dims,
        in_index=3,
        channels=32,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    # the tiles are the training size: whole-tile inference
    test_cfg=dict(mode='whole'))
