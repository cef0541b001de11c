from .metrics_recorder_hook import MetricsRecorderHook
from .reseed_hook import ReseedHook

__all__ = ['MetricsRecorderHook', 'ReseedHook']
