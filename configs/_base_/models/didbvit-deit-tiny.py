# DIDB-ViT on DeiT-Tiny: the DeiT-Small model with the tiny arch.
_base_ = ['./didbvit-deit-small.py']
model = dict(backbone=dict(arch='deit-tiny'), head=dict(in_channels=192))
