"""Evaluation metrics (registered in mmseg's ``METRICS``)."""
from .class_iou_metric import ClassIoUMetric

__all__ = ['ClassIoUMetric']
