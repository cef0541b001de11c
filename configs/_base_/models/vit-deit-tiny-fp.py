# Full-precision DeiT-Tiny (mmpretrain's VisionTransformer): the teacher and
# initialisation of the DIDB-ViT-Tiny configs. Same model as mmpretrain's
# configs/deit/deit-tiny_4xb256_in1k.py, so its model-zoo weights load.
_base_ = ['./vit-deit-small-fp.py']
model = dict(backbone=dict(arch='deit-tiny'), head=dict(in_channels=192))
