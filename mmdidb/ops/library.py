"""The products and packing functions as ``torch.library`` custom ops.

``torch.compile`` and ``torch.export`` cannot look inside a ctypes or CuPy
call: traced as Python, each would break the graph (compile) or fail on
fake tensors (export). Registered as custom ops with fake (meta) kernels,
each product or packing step is one opaque node of the graph instead, with
its output shape known. The public functions of :mod:`mmdidb.ops` route
through these ops only while a graph is being traced (:func:`tracing`);
eager calls go straight to the implementation and skip the dispatcher.

Ops (namespace ``mmdidb``): ``bmm_pm1``, ``bmm_mask_pm1``,
``bmm_pm1_scaled``, ``pack_signs``, ``pack_mask``, ``pack_shifted_signs``,
``sign_linear``;
each runs the default backend of its inputs' device.
"""
from typing import Optional

import torch

from .bits import num_words


def tracing() -> bool:
    """Whether ``torch.compile`` or ``torch.export`` is tracing the caller."""
    compiler = torch.compiler
    return compiler.is_compiling() or (hasattr(compiler, 'is_exporting')
                                       and compiler.is_exporting())


def _product_shape(a: torch.Tensor, b: torch.Tensor):
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return tuple(batch) + (a.shape[-2], b.shape[-2])


def _packed_shape(x: torch.Tensor, dim: int):
    dim = dim % x.dim()
    shape = list(x.shape)
    length = shape.pop(dim)
    return tuple(shape) + (num_words(length), )


@torch.library.custom_op('mmdidb::bmm_pm1', mutates_args=())
def bmm_pm1_op(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    from .products import bmm_pm1  # noqa: PLC0415  (products imports us)
    return bmm_pm1(a, b, k)


@bmm_pm1_op.register_fake
def _(a, b, k):
    return a.new_empty(_product_shape(a, b))


@torch.library.custom_op('mmdidb::bmm_mask_pm1', mutates_args=())
def bmm_mask_pm1_op(a: torch.Tensor, b: torch.Tensor,
                    k: int) -> torch.Tensor:
    from .products import bmm_mask_pm1  # noqa: PLC0415
    return bmm_mask_pm1(a, b, k)


@bmm_mask_pm1_op.register_fake
def _(a, b, k):
    return a.new_empty(_product_shape(a, b))


@torch.library.custom_op('mmdidb::bmm_pm1_scaled', mutates_args=())
def bmm_pm1_scaled_op(a: torch.Tensor, b: torch.Tensor, k: int,
                      scale: torch.Tensor,
                      bias: Optional[torch.Tensor]) -> torch.Tensor:
    from .fused import bmm_pm1_scaled  # noqa: PLC0415
    return bmm_pm1_scaled(a, b, k, scale, bias)


@bmm_pm1_scaled_op.register_fake
def _(a, b, k, scale, bias):
    dtype = scale.dtype if bias is None else torch.promote_types(
        scale.dtype, bias.dtype)
    return a.new_empty(_product_shape(a, b), dtype=dtype)


@torch.library.custom_op('mmdidb::pack_signs', mutates_args=())
def pack_signs_op(x: torch.Tensor, dim: int) -> torch.Tensor:
    from .packing import pack_signs  # noqa: PLC0415
    return pack_signs(x, dim)


@pack_signs_op.register_fake
def _(x, dim):
    return x.new_empty(_packed_shape(x, dim), dtype=torch.int32)


@torch.library.custom_op('mmdidb::pack_mask', mutates_args=())
def pack_mask_op(x: torch.Tensor, dim: int) -> torch.Tensor:
    from .packing import pack_mask  # noqa: PLC0415
    return pack_mask(x, dim)


@pack_mask_op.register_fake
def _(x, dim):
    return x.new_empty(_packed_shape(x, dim), dtype=torch.int32)


@torch.library.custom_op('mmdidb::pack_shifted_signs', mutates_args=())
def pack_shifted_signs_op(x: torch.Tensor,
                          shift: torch.Tensor) -> torch.Tensor:
    from .fused import pack_shifted_signs  # noqa: PLC0415
    return pack_shifted_signs(x, shift)


@pack_shifted_signs_op.register_fake
def _(x, shift):
    return x.new_empty(_packed_shape(x, -1), dtype=torch.int32)


@torch.library.custom_op('mmdidb::sign_linear', mutates_args=())
def sign_linear_op(x: torch.Tensor, shift: torch.Tensor,
                   weight_packed: torch.Tensor, scale: torch.Tensor,
                   bias: Optional[torch.Tensor]) -> torch.Tensor:
    from .fused import sign_linear  # noqa: PLC0415
    return sign_linear(x, shift, weight_packed, scale, bias)


@sign_linear_op.register_fake
def _(x, shift, weight_packed, scale, bias):
    dtype = x.dtype if bias is None else torch.promote_types(
        x.dtype, bias.dtype)
    return x.new_empty((x.shape[0], weight_packed.shape[0]), dtype=dtype)
