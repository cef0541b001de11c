# Naive binary baseline of the nuclei demo: every DIDB module off.
_base_ = ['./didbvit-mini_nuclei.py']
model = dict(backbone=dict(diba=False, hfsc=False, irprelu=False))
