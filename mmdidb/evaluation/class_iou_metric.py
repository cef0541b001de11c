"""mmseg's IoU metric that also returns chosen classes' own scores."""
from typing import Dict, Sequence

from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class ClassIoUMetric(IoUMetric):
    """:class:`mmseg.evaluation.IoUMetric` plus per-class scores as metrics.

    mmseg's metric returns only class means (``mIoU``, ``mFscore``, ...) and
    prints the per-class table. For a two-class problem the foreground's
    own scores are the ones that matter (road IoU, F1, precision, recall),
    so this metric also returns them, named ``{score}.{class}`` (e.g.
    ``IoU.road``, ``Fscore.road``, ``Precision.road``, ``Recall.road``,
    ``Acc.road``), in percent like mmseg's. They reach the logs, the
    validation results and ``save_best``.

    Args:
        classes (Sequence[str]): Class names (from the dataset's
            ``classes``) to report. Defaults to () (none: plain IoUMetric).
        **kwargs: Arguments of :class:`IoUMetric`, e.g.
            ``iou_metrics=['mIoU', 'mFscore']``.
    """

    def __init__(self, classes: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        if isinstance(classes, str):
            classes = (classes, )
        self.report_classes = tuple(classes)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        # mmseg's values are numpy float32 (96.92 prints as 96.9199981...)
        metrics = {
            key: round(float(value), 2)
            for key, value in super().compute_metrics(results).items()
        }
        if not self.report_classes or self.format_only:
            return metrics
        names = list(self.dataset_meta['classes'])
        unknown = [c for c in self.report_classes if c not in names]
        if unknown:
            raise ValueError(f'ClassIoUMetric: classes {unknown} are not in '
                             f"the dataset's classes {names}")
        areas = [sum(column) for column in zip(*results)]
        per_class = self.total_area_to_metrics(*areas, self.metrics,
                                               self.nan_to_num, self.beta)
        per_class.pop('aAcc', None)
        for name in self.report_classes:
            index = names.index(name)
            for score, values in per_class.items():
                metrics[f'{score}.{name}'] = round(
                    float(values[index]) * 100, 2)
        return metrics
