# Naive binary BinaryViT-S baseline: the single-stage config (same init,
# teacher, schedule) with every DIDB module off: BinaryViT's own pyramid,
# pooling branches and layer scales with plain binary attention and RPReLU.
_base_ = ['./binaryvit-s_in1k.py']
model = dict(backbone=dict(diba=False, hfsc=False, irprelu=False))
