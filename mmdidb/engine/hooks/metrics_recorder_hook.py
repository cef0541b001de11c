"""Keeping the latest evaluation metrics and the training time at hand."""
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class MetricsRecorderHook(Hook):
    """Record the last validation metrics and the wall time spent training.

    mmengine logs metrics but keeps none of them; the tools and benchmark
    scripts read ``last_metrics`` and ``train_seconds`` from this hook
    after ``runner.train()``.
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self.last_metrics = {}
        self.train_seconds = 0.0
        self._epoch_start = None

    def before_train_epoch(self, runner) -> None:
        self._epoch_start = time.perf_counter()

    def after_train_epoch(self, runner) -> None:
        if self._epoch_start is not None:
            self.train_seconds += time.perf_counter() - self._epoch_start
            self._epoch_start = None

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.last_metrics = dict(metrics or {})
