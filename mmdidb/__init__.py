"""mmdidb: DIDB-ViT, a fully binary Vision Transformer, for OpenMMLab.

Importing the package first applies the compatibility fixes of
:mod:`mmdidb.compat` (they must run before torchvision, mmcv.ops or mmseg are
imported), then registers the models, hooks and datasets when the OpenMMLab
packages are installed. ``mmdidb.ops`` needs only torch (and CuPy on GPU).
"""
from . import compat
from .version import __version__  # noqa: F401

compat.apply_all()

if compat.openmmlab_available():
    # importing registers the modules
    from . import datasets, engine, models  # noqa: F401,E402
    if compat._installed('mmseg'):
        from . import evaluation  # noqa: F401
