"""An image classifier trained with knowledge distillation from a frozen teacher."""
from numbers import Real
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn


def soft_cross_entropy(student_logits: torch.Tensor,
                       teacher_logits: torch.Tensor,
                       tau: float = 1.0) -> torch.Tensor:
    """Cross-entropy of the student's softmax to the teacher's, at ``tau``.

    ``tau² · mean_n Σ_c -softmax(t/τ)_c · log_softmax(s/τ)_c``. It differs
    from ``KL(teacher || student)`` by the teacher's entropy only, which
    does not depend on the student, so the gradients are the same. The
    ``tau²`` factor (Hinton et al.) keeps the gradient scale independent of
    ``tau``. Computed in float32, also under autocast, because fp16
    log-softmax of confident teachers underflows.

    Args:
        student_logits (Tensor): (N, C) logits of the student.
        teacher_logits (Tensor): (N, C) logits of the teacher.
        tau (float): Softmax temperature. Defaults to 1.

    Returns:
        Tensor: The scalar loss, averaged over the batch.
    """
    log_p = F.log_softmax(student_logits.float() / tau, dim=-1)
    q = F.softmax(teacher_logits.float() / tau, dim=-1)
    return -(q * log_p).sum(dim=-1).mean() * tau**2


class _OutsideModuleTree:
    """Holds a module without making it a submodule of its owner.

    ``state_dict()``, ``parameters()``, ``train()``/``eval()``, ``.to()``,
    DDP and the optimizer therefore never see it. ``deepcopy`` (EMA
    models) shares it instead of copying the teacher's weights.
    """

    __slots__ = ('module', )

    def __init__(self, module: nn.Module):
        self.module = module

    def __deepcopy__(self, memo):
        return self


@MODELS.register_module()
class DistilledImageClassifier(ImageClassifier):
    """:class:`ImageClassifier` whose loss adds distillation from a teacher.

    The training loss is ``(1 - w) · CE + w · KD``: CE is the head's own
    loss (labels, mixup scores and label smoothing as the head's ``loss``
    config says) and KD is :func:`soft_cross_entropy` of the student's
    logits to the logits a frozen full-precision teacher gives for the same
    preprocessed batch (paper: ``w = 0.9``, ``tau = 1``). Both weighted terms
    are returned, so the logs show ``loss_ce`` and ``loss_kd`` beside their
    sum ``loss``.

    The teacher is attached at run time by
    :class:`~mmdidb.engine.hooks.DistillationHook` (which also builds,
    loads and freezes it), and kept outside the module tree: it is not in
    ``state_dict()`` (so not in checkpoints), not in the optimizer, not
    wrapped by DDP, and ``model.train()`` does not take it out of eval mode.
    Prediction and evaluation never use the teacher, so checkpoints of this
    model load into a plain :class:`ImageClassifier` (and back).

    The arguments are those of :class:`ImageClassifier`; the head must be a
    :class:`ClsHead` (single-label classification heads).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.head, ClsHead):
            raise TypeError(
                'DistilledImageClassifier: head must be a single-label '
                f'mmpretrain ClsHead (e.g. LinearClsHead, '
                f'VisionTransformerClsHead), got {type(self.head).__name__}')
        self._teacher = None
        self.kd_loss_weight = None
        self.kd_tau = None

    @property
    def teacher(self) -> Optional[nn.Module]:
        """The attached teacher, or None."""
        return None if self._teacher is None else self._teacher.module

    def set_teacher(self, teacher: nn.Module, loss_weight: float = 0.9,
                    tau: float = 1.0) -> None:
        """Attach a frozen teacher and the distillation weight.

        The teacher is switched to eval mode and its parameters stop
        requiring gradients here, whatever state it comes in.

        Args:
            teacher (nn.Module): A classifier whose ``forward(inputs,
                mode='tensor')`` returns logits with the student's classes.
            loss_weight (float): ``w`` in ``(1 - w) · CE + w · KD``, in
                [0, 1]. Defaults to 0.9.
            tau (float): Distillation temperature, > 0. Defaults to 1.
        """
        check_distillation_args(loss_weight, tau)
        if teacher is self or not isinstance(teacher, nn.Module):
            raise TypeError('DistilledImageClassifier: the teacher must be a '
                            f'separate nn.Module, got {type(teacher)}')
        teacher.eval()
        teacher.requires_grad_(False)
        self._teacher = _OutsideModuleTree(teacher)
        self.kd_loss_weight = float(loss_weight)
        self.kd_tau = float(tau)

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        """``loss_ce = (1 - w) · CE`` and ``loss_kd = w · KD`` of a batch."""
        teacher = self.teacher
        if teacher is None:
            raise RuntimeError(
                'DistilledImageClassifier has no teacher: add '
                "dict(type='DistillationHook', teacher=..., "
                'teacher_checkpoint=...) to custom_hooks, or call '
                'set_teacher() before training')
        feats = self.extract_feat(inputs)
        logits = self.head(feats)
        losses = self.head._get_loss(logits, data_samples)
        ce = losses.pop('loss')
        w = self.kd_loss_weight
        losses['loss_ce'] = (1.0 - w) * ce
        if w > 0:
            losses['loss_kd'] = w * soft_cross_entropy(
                logits, self._teacher_logits(teacher, inputs), self.kd_tau)
        else:
            # no teacher forward when distillation is weighted out
            losses['loss_kd'] = ce.new_zeros(())
        return losses

    @staticmethod
    def _teacher_logits(teacher: nn.Module, inputs: torch.Tensor):
        # ``model.train()`` cannot reach the teacher, but a user's
        # ``teacher.train()`` could; dropout or BN statistics would then
        # change the targets.
        if teacher.training:
            teacher.eval()
        device = next(teacher.parameters()).device
        if device != inputs.device:
            teacher.to(inputs.device)
        # Runs inside the same autocast context as the student under AMP;
        # soft_cross_entropy casts to float32.
        with torch.no_grad():
            return teacher(inputs, mode='tensor')


def check_distillation_args(loss_weight, tau) -> None:
    """Refuse a distillation weight outside [0, 1] or a non-positive tau."""
    if isinstance(loss_weight, bool) or not isinstance(loss_weight, Real) \
            or not 0.0 <= loss_weight <= 1.0:
        raise ValueError(
            'loss_weight (w in (1 - w)·CE + w·KD) must be a number in [0, 1] '
            f'(paper: 0.9), got {loss_weight!r}')
    if isinstance(tau, bool) or not isinstance(tau, Real) or not tau > 0:
        raise ValueError(f'tau (the distillation temperature) must be a '
                         f'number > 0, got {tau!r}')
