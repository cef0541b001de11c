# The full-precision reference of upernet_didbvit.py: mmpretrain's DeiT-Small
# (the topology, state-dict keys and checkpoint the binary model uses) with
# the same neck, heads and inference.
_base_ = ['./upernet_didbvit.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='deit-small',
        img_size=(512, 512),
        patch_size=16,
        out_indices=(2, 5, 8, 11),
        out_type='featmap',
        drop_path_rate=0.1,
        final_norm=True,
        interpolate_mode='bicubic',
        init_cfg=dict(
            type='Pretrained', checkpoint={{_base_.deit_checkpoint}},
            prefix='backbone.')))
