"""Run the test loop's backbone through a CUDA graph (``--cuda-graph``)."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from mmdidb.models.deploy.graph_runtime import disable_cuda_graph, enable_cuda_graph


@HOOKS.register_module()
class CUDAGraphHook(Hook):
    """Capture the backbone into a CUDA graph before testing.

    ``before_test`` runs after the runner has loaded the checkpoint, so a
    deploy checkpoint has already switched the model to deploy mode; the
    hook then installs :func:`~mmdidb.models.deploy.enable_cuda_graph` on
    the model's backbone. The first test batch's shape is captured; batches
    of another shape (the last, smaller batch) run eagerly, with one
    warning. ``after_test`` logs how many batches replayed the graph and
    removes it.

    Args:
        **options: Options of
            :class:`~mmdidb.models.deploy.graph_runtime.CUDAGraphRunner`.
    """

    priority = 'LOW'

    def __init__(self, **options):
        self.options = options
        self.runner_ = None

    def before_test(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        device = next(model.parameters()).device
        if device.type != 'cuda':
            raise RuntimeError(
                f'CUDAGraphHook (--cuda-graph) needs the model on a CUDA GPU, '
                f'it is on {device}; drop --cuda-graph on a CPU machine')
        deploy = any(getattr(m, 'deploy', False) for m in model.modules())
        self.runner_ = enable_cuda_graph(model, **self.options)
        print_log(f'CUDA graph enabled on the backbone (deploy mode: '
                  f'{deploy})', logger='current')

    def after_test(self, runner) -> None:
        if self.runner_ is None:
            return
        graph = self.runner_
        print_log(f'CUDA graph: {graph.replays} batches replayed '
                  f'{graph.captured_shapes()}, {graph.eager_calls} ran '
                  'eagerly (other shapes)', logger='current')
        disable_cuda_graph(getattr(runner.model, 'module', runner.model))
        self.runner_ = None
