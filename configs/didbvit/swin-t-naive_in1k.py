# Naive binary Swin-T baseline: the single-stage config (same init, teacher,
# schedule) with every DIDB module off.
_base_ = ['./swin-t_in1k.py']
model = dict(backbone=dict(diba=False, hfsc=False, irprelu=False))
