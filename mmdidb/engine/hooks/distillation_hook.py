"""Knowledge distillation from a frozen full-precision teacher."""
import copy
import os.path as osp
from typing import Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, DefaultScope
from mmengine.runner.checkpoint import load_checkpoint
from mmpretrain.registry import MODELS
from torch import nn

from mmdidb.models.classifiers import DistilledImageClassifier
from mmdidb.models.classifiers.distilled_image_classifier import check_distillation_args

#: Relative teacher config paths are also looked up here (the repository
#: root of an editable install), so configs work from any directory.
_REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


@HOOKS.register_module()
class DistillationHook(Hook):
    """Build, load and freeze a teacher, and distil it into the student.

    The student must be a :class:`DistilledImageClassifier`; its training
    loss becomes ``(1 - loss_weight) · CE + loss_weight · KD``, where KD is
    the soft cross-entropy (at temperature ``tau``) to the teacher's softmax
    on the same preprocessed batch. Configure it as::

        model = dict(type='DistilledImageClassifier', ...)
        custom_hooks = [
            dict(type='DistillationHook',
                 teacher='configs/didbvit/deit-s-fp_cifar100.py',
                 loss_weight=0.9, tau=1.0),
        ]
        teacher_checkpoint = 'work_dirs/deit-s-fp_cifar100/epoch_300.pth'

    The teacher's weights are the config's top-level ``teacher_checkpoint``
    (beside ``load_from``, and overridden the same way: ``--cfg-options
    teacher_checkpoint=PATH``) unless the hook is given its own.

    The teacher is built and loaded in ``before_train`` (``tools/test.py``
    with the same config does not need the teacher checkpoint), in eval
    mode, without gradients, on the student's device, and kept outside the
    student's module tree: it is not in the optimizer, not wrapped by DDP
    and not in saved checkpoints (a checkpoint's ``meta`` records where the
    teacher came from). Every process of a distributed run loads its own
    copy. Under AMP the teacher runs in the student's autocast context.

    Bad settings fail before any training step, naming the field:
    ``loss_weight`` outside [0, 1] or ``tau`` <= 0 when the hook is built; a
    missing ``teacher`` config or ``teacher_checkpoint``, a teacher with
    another number of classes or another input normalisation than the
    student, or a student that is not a ``DistilledImageClassifier`` when
    training starts.

    Args:
        teacher (str | dict): A config file whose ``model`` is the teacher
            (any mmpretrain classifier; its top-level ``data_preprocessor``
            is used as mmengine's Runner does; ``mmpretrain::`` paths
            work), or the model config dict itself.
        teacher_checkpoint (str, optional): The teacher's weights: a local
            file or a URL. Defaults to None: the runner config's top-level
            ``teacher_checkpoint``. One of the two is required: a random
            teacher teaches nothing.
        loss_weight (float): Weight ``w`` of KD, in [0, 1]. Defaults to 0.9
            (the paper's ``0.1 · CE + 0.9 · KD``).
        tau (float): Distillation temperature. Defaults to 1.
        strict (bool): Whether every teacher weight must be in the
            checkpoint and vice versa. Defaults to True.
    """

    priority = 'NORMAL'

    def __init__(self,
                 teacher: Union[str, dict],
                 teacher_checkpoint: Optional[str] = None,
                 loss_weight: float = 0.9,
                 tau: float = 1.0,
                 strict: bool = True):
        check_distillation_args(loss_weight, tau)
        if not isinstance(teacher, (str, dict)) or not teacher:
            raise TypeError(
                'DistillationHook: teacher must be a config file path or a '
                f'model config dict, got {teacher!r}')
        if teacher_checkpoint is not None:
            _check_checkpoint_arg(teacher_checkpoint)
        self.teacher = teacher
        self.teacher_checkpoint = teacher_checkpoint
        self.loss_weight = float(loss_weight)
        self.tau = float(tau)
        self.strict = strict

    def before_train(self, runner) -> None:
        student = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if not isinstance(student, DistilledImageClassifier):
            raise TypeError(
                'DistillationHook needs model.type='
                f"'DistilledImageClassifier', got {type(student).__name__}")
        if self.teacher_checkpoint is None:
            self.teacher_checkpoint = runner.cfg.get('teacher_checkpoint')
            _check_checkpoint_arg(self.teacher_checkpoint)
        _check_checkpoint_exists(self.teacher_checkpoint)
        # the teacher is an mmpretrain classifier whatever scope is current
        # (a segmentation runner in the same process leaves 'mmseg' behind)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            teacher = MODELS.build(teacher_model_cfg(self.teacher))
        _check_same_task(teacher, student, self.teacher)
        load_checkpoint(teacher, self.teacher_checkpoint, map_location='cpu',
                        strict=self.strict, logger='current')
        device = next(student.parameters()).device
        student.set_teacher(teacher.to(device), self.loss_weight, self.tau)
        runner.logger.info(
            'DistillationHook: '
            f'{type(getattr(teacher, "backbone", teacher)).__name__} teacher '
            f'from {self.teacher_checkpoint}, loss = '
            f'{1 - self.loss_weight:g}·CE + {self.loss_weight:g}·KD '
            f'(tau={self.tau:g})')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # The teacher's weights are never saved (they are outside the
        # student's state_dict); record where they came from instead.
        # Plain strings and floats: weights_only loading accepts them.
        checkpoint.setdefault('meta', {})['distillation'] = dict(
            teacher=self.teacher if isinstance(self.teacher, str) else
            str(self.teacher.get('type', 'dict')),
            teacher_checkpoint=self.teacher_checkpoint,
            loss_weight=self.loss_weight,
            tau=self.tau)


def _check_checkpoint_arg(path) -> None:
    if not isinstance(path, str) or not path:
        raise ValueError(
            'DistillationHook: teacher_checkpoint must be the path or URL of '
            f'the trained teacher, got {path!r} (set the config\'s top-level '
            'teacher_checkpoint, e.g. --cfg-options teacher_checkpoint=PATH)')


def _check_checkpoint_exists(path: str) -> None:
    if '://' in path:  # URLs are fetched (and checked) by load_checkpoint
        return
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'DistillationHook: teacher_checkpoint={path!r} does not exist. '
            'Train the teacher config first (or download its weights) and '
            'point teacher_checkpoint at the file, e.g. --cfg-options '
            'teacher_checkpoint=PATH')


def teacher_model_cfg(teacher: Union[str, dict]) -> dict:
    """The teacher's model config, from a config file or a dict.

    Args:
        teacher (str | dict): :class:`DistillationHook`'s ``teacher``.

    Returns:
        dict: A model config for mmpretrain's ``MODELS.build``; from a
        file, its ``model`` with the file's top-level ``data_preprocessor``.
    """
    if isinstance(teacher, dict):
        return copy.deepcopy(dict(teacher))
    path = teacher
    if '::' not in path and not osp.isfile(path) and not osp.isabs(path) \
            and osp.isfile(osp.join(_REPO_ROOT, path)):
        path = osp.join(_REPO_ROOT, path)
    if '::' not in path and not osp.isfile(path):
        raise FileNotFoundError(
            f'DistillationHook: teacher={teacher!r} is not a config file '
            '(paths are relative to the working directory) and not a model '
            'config dict')
    cfg = Config.fromfile(path)
    if not isinstance(cfg.get('model'), dict):
        raise ValueError(f'DistillationHook: teacher config {teacher!r} has '
                         'no model')
    model = copy.deepcopy(cfg.model)
    if isinstance(model, ConfigDict):
        model = model.to_dict()
    if cfg.get('data_preprocessor') is not None:
        # as mmengine's Runner does with a config's top-level field
        model.setdefault('data_preprocessor', cfg.data_preprocessor.to_dict())
    return model


def _check_same_task(teacher: nn.Module, student: nn.Module,
                     name: Union[str, dict]) -> None:
    """Same classes and the same input normalisation, or a clear error."""
    where = name if isinstance(name, str) else 'the teacher model dict'
    t_classes = getattr(getattr(teacher, 'head', None), 'num_classes', None)
    s_classes = student.head.num_classes
    if t_classes != s_classes:
        raise ValueError(
            f'DistillationHook: the teacher ({where}) predicts {t_classes} '
            f'classes, the student {s_classes}: head.num_classes must match')
    t_pre = getattr(teacher, 'data_preprocessor', None)
    if not getattr(t_pre, '_enable_normalize', False):
        return  # the teacher config says nothing about its normalisation
    s_pre = student.data_preprocessor
    same = getattr(s_pre, '_enable_normalize', False) and \
        torch.allclose(t_pre.mean, s_pre.mean) and \
        torch.allclose(t_pre.std, s_pre.std) and \
        bool(getattr(t_pre, 'to_rgb', False)) == \
        bool(getattr(s_pre, 'to_rgb', False))
    if not same:
        raise ValueError(
            f'DistillationHook: the teacher ({where}) normalises its inputs '
            'with another data_preprocessor (mean, std, to_rgb) than the '
            'student; the teacher sees the student\'s preprocessed batch, so '
            'they must agree')
