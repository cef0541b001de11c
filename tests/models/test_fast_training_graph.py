"""The fused training graph gives the numbers of the straightforward one.

Each optimized layer (fused autograd functions, HFSC's batched bands) is
compared with a plain autograd implementation of the same formulas kept
here: forward outputs exactly where the operations are the same, gradients
w.r.t. the input and every parameter to float tolerance (only summation
orders differ). Losses are fixed random projections of every output.
"""
import pytest
import torch
import torch.nn.functional as F

from mmdidb.models.layers import (
    DIBA,
    HFSC,
    BinaryLinear,
    ElasticBinarizer,
    IRPReLU,
    RSign,
    WrappedBinaryLinear,
    binarize_weight,
)
from mmdidb.models.layers.similarity import split_heads

GRID = (4, 5)
TOKENS = 1 + 4 * 5


# ------------------------------------------------------------ references
class _RefApproxSign(torch.autograd.Function):
    """sign (sign(0) = +1) with ApproxSign's gradient, unfused."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype) * 2 - 1

    @staticmethod
    def backward(ctx, grad_output):
        x, = ctx.saved_tensors
        return grad_output * (2 - 2 * x.abs()).clamp(min=0)


def ref_rsign(x, beta):
    return _RefApproxSign.apply(x + beta)


class _RefElastic(torch.autograd.Function):
    """The elastic binarizer as first written: saves ratio and mask."""

    @staticmethod
    def forward(ctx, probs, alpha, grad_scale):
        ratio = probs / alpha
        mask = (ratio >= 0.5).to(probs.dtype)
        ctx.save_for_backward(ratio, mask)
        ctx.grad_scale = grad_scale
        return alpha * mask

    @staticmethod
    def backward(ctx, grad_output):
        ratio, mask = ctx.saved_tensors
        inside = (ratio <= 1).to(grad_output.dtype)
        d_alpha = inside * (mask - ratio) + (1 - inside)
        grad_alpha = (grad_output * d_alpha * ctx.grad_scale).sum(
            (0, 2, 3), keepdim=True)
        return grad_output * inside, grad_alpha, None


def ref_linear(layer, x):
    return F.linear(ref_rsign(x, layer.input_binarizer.beta),
                    binarize_weight(layer.weight), layer.bias)


def ref_irprelu(act, x, hw_shape=None):
    y = F.prelu((x - act.gamma).reshape(-1, x.shape[-1]), act.slope)
    shift = act.zeta
    if act.token_offset is not None:
        shift = shift + act.offset_for(x.shape[-2], hw_shape)
    return y.view_as(x) + shift


def ref_wrapped(layer, x, hw_shape=None):
    if layer.out_features > layer.in_features:
        shortcut = x.repeat_interleave(
            layer.out_features // layer.in_features, dim=-1)
    else:
        shortcut = layer.shortcut(x)
    return ref_irprelu(layer.act, layer.norm(ref_linear(layer, x)) + shortcut,
                       hw_shape)


def ref_hfsc(hfsc, x, hw_shape, q_proj, k_proj, kv=None, kv_hw_shape=None):
    """HFSC as two passes, one per band, with autograd's own products."""
    q_bands = hfsc.split(x, hw_shape)
    if kv is None:
        kv_hw_shape, k_bands = hw_shape, q_bands
    else:
        k_bands = hfsc.split(kv, kv_hw_shape)
    sims = []
    for q_band, k_band, bin_ in zip(q_bands, k_bands, (hfsc.low, hfsc.high)):
        q = ref_rsign(ref_wrapped(q_proj, q_band, hw_shape), bin_.q.beta)
        k = ref_rsign(ref_wrapped(k_proj, k_band, kv_hw_shape), bin_.k.beta)
        sims.append(split_heads(q, hfsc.num_heads)
                    @ split_heads(k, hfsc.num_heads).transpose(-2, -1))
    a = hfsc.alpha.clamp(0.0, 1.0)
    return a * sims[0] + (1 - a) * sims[1]


# --------------------------------------------------------------- helpers
def randomise(module, seed=0):
    """Non-trivial shifts, offsets and slopes (most start at 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith(('beta', 'gamma', 'zeta', 'token_offset',
                              'slope')):
                param.copy_(torch.rand(param.shape, generator=g) * 0.6 - 0.3)
    return module


def grads_of(fn, module, inputs, seed=1):
    """Output and gradients (inputs, then every parameter by name) of
    ``sum(fn(*inputs) * P)`` for a fixed random P."""
    module.zero_grad(set_to_none=True)
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    proj = torch.randn(out.shape,
                       generator=torch.Generator().manual_seed(seed))
    (out * proj).sum().backward()
    grads = {f'input{i}': t.grad for i, t in enumerate(inputs)}
    grads.update({n: p.grad for n, p in module.named_parameters()
                  if p.requires_grad})
    return out.detach(), grads


def assert_same_grads(fast, ref, tol=1e-5):
    """Equal up to float rounding: ``tol`` relative to the largest entry
    (sums in another order differ by rounding errors of that size)."""
    assert fast.keys() == ref.keys()
    for name in ref:
        assert ref[name] is not None, name
        assert fast[name] is not None, name
        scale = ref[name].abs().max().item()
        # the reference gradient really reaches every tensor
        assert scale > 0, name
        error = (fast[name] - ref[name]).abs().max().item()
        assert error <= tol * scale, (name, error, scale)


# ----------------------------------------------------------------- tests
def test_binary_linear_matches_rsign_then_linear():
    layer = randomise(BinaryLinear(24, 40))
    x = torch.randn(3, 7, 24)
    x[0, 0, :5] = -layer.input_binarizer.beta.detach()[:5]  # x + beta = 0
    out, grads = grads_of(layer, layer, [x])
    ref_out, ref_grads = grads_of(lambda t: ref_linear(layer, t), layer, [x])
    assert torch.equal(out, ref_out)
    assert_same_grads(grads, ref_grads)


def test_irprelu_matches_prelu_formula_including_zero():
    act = randomise(IRPReLU(16, num_tokens=TOKENS))
    x = torch.randn(2, TOKENS, 16)
    # x - gamma == 0 exactly: torch's PReLU takes the slope branch there
    x[:, :4, 3] = act.gamma.detach()[3]
    out, grads = grads_of(lambda t: act(t, GRID), act, [x])
    ref_out, ref_grads = grads_of(lambda t: ref_irprelu(act, t, GRID), act,
                                  [x])
    assert torch.equal(out, ref_out)
    assert_same_grads(grads, ref_grads)


def test_irprelu_shared_channel_and_no_token_offset():
    act = randomise(IRPReLU())
    x = torch.randn(3, 5, 8)
    out, grads = grads_of(act, act, [x])
    ref_out, ref_grads = grads_of(lambda t: ref_irprelu(act, t), act, [x])
    assert torch.equal(out, ref_out)
    assert_same_grads(grads, ref_grads)


def test_elastic_binarizer_matches_the_saving_version():
    layer = ElasticBinarizer(num_heads=3, num_tokens=6)
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.25, 0.5, 0.125]))
    probs = torch.rand(2, 3, 6, 6).softmax(-1)
    # ratios exactly 1/2 (kept) and 1 (inside), and above 1 (outside)
    probs[0, 0, 0, :3] = torch.tensor([0.125, 0.25, 0.9])
    out, grads = grads_of(layer, layer, [probs])

    def ref(p):
        alpha = layer.alpha.clamp(min=1e-6).view(1, -1, 1, 1)
        return _RefElastic.apply(p, alpha, 1 / 6)

    ref_out, ref_grads = grads_of(ref, layer, [probs])
    assert torch.equal(out, ref_out)
    assert_same_grads(grads, ref_grads)


@pytest.mark.parametrize('ratio', [1, 4])
def test_wrapped_linear_matches_reference(ratio):
    layer = randomise(WrappedBinaryLinear(8, 8 * ratio, num_tokens=TOKENS))
    x = torch.randn(2, TOKENS, 8)
    out, grads = grads_of(lambda t: layer(t, GRID), layer, [x])
    ref_out, ref_grads = grads_of(lambda t: ref_wrapped(layer, t, GRID),
                                  layer, [x])
    assert torch.equal(out, ref_out)
    assert_same_grads(grads, ref_grads)


@pytest.mark.parametrize('cross', [False, True])
def test_hfsc_batched_bands_match_two_passes(cross):
    torch.manual_seed(0)
    hfsc = randomise(HFSC(16, 2, alpha=0.7))
    q_proj = randomise(WrappedBinaryLinear(16, 16, num_tokens=TOKENS), 2)
    k_proj = randomise(WrappedBinaryLinear(16, 16, num_tokens=TOKENS), 3)
    modules = torch.nn.ModuleDict(dict(hfsc=hfsc, q=q_proj, k=k_proj))
    x = torch.randn(2, TOKENS, 16)
    inputs = [x, torch.randn(2, TOKENS, 16)] if cross else [x]

    def fast(x, kv=None):
        return hfsc(x, GRID, q_proj, k_proj, kv=kv,
                    kv_hw_shape=GRID if cross else None)

    def ref(x, kv=None):
        return ref_hfsc(hfsc, x, GRID, q_proj, k_proj, kv=kv,
                        kv_hw_shape=GRID if cross else None)

    out, grads = grads_of(fast, modules, inputs)
    ref_out, ref_grads = grads_of(ref, modules, inputs)
    # the integer band products and the mixing operations are the same
    assert torch.equal(out, ref_out)
    assert_same_grads(grads, ref_grads)


def test_attention_keeps_no_extra_n_by_n_tensors():
    """A DIBA layer's autograd saves two (B, heads, N, N) tensors, not six.

    Softmax keeps its output P and ``A·V`` keeps A; the HFSC band products,
    the elastic binarizer's ratio and mask are not kept.
    """
    attn = DIBA(16, 2, TOKENS)
    x = torch.randn(2, TOKENS, 16)
    saved = {}

    def pack(t):
        if t.shape[-2:] == (TOKENS, TOKENS) and t.numel() == 2 * 2 * TOKENS**2:
            saved[t.untyped_storage().data_ptr()] = t
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        attn(x, GRID)
    assert len(saved) == 2


def test_fused_nodes_run_under_autocast():
    """Mixed precision (``--amp``): the fused backward passes take the
    half-precision gradients of the products that autocast ran in half
    precision (a dtype mismatch in ``mm`` before), and every parameter
    gets a finite float32 gradient."""
    from mmdidb.models.layers import DIDBTransformerEncoderLayer
    layer = randomise(DIDBTransformerEncoderLayer(32, 2, 64,
                                                  num_tokens=TOKENS))
    x = torch.randn(2, TOKENS, 32)

    def mixed(t):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return layer(t, GRID).float()

    _, grads = grads_of(mixed, layer, [x])
    for name, grad in grads.items():
        assert grad is not None and grad.dtype == torch.float32, name
        assert torch.isfinite(grad).all(), name


def frozen_grads(fn, module, x, frozen, input_grad, seed=1):
    """:func:`grads_of` with the parameters named in ``frozen`` (and the
    input unless ``input_grad``) not requiring gradients."""
    for name, param in module.named_parameters():
        param.requires_grad_(name not in frozen)
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(input_grad)
    out = fn(x)
    proj = torch.randn(out.shape,
                       generator=torch.Generator().manual_seed(seed))
    (out * proj).sum().backward()
    grads = {n: p.grad for n, p in module.named_parameters()
             if p.requires_grad}
    if input_grad:
        grads['input'] = x.grad
    return grads


@pytest.mark.parametrize('frozen, input_grad', [
    ((), False),  # a first layer: the input needs no gradient
    (('input_binarizer.beta', ), True),
    (('bias', ), True),
    (('weight', ), False),
])
def test_binary_linear_gradients_with_frozen_parts(frozen, input_grad):
    """Each gradient the fused node computes only on demand still comes out
    when the others are not wanted (fine-tuning a part, raw inputs)."""
    layer = randomise(BinaryLinear(24, 40))
    x = torch.randn(3, 7, 24)
    fast = frozen_grads(layer, layer, x, frozen, input_grad)
    ref = frozen_grads(lambda t: ref_linear(layer, t), layer, x, frozen,
                       input_grad)
    assert len(fast) == 4 - len(frozen) - (not input_grad)
    assert_same_grads(fast, ref)


@pytest.mark.parametrize('frozen, input_grad', [
    ((), False),
    (('gamma', ), True),
    (('slope', ), True),
    (('gamma', 'slope'), False),
    (('zeta', 'token_offset'), True),
])
def test_irprelu_gradients_with_frozen_parts(frozen, input_grad):
    act = randomise(IRPReLU(16, num_tokens=TOKENS))
    x = torch.randn(2, TOKENS, 16)
    fast = frozen_grads(lambda t: act(t, GRID), act, x, frozen, input_grad)
    ref = frozen_grads(lambda t: ref_irprelu(act, t, GRID), act, x, frozen,
                       input_grad)
    assert len(fast) == 4 + input_grad - len(frozen)
    assert_same_grads(fast, ref)


def test_rsign_shift_gets_its_gradient_for_an_input_without_one():
    rsign = randomise(RSign(16))
    x = torch.randn(2, 5, 16)
    fast = frozen_grads(rsign, rsign, x, (), False)
    ref = frozen_grads(lambda t: ref_rsign(t, rsign.beta), rsign, x, (),
                       False)
    assert list(fast) == ['beta']
    assert_same_grads(fast, ref)
