"""Cheap per-sample checks of a loaded segmentation sample."""
import logging
from typing import Optional

from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS

from ..seg_checks import (
    BadSegSampleError,
    check_on_bad_sample,
    label_value_problem,
    size_problem,
)


@TRANSFORMS.register_module()
class CheckSegSample(BaseTransform):
    """Refuse (or skip) a sample whose label does not fit its image.

    Put it right after ``LoadAnnotations``. It checks that the label map has
    the image's original size (``ori_shape``, set by ``LoadImageFromFile``,
    so it also works after a test-time ``Resize``) and that every label
    value (after ``reduce_zero_label`` and ``label_map``) is a class index
    below ``num_classes`` or ``ignore_index``. Without it, such a sample is
    silently mis-cropped, or a value such as 200 stops a long run with an
    index error that names no file.

    Args:
        num_classes (int): Number of classes.
        ignore_index (int): The ignored label value. Defaults to 255.
        on_bad_sample (str): ``'raise'`` (default) raises
            :class:`BadSegSampleError` naming the label file; ``'skip'`` logs
            a warning and returns ``None``, so that a training dataset draws
            another sample (mmengine's refetch; test-mode datasets refuse
            ``None``, so validate those when the dataset is built).
    """

    def __init__(self,
                 num_classes: int,
                 ignore_index: int = 255,
                 on_bad_sample: str = 'raise'):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'CheckSegSample: num_classes must be a '
                             f'positive int, got {num_classes!r}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.on_bad_sample = check_on_bad_sample(on_bad_sample)
        self._allowed = set(range(num_classes)) | {ignore_index}

    def transform(self, results: dict) -> Optional[dict]:
        label = results['gt_seg_map']
        problem = label_value_problem(label, self._allowed)
        if problem is None and 'ori_shape' in results:
            problem = size_problem(results['ori_shape'], label.shape)
        if problem is None:
            return results
        message = (f'{results.get("seg_map_path", "<label>")}: {problem} '
                   f'(image {results.get("img_path", "<unknown>")}; values '
                   'after reduce_zero_label/label_map)')
        if self.on_bad_sample == 'raise':
            raise BadSegSampleError(
                message + ". Fix or remove the file, or set "
                "on_bad_sample='skip' to train without it.")
        print_log(f'skipping a bad sample: {message}', logger='current',
                  level=logging.WARNING)
        return None

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index}, '
                f'on_bad_sample={self.on_bad_sample!r})')
