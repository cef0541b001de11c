"""Helpers for the ``torch.library`` custom ops of :mod:`mmdidb.ops`.

``torch.compile`` and ``torch.export`` cannot look inside a ctypes or CuPy
call: traced as Python, each would break the graph (compile) or fail on
fake tensors (export). So every product and packing function is also
registered as a custom op with a fake (meta) kernel, next to its
implementation, and becomes one opaque node of the graph with its output
shape known. The public functions route through these ops only while a
graph is being traced (:func:`tracing`); eager calls go straight to the
implementation and skip the dispatcher.

Ops (namespace ``mmdidb``, each running the default backend of its
inputs' device): ``bmm_pm1``, ``bmm_mask_pm1`` (:mod:`.products`),
``pack_signs``, ``pack_mask`` (:mod:`.packing`), ``bmm_pm1_scaled``,
``pack_shifted_signs``, ``sign_linear`` (:mod:`.fused`).
"""
import torch

from .bits import num_words


def tracing() -> bool:
    """Whether ``torch.compile`` or ``torch.export`` is tracing the caller."""
    compiler = torch.compiler
    return compiler.is_compiling() or (hasattr(compiler, 'is_exporting')
                                       and compiler.is_exporting())


def product_shape(a: torch.Tensor, b: torch.Tensor) -> tuple:
    """Shape of a product of packed ``(..., M, W)`` and ``(..., N, W)``."""
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return tuple(batch) + (a.shape[-2], b.shape[-2])


def packed_shape(x: torch.Tensor, dim: int) -> tuple:
    """Shape of ``x`` packed along ``dim`` (that axis moved last)."""
    dim = dim % x.dim()
    shape = list(x.shape)
    length = shape.pop(dim)
    return tuple(shape) + (num_words(length), )


def result_dtype(dtype: torch.dtype, bias) -> torch.dtype:
    """The dtype of ``counts.to(dtype) * scale + bias``."""
    return dtype if bias is None else torch.promote_types(dtype, bias.dtype)
