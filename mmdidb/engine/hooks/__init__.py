from .cuda_graph_hook import CUDAGraphHook
from .distillation_hook import DistillationHook
from .load_from_check_hook import LoadFromCheckHook
from .metrics_recorder_hook import MetricsRecorderHook
from .reseed_hook import ReseedHook
from .seg_input_size_check_hook import SegInputSizeCheckHook

__all__ = [
    'CUDAGraphHook', 'DistillationHook', 'LoadFromCheckHook', 'MetricsRecorderHook',
    'ReseedHook', 'SegInputSizeCheckHook'
]
