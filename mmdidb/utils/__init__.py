"""Helpers at the bottom of the package: they import nothing from mmdidb.

``checkpoint_sources`` checks that a config's checkpoints can be read before
anything is built; the backbones' ``Pretrained`` initialisation and
``tools/train.py`` use it.
"""
