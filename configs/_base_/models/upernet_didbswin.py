# UPerNet on DIDBSwin-T, as mmseg's Swin-UPerNet configs build it: the four
# stage outputs (strides 4, 8, 16, 32; 96-768 channels) feed an UPerHead
# directly, an FCN auxiliary head reads stage 3. Heads, preprocessing and
# sliding-window inference as upernet_didbvit.py.
_base_ = ['./upernet_didbvit.py']
swin_checkpoint = ('https://download.openmmlab.com/mmclassification/v0/'
                   'swin-transformer/'
                   'swin_tiny_224_b16x64_300e_imagenet_20210616_090925-66df6be6.pth')
stage_channels = [96, 192, 384, 768]
model = dict(
    # whole windows at the last stage: 32 px
    data_preprocessor=dict(test_cfg=dict(size_divisor=32)),
    backbone=dict(
        _delete_=True,
        type='DIDBSwin',
        arch='tiny',
        img_size=(512, 512),
        patch_size=4,
        window_size=7,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        # maps smaller than a window (small test images) are padded
        pad_small_map=True,
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
            type='Pretrained', checkpoint=swin_checkpoint,
            prefix='backbone.')),
    neck=None,
    decode_head=dict(in_channels=stage_channels),
    auxiliary_head=dict(in_channels=stage_channels[2], in_index=2))
