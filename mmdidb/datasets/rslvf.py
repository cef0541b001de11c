"""RS-LVF aerial road segmentation (two classes: background, road)."""
from mmseg.registry import DATASETS

from .binary_seg import BinarySegDataset


@DATASETS.register_module()
class RSLVFDataset(BinarySegDataset):
    """RS-LVF road extraction: background (0) and road (1).

    The layout the configs assume (every part overridable in the config:
    ``data_root``, ``data_prefix``, ``img_suffix``, ``seg_map_suffix``)::

        data/rs-lvf/
        ├── images/{train,val,test}/NAME.png    # RGB aerial tiles
        └── labels/{train,val,test}/NAME.png    # 0 = background,
                                                # 1 or 255 = road

    Road masks given as 0/1 or 0/255 both work (``foreground_values``); see
    :class:`BinarySegDataset` for the label mapping and the checks run when
    the dataset is built.
    """
    METAINFO = dict(
        classes=('background', 'road'),
        palette=[[0, 0, 0], [255, 0, 0]])
