# Naive binary baseline: the same W1A1 model with every DIDB module off
# (plain binary attention, plain Q·Kᵀ, RPReLU).
_base_ = ['./vit-mini_fashion-mnist.py']
model = dict(backbone=dict(diba=False, hfsc=False, irprelu=False))
