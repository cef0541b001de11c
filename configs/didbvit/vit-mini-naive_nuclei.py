# Naive binary baseline of the nuclei demo: every DIDB module off.
_base_ = ['./vit-mini_nuclei.py']
model = dict(backbone=dict(diba=False, hfsc=False, irprelu=False))
