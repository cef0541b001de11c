import importlib.util

from .grayscale import ToGrayscale

__all__ = ['ToGrayscale']

# the segmentation checks need mmseg
if importlib.util.find_spec('mmseg') is not None:
    from .check_seg_sample import CheckSegSample  # noqa: F401

    __all__ += ['CheckSegSample']
