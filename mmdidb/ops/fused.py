"""Fused kernels of the deployed binary linear layer.

Three fusions, each equal bit for bit to the unfused torch formula it
replaces (its reference, used whenever the fused kernel does not apply):

- :func:`pack_shifted_signs`: RSign's shift and the packing in one pass,
  ``pack_signs(x + shift)`` without the ``x + shift`` and ``±1`` tensors (the
  sum is rounded in ``x``'s dtype before its sign is taken, as torch rounds
  it);
- :func:`bmm_pm1_scaled`: the XNOR-popcount GEMM with the per-channel weight
  scale and the bias in its epilogue, ``bmm_pm1(a, b, k).to(dtype) * scale
  + bias`` written directly as float32 / float16, without the ``int32``
  counts and the two elementwise kernels.

The C kernels (:mod:`mmdidb.ops.cpu_bits`) take float32 CPU tensors, the
CUDA kernels float32 and float16 (the product's fused epilogue needs the
tensor-core ``mma`` path, sm_80+); other dtypes, devices or backends run the
reference formula. The wrapped linear layer's shortcut is
not folded in: its LayerNorm sits between the product and the shortcut, so
the maths does not allow it.
"""
from typing import Optional

import torch

from . import cpu_bits, cuda_backend, library
from .backend import resolve_pack_backend, resolve_product_backend
from .packing import pack_signs
from .products import bmm_pm1
from .validation import (
    check_packed,
    check_pair,
    check_same_device,
    check_tensor,
    check_words,
)


def _check_vector(v, name: str, length: int, like: torch.Tensor) -> None:
    check_tensor(v, name)
    if v.shape != (length, ):
        raise ValueError(f'{name} must have shape ({length},), got '
                         f'{tuple(v.shape)}')
    if v.device != like.device:
        raise ValueError(f'{name} is on {v.device} but the operands are on '
                         f'{like.device}; move both to the same device')


def pack_shifted_signs(x: torch.Tensor, shift: torch.Tensor,
                       backend: Optional[str] = None) -> torch.Tensor:
    """Pack the signs of ``x + shift`` along the last axis (RSign + pack).

    Args:
        x: Real float tensor ``(..., K)``.
        shift: ``(K,)`` per-channel shift (RSign's ``beta``), same device.
        backend: As for :func:`~mmdidb.ops.pack_signs`; the fused kernel runs
            for CUDA float32 / float16 tensors with ``shift`` of the same
            dtype.

    Returns:
        ``int32`` ``(..., ceil(K / 32))``, equal to ``pack_signs(x + shift)``.

    Raises:
        TypeError: ``x`` or ``shift`` is not a float tensor.
        ValueError: ``x`` is 0-d, or ``shift`` has the wrong shape or
            device.
    """
    check_tensor(x, 'x')
    if not x.is_floating_point():
        raise TypeError(f'x must be a float tensor, got {x.dtype}')
    if x.dim() == 0:
        raise ValueError('cannot pack a 0-d tensor')
    _check_vector(shift, 'shift', x.shape[-1], x)
    if not shift.is_floating_point():
        raise TypeError(f'shift must be a float tensor, got {shift.dtype}')
    if backend is None and library.tracing():
        return _pack_shifted_signs_op(x.detach(), shift.detach())
    path = resolve_pack_backend(backend, x.device)
    if path == 'cpu' and x.dtype == shift.dtype == torch.float32:
        return cpu_bits.pack_rows(x.detach(), shift.detach())
    if (path == 'cuda' and x.dtype in cuda_backend.FUSED_DTYPES
            and shift.dtype == x.dtype):
        return cuda_backend.pack_shift_rows(x.detach().contiguous(),
                                            shift.detach().contiguous())
    return pack_signs(x.detach() + shift.detach(), backend=backend)


def bmm_pm1_scaled(a_packed: torch.Tensor, b_packed: torch.Tensor, k: int,
                   scale: torch.Tensor, bias: Optional[torch.Tensor] = None,
                   dtype: Optional[torch.dtype] = None,
                   backend: Optional[str] = None) -> torch.Tensor:
    """``bmm_pm1(a, b, k).to(dtype) * scale + bias`` with a fused epilogue.

    Args:
        a_packed: ``int32`` ``(M, W)`` packed signs (the activations).
        b_packed: ``int32`` ``(N, W)`` packed signs (the weight rows).
        k: Reduction length in bits.
        scale: ``(N,)`` per-output-channel scales.
        bias: ``(N,)`` bias, or None.
        dtype: Result dtype (default: ``scale``'s).
        backend: As for :func:`~mmdidb.ops.bmm_pm1`; the fused kernel runs
            on the ``mma`` path for float32 / float16 when ``scale`` (and
            ``bias``) have that dtype.

    Returns:
        ``(M, N)`` tensor equal to the unfused formula bit for bit.

    Raises:
        TypeError: Bad operand dtypes (see :func:`~mmdidb.ops.bmm_pm1`).
        ValueError: Operands not 2-D, or ``scale`` / ``bias`` of the wrong
            shape or device.
    """
    k, _ = check_pair(a_packed, b_packed, k, 'a_packed', 'b_packed')
    if a_packed.dim() != 2 or b_packed.dim() != 2:
        raise ValueError('bmm_pm1_scaled takes 2-D operands (M, W) and '
                         f'(N, W), got {tuple(a_packed.shape)} and '
                         f'{tuple(b_packed.shape)}')
    n = b_packed.shape[0]
    _check_vector(scale, 'scale', n, a_packed)
    if bias is not None:
        _check_vector(bias, 'bias', n, a_packed)
    if backend is None and dtype in (None, scale.dtype) and library.tracing():
        return _bmm_pm1_scaled_op(a_packed, b_packed, k, scale.detach(),
                                  None if bias is None else bias.detach())
    dtype = scale.dtype if dtype is None else dtype
    path = resolve_product_backend(backend, a_packed.device)
    if (path == 'cpu' and dtype == scale.dtype == torch.float32
            and (bias is None or bias.dtype == dtype)):
        return cpu_bits.bgemm(
            a_packed, b_packed, k, 'xor', torch.Size(), scale.detach(),
            None if bias is None else bias.detach())
    if (path == 'mma' and dtype in cuda_backend.FUSED_DTYPES
            and scale.dtype == dtype
            and (bias is None or bias.dtype == dtype)):
        return cuda_backend.bmm_scaled(
            a_packed, b_packed, k, scale.detach().contiguous(),
            None if bias is None else bias.detach().contiguous(), dtype)
    counts = bmm_pm1(a_packed, b_packed, k, backend=backend)
    out = counts.to(dtype) * scale.to(dtype)
    return out + bias if bias is not None else out


def sign_linear(x: torch.Tensor, shift: torch.Tensor,
                weight_packed: torch.Tensor, scale: torch.Tensor,
                bias: Optional[torch.Tensor] = None,
                backend: Optional[str] = None) -> torch.Tensor:
    """The deployed binary linear layer: RSign, packing, GEMM, scale, bias.

    Equal bit for bit to ``bmm_pm1_scaled(pack_shifted_signs(x, shift),
    weight_packed, K, scale, bias)`` with ``K = x.shape[-1]``.

    Args:
        x (Tensor): Float ``(..., K)``, the input before its binarizer.
        shift (Tensor): ``(K,)`` the binarizer's shift, ``x``'s dtype.
        weight_packed (Tensor): ``int32`` ``(N, ceil(K / 32))`` packed
            weight signs, contiguous.
        scale (Tensor): ``(N,)`` per-output-channel scales, ``x``'s dtype.
        bias (Tensor, optional): ``(N,)``.
        backend: As for :func:`~mmdidb.ops.bmm_pm1`; one C call for
            float32 CPU tensors.

    Returns:
        Tensor: ``(..., N)``, as the two-step formula.

    Raises:
        TypeError, ValueError: As :func:`pack_shifted_signs` and
            :func:`bmm_pm1_scaled` for their arguments.
    """
    check_tensor(x, 'x')
    if x.dim() == 0 or not x.is_floating_point():
        raise TypeError(f'x must be a float tensor of 1 or more dims, got '
                        f'{x.dtype} of shape {tuple(x.shape)}')
    length = x.shape[-1]
    check_packed(weight_packed, 'weight_packed')
    if weight_packed.dim() != 2:
        raise ValueError('weight_packed must be (N, words), got '
                         f'{tuple(weight_packed.shape)}')
    check_words(weight_packed.shape[-1], length, "x's last dim",
                'weight_packed')
    check_same_device(x, weight_packed, 'x', 'weight_packed')
    n = weight_packed.shape[-2]
    _check_vector(shift, 'shift', length, x)
    _check_vector(scale, 'scale', n, x)
    if bias is not None:
        _check_vector(bias, 'bias', n, x)
    lead = x.shape[:-1]
    if backend is None and library.tracing():
        out = _sign_linear_op(
            x.detach().reshape(-1, length), shift.detach(), weight_packed,
            scale.detach(), None if bias is None else bias.detach())
        return out.reshape(*lead, n)
    if (resolve_product_backend(backend, x.device) == 'cpu'
            and x.dtype == shift.dtype == scale.dtype == torch.float32
            and (bias is None or bias.dtype == torch.float32)):
        out = cpu_bits.sign_linear(
            x.detach().reshape(-1, length), shift.detach(), weight_packed,
            scale.detach(), None if bias is None else bias.detach())
        return out.reshape(*lead, n)
    bits = pack_shifted_signs(x.reshape(-1, length), shift, backend=backend)
    out = bmm_pm1_scaled(bits, weight_packed, length, scale, bias,
                         dtype=x.dtype, backend=backend)
    return out.reshape(*lead, n)


def bmm_pm1_bands(q_packed: torch.Tensor, k_packed: torch.Tensor, k: int,
                  weights: Optional[torch.Tensor] = None, scale: float = 1.0,
                  dtype: torch.dtype = torch.float32,
                  backend: Optional[str] = None) -> torch.Tensor:
    """``(w_0 Q_0 K_0ᵀ + w_1 Q_1 K_1ᵀ) * scale`` of packed ±1 bands.

    The reference formula, which the fused kernel equals bit for bit::

        sims = bmm_pm1(q_packed, k_packed, k).to(dtype)
        out = weights[0] * sims[0] + weights[1] * sims[1]  # two bands
        out = sims[0]                                      # one band
        return out * scale

    Args:
        q_packed: ``int32`` ``(bands, ..., M, W)``, bands 1 or 2, the packed
            ±1 queries of each band; contiguous.
        k_packed: ``int32`` ``(bands, ..., N, W)``, the keys.
        k: Bits per query (the head size).
        weights: ``(2,)`` band weights (two bands only), ``dtype``.
        scale: Factor applied last (the attention scale).
        dtype: Result dtype.
        backend: As for :func:`~mmdidb.ops.bmm_pm1`; the fused kernel runs
            for CPU tensors in float32.

    Returns:
        ``(..., M, N)`` similarities.

    Raises:
        ValueError: Not 1 or 2 bands, weights given for one band or missing
            for two, or the operands' checks of :func:`bmm_pm1`.
    """
    k, batch = check_pair(q_packed, k_packed, k, 'q_packed', 'k_packed')
    bands = q_packed.shape[0]
    if q_packed.dim() < 3 or bands not in (1, 2) or k_packed.shape[0] != bands:
        raise ValueError('q_packed and k_packed must stack 1 or 2 bands on '
                         f'dim 0, got {tuple(q_packed.shape)} and '
                         f'{tuple(k_packed.shape)}')
    if (weights is None) != (bands == 1):
        raise ValueError('weights are needed for two bands and only then, '
                         f'got {bands} band(s) and weights={weights!r}')
    if weights is not None:
        _check_vector(weights, 'weights', 2, q_packed)
    scale = float(scale)
    if backend is None and library.tracing():
        return _bmm_pm1_bands_op(q_packed, k_packed, k, weights, scale,
                                 dtype)
    if (resolve_product_backend(backend, q_packed.device) == 'cpu'
            and dtype == torch.float32
            and (weights is None or weights.dtype == dtype)):
        pair = None if weights is None else tuple(weights.tolist())
        return cpu_bits.bgemm_bands(q_packed, k_packed, k, batch[1:], pair,
                                    scale)
    sims = bmm_pm1(q_packed, k_packed, k, backend=backend).to(dtype)
    out = sims[0] if weights is None else \
        weights[0] * sims[0] + weights[1] * sims[1]
    return out * scale


@torch.library.custom_op('mmdidb::bmm_pm1_bands', mutates_args=())
def _bmm_pm1_bands_op(q: torch.Tensor, k: torch.Tensor, bits: int,
                      weights: Optional[torch.Tensor], scale: float,
                      dtype: torch.dtype) -> torch.Tensor:
    return bmm_pm1_bands(q, k, bits, weights, scale, dtype)


@_bmm_pm1_bands_op.register_fake
def _(q, k, bits, weights, scale, dtype):
    return q.new_empty(library.product_shape(q, k)[1:], dtype=dtype)


@torch.library.custom_op('mmdidb::pack_shifted_signs', mutates_args=())
def _pack_shifted_signs_op(x: torch.Tensor,
                           shift: torch.Tensor) -> torch.Tensor:
    return pack_shifted_signs(x, shift)


@_pack_shifted_signs_op.register_fake
def _(x, shift):
    return x.new_empty(library.packed_shape(x, -1), dtype=torch.int32)


@torch.library.custom_op('mmdidb::bmm_pm1_scaled', mutates_args=())
def _bmm_pm1_scaled_op(a: torch.Tensor, b: torch.Tensor, k: int,
                       scale: torch.Tensor,
                       bias: Optional[torch.Tensor]) -> torch.Tensor:
    return bmm_pm1_scaled(a, b, k, scale, bias)


@_bmm_pm1_scaled_op.register_fake
def _(a, b, k, scale, bias):
    return a.new_empty(library.product_shape(a, b),
                       dtype=library.result_dtype(scale.dtype, bias))


@torch.library.custom_op('mmdidb::sign_linear', mutates_args=())
def _sign_linear_op(x: torch.Tensor, shift: torch.Tensor,
                    weight_packed: torch.Tensor, scale: torch.Tensor,
                    bias: Optional[torch.Tensor]) -> torch.Tensor:
    return sign_linear(x, shift, weight_packed, scale, bias)


@_sign_linear_op.register_fake
def _(x, shift, weight_packed, scale, bias):
    return x.new_empty((x.shape[0], weight_packed.shape[0]),
                       dtype=library.result_dtype(x.dtype, bias))
