"""Two-class (background / foreground) segmentation datasets."""
import logging
from typing import Sequence

from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .seg_checks import (
    BadSegSampleError,
    check_on_bad_sample,
    format_problems,
    pair_problems,
)

VALIDATE = ('full', 'files', 'none')


@DATASETS.register_module()
class BinarySegDataset(BaseSegDataset):
    """Background / foreground segmentation from an image and a label folder.

    The layout is mmseg's (``data_root`` + ``data_prefix``): images
    ``{img_path}/NAME{img_suffix}`` and labels
    ``{seg_map_path}/NAME{seg_map_suffix}``, sub-folders allowed; or only
    the NAMEs listed in ``ann_file``, one a line.

    **Labels.** Binary masks come as 0/1 or as 0/255 images. Every value in
    ``foreground_values`` (default 1 and 255) becomes class 1 through mmseg's
    ``label_map`` (applied by ``LoadAnnotations``, so mmseg's stock pipeline
    and tools see 0/1 labels); 0 is background. With the default, 255 is
    therefore foreground, not mmseg's ignore index; set
    ``foreground_values=(1, )`` for 0/1 masks that mark ignored pixels 255.

    **Bad samples.** When the dataset is built, every pair is checked before
    any training starts: images without a label, labels without an image,
    unreadable files and image/label size mismatches (``validate='files'``
    reads only the file headers), and with ``validate='full'`` (default)
    also label values other than 0, ``foreground_values`` and the ignore
    index (this reads every label once). ``on_bad_sample='raise'`` stops
    there with every problem listed, each naming its file; ``'skip'`` drops
    the bad pairs with a warning.

    Args:
        img_suffix (str): Image suffix. Defaults to '.png'.
        seg_map_suffix (str): Label suffix. Defaults to '.png'.
        foreground_values (Sequence[int]): Raw label values meaning the
            foreground class. Defaults to (1, 255).
        validate (str): 'full', 'files' or 'none'. Defaults to 'full'.
        on_bad_sample (str): 'raise' or 'skip'. Defaults to 'raise'.
        lazy_init (bool): As for mmengine's ``BaseDataset``.
        **kwargs: Other arguments of mmseg's :class:`BaseSegDataset`.
    """
    METAINFO = dict(
        classes=('background', 'foreground'),
        palette=[[0, 0, 0], [255, 0, 0]])

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 foreground_values: Sequence[int] = (1, 255),
                 validate: str = 'full',
                 on_bad_sample: str = 'raise',
                 lazy_init: bool = False,
                 **kwargs):
        name = type(self).__name__
        if kwargs.get('reduce_zero_label'):
            raise ValueError(f'{name}: reduce_zero_label must be False; 0 is '
                             'the background class')
        values = tuple(int(v) for v in foreground_values)
        if not values or 0 in values or \
                any(not 0 < v < 256 for v in values):
            raise ValueError(f'{name}: foreground_values must be label values '
                             f'in 1..255 (0 is background), got '
                             f'{foreground_values!r}')
        if validate not in VALIDATE:
            raise ValueError(f'{name}: validate must be one of {VALIDATE}, '
                             f'got {validate!r}')
        self.foreground_values = values
        self.validate = validate
        self.on_bad_sample = check_on_bad_sample(on_bad_sample)
        # lazily, so that the label map below is in place before the data
        # list (which carries it to LoadAnnotations) is made
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            lazy_init=True,
            **kwargs)
        self.label_map = {v: 1 for v in values if v != 1} or None
        self._metainfo.update(label_map=self.label_map)
        if not lazy_init:
            self.full_init()

    def allowed_raw_values(self) -> set:
        """Label values a file may hold before ``label_map``."""
        return {0, self.ignore_index, *self.foreground_values}

    def filter_data(self) -> list:
        """Check every image/label pair; raise, or drop the bad ones."""
        data_list = super().filter_data()
        if self.validate == 'none':
            return data_list
        # with an ann_file (a split list) the other labels are not orphans
        ann_dir = None if self.ann_file else self.data_prefix.get(
            'seg_map_path')
        problems = pair_problems(
            data_list,
            ann_dir,
            self.seg_map_suffix,
            self.allowed_raw_values() if self.validate == 'full' else None)
        name = type(self).__name__
        if problems and self.on_bad_sample == 'raise':
            raise BadSegSampleError(
                f'{name}: {len(problems)} bad image/label pair(s) in '
                f'data_root={self.data_root!r}, data_prefix='
                f'{self.data_prefix!r}:\n{format_problems(problems)}\n'
                "Fix or remove these files, or set on_bad_sample='skip' to "
                'leave them out.')
        if problems:
            print_log(
                f'{name}: leaving out {len(problems)} bad image/label '
                f'pair(s):\n{format_problems(problems)}',
                logger='current',
                level=logging.WARNING)
            bad = {index for index, _ in problems}
            data_list = [d for i, d in enumerate(data_list) if i not in bad]
        if not data_list:
            raise BadSegSampleError(
                f'{name}: no usable image/label pair in data_root='
                f'{self.data_root!r}, data_prefix={self.data_prefix!r} '
                f'(img_suffix={self.img_suffix!r}, seg_map_suffix='
                f'{self.seg_map_suffix!r})')
        return data_list
