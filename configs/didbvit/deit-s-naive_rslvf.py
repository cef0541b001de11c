# Naive binary baseline for RS-LVF: every DIDB module off.
_base_ = ['./deit-s_rslvf.py']
model = dict(backbone=dict(diba=False, hfsc=False, irprelu=False))
