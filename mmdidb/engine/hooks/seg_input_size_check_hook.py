"""Checking a segmentation config's input sizes against the patch size."""
import logging
from typing import Iterator, List, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _pair(value) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _pipelines(dataset, path: str) -> Iterator[Tuple[str, list]]:
    """Every ``pipeline`` of a dataset config, wrappers included."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('pipeline'), (list, tuple)):
        yield f'{path}.pipeline', dataset['pipeline']
    inner = dataset.get('dataset')
    if isinstance(inner, dict):
        yield from _pipelines(inner, f'{path}.dataset')
    for i, item in enumerate(dataset.get('datasets') or []):
        yield from _pipelines(item, f'{path}.datasets.{i}')


def size_problems(cfg, patch_size: int) -> Tuple[List[str], List[str]]:
    """Config fields whose sizes ``patch_size`` does not divide.

    Args:
        cfg (Config | dict): The whole config.
        patch_size (int): The backbone's patch size.

    Returns:
        tuple[list[str], list[str]]: Errors (sizes that cannot work) and
        warnings (test images of any size reaching the backbone unpadded).
    """
    errors, warnings = [], []

    def check(field: str, value) -> None:
        if value is None:
            return
        if any(int(v) % patch_size for v in _pair(value)):
            errors.append(f'{field}={tuple(_pair(value))}')

    for loader in LOADERS:
        dataset = (cfg.get(loader) or {}).get('dataset')
        for path, pipeline in _pipelines(dataset, f'{loader}.dataset'):
            for i, transform in enumerate(pipeline):
                if isinstance(transform, dict) and \
                        transform.get('type') == 'RandomCrop':
                    check(f'{path}.{i}.crop_size (RandomCrop)',
                          transform.get('crop_size'))
    model = cfg.get('model') or {}
    preprocessor = model.get('data_preprocessor') or {}
    check('model.data_preprocessor.size', preprocessor.get('size'))
    if preprocessor.get('size_divisor'):
        check('model.data_preprocessor.size_divisor',
              preprocessor['size_divisor'])
    test_pad = preprocessor.get('test_cfg') or {}
    check('model.data_preprocessor.test_cfg.size', test_pad.get('size'))
    if test_pad.get('size_divisor'):
        check('model.data_preprocessor.test_cfg.size_divisor',
              test_pad['size_divisor'])
    test_cfg = model.get('test_cfg') or {}
    if test_cfg.get('mode') == 'slide':
        check('model.test_cfg.crop_size (slide inference)',
              test_cfg.get('crop_size'))
    has_eval = cfg.get('val_dataloader') or cfg.get('test_dataloader')
    if has_eval and not (test_pad.get('size') or test_pad.get('size_divisor')):
        warnings.append(
            'model.data_preprocessor.test_cfg pads nothing, so a validation '
            'or test image whose size is not a multiple of the patch size '
            f'({patch_size}) will fail; set model.data_preprocessor.test_cfg'
            f'=dict(size_divisor={patch_size}) unless every image fits')
    return errors, warnings


@HOOKS.register_module()
class SegInputSizeCheckHook(Hook):
    """Refuse sizes the backbone's patch size does not divide, up front.

    With ``pad_to_patch=False`` the DIDB backbones work on whole patches
    only (by default they pad the bottom/right corner, as mmseg's ViT and
    Swin do, and this hook has nothing to check). Training crops, the
    padding of the data preprocessor and sliding-window crops must
    therefore be multiples of the patch size. This hook checks them in
    ``before_run``, before the first iteration, and names each
    offending config field; otherwise the error would come at the first
    iteration or, for test sizes, at the first validation, possibly hours
    into a run. Backbones without a ``patch_size`` attribute are not checked.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        patch_size = getattr(getattr(model, 'backbone', None), 'patch_size',
                             None)
        if not isinstance(patch_size, int) or \
                getattr(model.backbone, 'pad_to_patch', False):
            return
        errors, warnings = size_problems(runner.cfg, patch_size)
        for warning in warnings:
            print_log(warning, logger='current', level=logging.WARNING)
        if errors:
            raise ValueError(
                f'the backbone ({type(model.backbone).__name__}) has '
                f'patch_size={patch_size}, which does not divide: '
                + '; '.join(errors) + '. Use multiples of the patch size.')
