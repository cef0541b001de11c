"""CUDA-graph runtime of a deployed model: one capture, then replays.

A deployed DIDB-ViT runs hundreds of small kernels per image (packing,
binary GEMMs, norms, scales), each with a Python call, a CuPy launch and an
allocation; at batch 1 that per-call overhead, not the GPU, sets the speed
(docs/benchmarks.md, "Inference"). :class:`CUDAGraphRunner` captures the
forward pass once into a ``torch.cuda.CUDAGraph`` for a fixed input
signature (shapes, dtypes, device, the non-tensor arguments) and then only
copies the input in, replays the graph and copies the output out.

How the CuPy kernels fit in: :mod:`mmdidb.ops.cuda_backend` launches every
kernel on torch's *current* stream (a ``cupy.cuda.ExternalStream`` view of
it), which inside ``torch.cuda.graph`` is the capturing stream, passes raw
pointers of torch-allocated tensors (no CuPy allocation, no
``__cuda_array_interface__`` round trip) and never synchronises; the kernels
are compiled and loaded by the warm-up passes, before the capture starts.

Eager fallback (documented behaviour, not an error): a call whose signature
differs from the captured one (another batch size or image size, e.g. the
smaller last batch of a test set) runs the model eagerly, with one
``RuntimeWarning`` per new signature; ``fallback='error'`` raises instead.
A capture that fails (an op in the model that cannot be captured) also
falls back to eager with a warning, or raises with ``strict=True``.
Results are those of the eager model bit for bit: the replay runs the same
kernels on the same values.

Refused with a clear error, never run: CPU inputs, inputs on another device
than the model, dtypes other than float32 / float16 (the deploy path turns
the integer products into the activations' dtype; bfloat16 is not exact for
them), and models in training mode.

Usage::

    from mmdidb.models.deploy import enable_cuda_graph, switch_to_deploy
    switch_to_deploy(model, cuda_graph=True)   # or enable_cuda_graph(model)
    logits = model(x, mode='tensor')           # first call captures
"""
import warnings
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import nn

#: Input dtypes a graph is captured for.
GRAPH_DTYPES = (torch.float32, torch.float16)
#: Attribute a wrapped module keeps its runner under.
RUNNER_ATTR = '_mmdidb_cuda_graph'
FALLBACKS = ('eager', 'error')


def _flatten(value, leaves: list):
    """Return a template of ``value`` with tensors replaced by indices."""
    if isinstance(value, torch.Tensor):
        leaves.append(value)
        return ('tensor', len(leaves) - 1)
    if isinstance(value, (list, tuple)):
        items = [_flatten(v, leaves) for v in value]
        return (type(value), items)
    if isinstance(value, dict):
        return (dict, [(k, _flatten(v, leaves)) for k, v in value.items()])
    return ('value', value)


def _rebuild(template, leaves):
    kind, payload = template
    if kind == 'tensor':
        return leaves[payload]
    if kind == 'value':
        return payload
    if kind is dict:
        return {k: _rebuild(v, leaves) for k, v in payload}
    items = [_rebuild(v, leaves) for v in payload]
    # namedtuples take their fields as positional arguments
    return kind(*items) if hasattr(kind, '_fields') else kind(items)


def _signature(args: tuple, kwargs: dict) -> tuple:
    """Hashable key of a call: tensor specs and the non-tensor arguments."""

    def spec(value):
        if isinstance(value, torch.Tensor):
            return ('tensor', tuple(value.shape), value.dtype, value.device)
        if isinstance(value, (list, tuple)):
            return (type(value).__name__, tuple(spec(v) for v in value))
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                'CUDAGraphRunner: non-tensor arguments become part of the '
                f'captured graph and must be hashable; got a '
                f'{type(value).__name__}') from None
        return ('value', value)

    return (tuple(spec(a) for a in args),
            tuple(sorted((k, spec(v)) for k, v in kwargs.items())))


class CUDAGraphRunner:
    """Replay a captured CUDA graph of ``fn`` for one input signature.

    Args:
        fn (Callable): The forward to capture, e.g. a deployed backbone's
            bound ``forward``. It must be a pure function of its tensor
            arguments on the GPU (no host synchronisation, no ``.item()``).
        module (nn.Module, optional): The module ``fn`` belongs to, checked
            for training mode and for the device of its parameters.
        max_graphs (int): How many signatures get their own graph; calls
            beyond are eager. Defaults to 1 (the issue's "fixed shape").
        warmup (int): Eager passes on a side stream before the capture
            (they compile and load the CuPy kernels and let cuBLAS pick its
            algorithms). Defaults to 2.
        fallback (str): ``'eager'`` (default): other signatures run eagerly,
            one warning each; ``'error'``: they raise ``ValueError``.
        strict (bool): Raise when the capture fails instead of warning and
            running eagerly. Defaults to False.
        clone_outputs (bool): Return copies of the graph's static outputs
            (default). ``False`` returns the static tensors themselves,
            which the next replay overwrites: faster, for benchmarks.
    """

    def __init__(self,
                 fn: Callable,
                 module: Optional[nn.Module] = None,
                 max_graphs: int = 1,
                 warmup: int = 2,
                 fallback: str = 'eager',
                 strict: bool = False,
                 clone_outputs: bool = True):
        if fallback not in FALLBACKS:
            raise ValueError(f'fallback must be one of {FALLBACKS}, got '
                             f'{fallback!r}')
        if max_graphs < 1 or warmup < 1:
            raise ValueError('max_graphs and warmup must be >= 1, got '
                             f'{max_graphs} and {warmup}')
        self.fn = fn
        self.module = module
        self.max_graphs = max_graphs
        self.warmup = warmup
        self.fallback = fallback
        self.strict = strict
        self.clone_outputs = clone_outputs
        self.graphs: Dict[tuple, tuple] = {}
        #: signatures that run eagerly (capture failed or beyond max_graphs)
        self.eager_signatures: Dict[tuple, str] = {}
        self.replays = 0
        self.eager_calls = 0
        self._pool = None
        self._weights = None

    # -- checks --------------------------------------------------------
    def _check(self, tensors) -> torch.device:
        if not tensors:
            raise ValueError('CUDAGraphRunner: the call has no tensor '
                             'argument to capture the graph for')
        if self.module is not None and self.module.training:
            raise RuntimeError(
                'CUDAGraphRunner: the model is in training mode; call '
                'model.eval() first (a graph replays one fixed forward, no '
                'dropout or batch statistics)')
        device = tensors[0].device
        for t in tensors:
            if t.is_floating_point() and t.dtype not in GRAPH_DTYPES:
                raise TypeError(
                    f'CUDAGraphRunner: input dtype {t.dtype} is not '
                    'supported; use float32 or float16 (the deployed '
                    'integer products convert exactly to them only)')
            if t.device.type != 'cuda':
                raise ValueError(
                    'CUDAGraphRunner captures CUDA graphs and needs CUDA '
                    f'inputs, got a tensor on {t.device}; move the model and '
                    'the input to the GPU, or call the model without '
                    'cuda_graph=True on the CPU')
            if t.device != device:
                raise ValueError(f'CUDAGraphRunner: inputs on {device} and '
                                 f'{t.device}; use one device')
            if t.requires_grad and torch.is_grad_enabled():
                raise ValueError(
                    'CUDAGraphRunner replays inference only; the input '
                    'requires grad: call it under torch.no_grad()')
        if self.module is not None:
            for name, param in self.module.named_parameters():
                if param.device != device:
                    raise ValueError(
                        f'CUDAGraphRunner: parameter {name!r} is on '
                        f'{param.device} but the input is on {device}; '
                        'move the model to the input\'s device')
                break
        return device

    # -- capture and replay ---------------------------------------------
    def _capture(self, key, args, kwargs, device):
        leaves: list = []
        template = _flatten((args, kwargs), leaves)
        # ordinary tensors even when captured under inference_mode, so that
        # later calls under no_grad can still copy into them
        with torch.inference_mode(False):
            static_in = [t.detach().clone() for t in leaves]
        static_args, static_kwargs = _rebuild(template, static_in)
        with torch.cuda.device(device), torch.no_grad():
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    self.fn(*static_args, **static_kwargs)
            torch.cuda.current_stream(device).wait_stream(side)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                out = self.fn(*static_args, **static_kwargs)
        out_leaves: list = []
        out_template = _flatten(out, out_leaves)
        self.graphs[key] = (graph, static_in, out_template, out_leaves)

    def _weights_key(self):
        """Where the module's first parameter lives: a replay reads the
        weights at the addresses of the capture, so a moved or cast model
        (``.to()``, ``.half()``, new parameter tensors) must be recaptured;
        in-place updates (``load_state_dict``) are seen by the replay."""
        if self.module is None:
            return None
        for param in self.module.parameters():
            return (param.data_ptr(), param.dtype, param.device)
        return None

    def _eager(self, key, reason, args, kwargs):
        if key not in self.eager_signatures:
            self.eager_signatures[key] = reason
            warnings.warn(f'CUDAGraphRunner: {reason}; running eagerly '
                          '(same results, per-call overhead)',
                          RuntimeWarning, stacklevel=3)
        self.eager_calls += 1
        with torch.no_grad():
            return self.fn(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        leaves: list = []
        _flatten((args, kwargs), leaves)
        device = self._check(leaves)
        if self.graphs and self._weights_key() != self._weights:
            warnings.warn('CUDAGraphRunner: the model\'s parameters were '
                          'replaced (moved or cast) since the capture; '
                          'capturing again', RuntimeWarning, stacklevel=2)
            self.reset()
        key = _signature(args, kwargs)
        if key in self.eager_signatures:
            return self._eager(key, '', args, kwargs)
        if key not in self.graphs:
            if len(self.graphs) >= self.max_graphs:
                if self.fallback == 'error':
                    raise ValueError(
                        f'CUDAGraphRunner: input {_describe(leaves)} differs '
                        f'from the captured {self.captured_shapes()}; '
                        "fallback='error' refuses eager calls")
                return self._eager(
                    key, f'input {_describe(leaves)} differs from the '
                    f'captured {self.captured_shapes()}', args, kwargs)
            try:
                self._weights = self._weights_key()
                self._capture(key, args, kwargs, device)
            except Exception as err:  # noqa: BLE001  (any capture failure)
                if self.strict:
                    raise
                torch.cuda.synchronize(device)
                text = ' '.join(str(err).split())[:300]
                return self._eager(
                    key, f'capturing the graph failed ({type(err).__name__}: '
                    f'{text})', args, kwargs)
        graph, static_in, out_template, out_leaves = self.graphs[key]
        for dst, src in zip(static_in, leaves):
            dst.copy_(src)
        graph.replay()
        self.replays += 1
        if self.clone_outputs:
            out_leaves = [t.clone() for t in out_leaves]
        return _rebuild(out_template, out_leaves)

    def captured_shapes(self) -> list:
        """Shapes of the tensor inputs of every captured graph."""
        return [[tuple(t.shape) for t in entry[1]]
                for entry in self.graphs.values()]

    def reset(self) -> None:
        """Drop every graph (e.g. after changing the weights)."""
        self.graphs.clear()
        self.eager_signatures.clear()
        self._pool = None


def _describe(tensors) -> str:
    return ', '.join(f'{tuple(t.shape)} {t.dtype}' for t in tensors)


def _target(model: nn.Module) -> nn.Module:
    """The part of ``model`` that is captured: its backbone if it has one.

    Classifiers and segmentors call ``backbone(x)`` with the preprocessed
    batch alone; the neck, head and data preprocessor (few, cheap launches,
    data samples as inputs) stay eager.
    """
    model = getattr(model, 'module', model)  # (Distributed)DataParallel
    backbone = getattr(model, 'backbone', None)
    return backbone if isinstance(backbone, nn.Module) else model


def enable_cuda_graph(model: nn.Module, **kwargs) -> CUDAGraphRunner:
    """Run ``model``'s backbone (or ``model``) through a CUDA graph.

    The module's ``forward`` is replaced, on the instance only, by a
    :class:`CUDAGraphRunner` of the original; :func:`disable_cuda_graph`
    undoes it. Calling it again returns the runner already installed.

    Args:
        model (nn.Module): A (deployed) classifier, segmentor or backbone.
        **kwargs: Options of :class:`CUDAGraphRunner`.

    Returns:
        CUDAGraphRunner: The installed runner (its counters tell how many
        calls replayed and how many ran eagerly).
    """
    target = _target(model)
    runner = getattr(target, RUNNER_ATTR, None)
    if runner is not None:
        return runner
    runner = CUDAGraphRunner(target.forward, module=target, **kwargs)
    target.forward = runner
    setattr(target, RUNNER_ATTR, runner)
    return runner


def disable_cuda_graph(model: nn.Module) -> bool:
    """Undo :func:`enable_cuda_graph`.

    Returns:
        bool: True when a runner was removed.
    """
    target = _target(model)
    if getattr(target, RUNNER_ATTR, None) is None:
        return False
    del target.forward
    delattr(target, RUNNER_ATTR)
    return True


def graph_runner(model: nn.Module) -> Optional[CUDAGraphRunner]:
    """The runner :func:`enable_cuda_graph` installed on ``model``, or None."""
    return getattr(_target(model), RUNNER_ATTR, None)


__all__: Tuple[str, ...] = ('CUDAGraphRunner', 'GRAPH_DTYPES',
                            'disable_cuda_graph', 'enable_cuda_graph',
                            'graph_runner')
