# Full-precision baseline of the same size: mmpretrain's own ViT (DeiT
# topology) with the quick-start arch.
_base_ = ['./vit-mini_fashion-mnist.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch=dict(embed_dims=64, num_layers=4, num_heads=2,
                  feedforward_channels=256),
        img_size=28,
        patch_size=7,
        in_channels=1,
        drop_path_rate=0.0))
