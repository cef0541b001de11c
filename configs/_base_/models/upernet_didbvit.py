# UPerNet on the DeiT-Small DIDB-ViT, as mmseg's ViT-UPerNet configs build
# it: four levels of the plain ViT (layers 3, 6, 9, 12) turned into a feature
# pyramid (strides 4, 8, 16, 32) by MultiLevelNeck, an UPerHead and an FCN
# auxiliary head on the last level. The heads are full precision, as every
# binary segmentation model's decoder is.
# SyncBN in the heads: mmengine reverts it to BN in single-process runs and
# mmdidb.compat does so in CPU distributed runs.
norm_cfg = dict(type='SyncBN', requires_grad=True)
embed_dims = 384
# A full-precision DeiT-Small (mmpretrain format) initialises the binary
# backbone: the fused qkv is split and the FFN keys are renamed on load.
deit_checkpoint = ('https://download.openmmlab.com/mmclassification/v0/deit/'
                   'deit-small_pt-4xb256_in1k_20220218-9425b9bb.pth')
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    # training batches are padded to the crop size (512x512, the dataset's
    # crop_size); test images to a
    # multiple of the patch size (the backbone needs whole patches)
    size=(512, 512),
    test_cfg=dict(size_divisor=16))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DIDBViT',
        arch='deit-small',
        img_size=(512, 512),
        patch_size=16,
        in_channels=3,
        out_indices=(2, 5, 8, 11),
        out_type='featmap',
        drop_path_rate=0.1,
        final_norm=True,
        interpolate_mode='bicubic',
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
        pad_to_patch=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=deit_checkpoint,
            prefix='backbone.')),
    neck=dict(
        type='MultiLevelNeck',
        in_channels=[embed_dims] * 4,
        out_channels=embed_dims,
        scales=[4, 2, 1, 0.5]),
    decode_head=dict(
        type='UPerHead',
        in_channels=[embed_dims] * 4,
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=embed_dims,
        in_index=3,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    # Sliding 512x512 windows keep the token count of training: the
    # attention binarizer's threshold (alpha/2 on softmax rows) is learned
    # for that count, and softmax values shrink as the count grows.
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
