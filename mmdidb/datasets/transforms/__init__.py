from .check_seg_sample import CheckSegSample

__all__ = ['CheckSegSample']
