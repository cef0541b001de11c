# Full-precision baseline of the nuclei demo: mmpretrain's ViT with the same
# mini arch, patches and heads, trained the same way.
_base_ = ['./vit-mini_nuclei.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch=dict(embed_dims=64, num_layers=4, num_heads=2,
                  feedforward_channels=256),
        img_size=(64, 64),
        patch_size=8,
        in_channels=1,
        out_indices=(0, 1, 2, 3),
        out_type='featmap',
        drop_path_rate=0.0))
