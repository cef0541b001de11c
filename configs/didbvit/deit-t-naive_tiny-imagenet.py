# Naive binary baseline: the single-stage W1A1 config (same init, teacher
# and schedule) with every DIDB module off: plain binarized A·V, plain Q·Kᵀ,
# RPReLU.
_base_ = ['./deit-t_tiny-imagenet.py']
model = dict(backbone=dict(diba=False, hfsc=False, irprelu=False))
