# Naive binary baseline: the same W1A1 DeiT-Small UPerNet with every DIDB
# module off (plain binary attention, plain Q·Kᵀ, RPReLU).
_base_ = ['./deit-s_ade20k.py']
model = dict(backbone=dict(diba=False, hfsc=False, irprelu=False))
