import importlib.util

from .cifar100 import LocalCIFAR100
from .fashion_mnist import LocalFashionMNIST
from .tiny_imagenet import TinyImageNet
from .transforms import ToGrayscale

__all__ = ['LocalFashionMNIST', 'LocalCIFAR100', 'TinyImageNet', 'ToGrayscale']

# the segmentation datasets need mmseg (absent e.g. on a bare GPU machine
# that only runs the classification / deploy checks)
if importlib.util.find_spec('mmseg') is not None:
    from .binary_seg import BinarySegDataset  # noqa: F401
    from .nuclei import NucleiDataset
    from .rslvf import RSLVFDataset
    from .seg_checks import BadSegSampleError
    from .transforms import CheckSegSample

    __all__ += [
        'BinarySegDataset', 'NucleiDataset', 'RSLVFDataset',
        'BadSegSampleError', 'CheckSegSample'
    ]
