# Naive binary DIDBSwin: the same model with every DIDB module off (plain
# binarized A·V, plain Q·Kᵀ, RPReLU).
_base_ = ['./swin-mini_fashion-mnist.py']
model = dict(backbone=dict(diba=False, hfsc=False, irprelu=False))
