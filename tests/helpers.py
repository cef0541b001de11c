"""Test helpers: the repository root, the tools as modules and tiny datasets in
real layouts."""
import gzip
import importlib.util
import os
import struct
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool(relative, name=None):
    """Import a tool script as a module, its ``__main__`` block not run.

    While it is imported its folder comes first on ``sys.path``, as when
    ``python TOOL`` runs it, so the modules it imports at its top from
    beside it (``tools/benchmark/common.py``, ``tools/cli_helpers.py``)
    resolve as they do then; they stay in ``sys.modules`` afterwards, and
    ``sys.path`` is restored.

    Args:
        relative (str): The tool's path from the repository root, e.g.
            ``'tools/benchmark/inference.py'``.
        name (str, optional): The module's name. Defaults to the path with
            ``_`` for ``/`` (``'tools_benchmark_inference'``).

    Returns:
        module: The tool.
    """
    path = os.path.join(REPO_ROOT, *relative.split('/'))
    if name is None:
        name = os.path.splitext(relative)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(os.path.dirname(path))
    return module


def _write_idx(path, array, compress):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim)
    header += b''.join(struct.pack('>I', d) for d in array.shape)
    opener = gzip.open if compress else open
    with opener(path, 'wb') as f:
        f.write(header + array.tobytes())


def make_fashion_mnist(root, num_train=32, num_test=16, compress=True,
                       seed=0):
    """Write Fashion-MNIST idx files (gzipped as Debian ships them).

    Each class is a distinct learnable pattern (a bright band at a class-
    dependent row) plus noise, so a few steps of training move accuracy.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    suffix = '.gz' if compress else ''
    for prefix, count in (('train', num_train), ('t10k', num_test)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 60, (count, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label:4 + 2 * label] = 250
        _write_idx(os.path.join(root, f'{prefix}-images-idx3-ubyte{suffix}'),
                   images, compress)
        _write_idx(os.path.join(root, f'{prefix}-labels-idx1-ubyte{suffix}'),
                   labels, compress)
    return root


def projection_loss(outputs, seed=0):
    """``sum(out * R)`` over the outputs, for fixed random ``R`` of each shape.

    Every output element moves this loss. A plain ``out.sum()`` does not do
    that after a normalisation: the sum of a LayerNorm's output (weight
    all ones) does not depend on its input at all, so every gradient
    before it is float rounding.
    """
    import torch
    gen = torch.Generator().manual_seed(seed)
    return sum((out * torch.randn(out.shape, generator=gen)).sum()
               for out in outputs)


def assert_gradients_reach(model, names, min_ratio=1e-6):
    """Assert each named parameter's gradient is well above float rounding.

    The scale is the model's own: each parameter's mean ``|grad|`` must be
    at least ``min_ratio`` times the largest mean ``|grad|`` among the
    model's parameters. Measured on the test models: a loss that the
    parameter cannot reach leaves at most 5e-9 of that largest value
    (rounding), a real path at least 2e-5.
    """
    scales = {n: p.grad.abs().mean().item()
              for n, p in model.named_parameters() if p.grad is not None}
    largest = max(scales.values())
    weak = {n: scales.get(n, 0.0) / largest for n in names
            if scales.get(n, 0.0) < min_ratio * largest}
    assert not weak, f'gradients at rounding level (ratio to the largest): ' \
                     f'{weak}'
