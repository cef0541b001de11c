"""Nuclei segmentation tiles (two classes: background, nucleus)."""
from mmseg.registry import DATASETS

from .binary_seg import BinarySegDataset


@DATASETS.register_module()
class NucleiDataset(BinarySegDataset):
    """Fluorescence nuclei: background (0) and nucleus (1).

    Made by ``tools/dataset_converters/prepare_nuclei.py`` from the one real
    annotated image that the ``stardist`` package ships, in the layout::

        data/nuclei/
        ├── images/{train,val}/NAME.png   # 8-bit grey tiles
        └── labels/{train,val}/NAME.png   # 0 = background, 255 = nucleus

    Everything else is as for :class:`BinarySegDataset` (and RS-LVF).
    """
    METAINFO = dict(
        classes=('background', 'nucleus'),
        palette=[[0, 0, 0], [0, 255, 0]])
