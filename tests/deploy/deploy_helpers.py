"""Shared pieces of the deploy-mode tests (CPU and GPU).

Imports torch and ``mmdidb.ops`` only, so the GPU test can import it before
it knows whether the OpenMMLab packages are there.
"""
import contextlib

import torch

from mmdidb.ops import unpack_mask, unpack_signs

BINARIZER_TYPES = ('RSign', 'ElasticBinarizer')


def randomise(model, seed=0):
    """Give every shift/scale/offset parameter a non-trivial value.

    At initialisation most of them are 0 (RSign shifts, IRPReLU offsets,
    DIBA's local scale), which would leave code paths untested.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(('beta', 'gamma', 'zeta', 'token_offset',
                              'local_difference.scale')):
                param.copy_(torch.rand(param.shape, generator=generator)
                            * 0.6 - 0.3)
    return model


@contextlib.contextmanager
def record_binarized(model):
    """Record the output of every binarizer module of ``model``, by name.

    Yields:
        dict: module name -> list of output tensors, one per call.
    """
    records = {}
    handles = []
    for name, module in model.named_modules():
        if type(module).__name__ in BINARIZER_TYPES:
            def hook(mod, args, out, name=name):
                records.setdefault(name, []).append(out.detach().clone())
            handles.append(module.register_forward_hook(hook))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def record_products(monkeypatch):
    """Record every packed product the deploy graph runs.

    Yields:
        list: ``(kind, left_pm1_or_mask, right_pm1, counts)`` per call, the
        operands unpacked to float64.
    """
    from mmdidb.models.deploy import packed_ops
    calls = []
    real_pm1, real_mask = packed_ops.bmm_pm1, packed_ops.bmm_mask_pm1

    def pm1(a, b, k, backend=None):
        out = real_pm1(a, b, k, backend)
        calls.append(('pm1', unpack_signs(a, k, dtype=torch.float64),
                      unpack_signs(b, k, dtype=torch.float64), out))
        return out

    def mask(a, b, k, backend=None):
        out = real_mask(a, b, k, backend)
        calls.append(('mask', unpack_mask(a, k, dtype=torch.float64),
                      unpack_signs(b, k, dtype=torch.float64), out))
        return out

    monkeypatch.setattr(packed_ops, 'bmm_pm1', pm1)
    monkeypatch.setattr(packed_ops, 'bmm_mask_pm1', mask)
    yield calls


def assert_products_exact(calls):
    """Each recorded integer result equals the float64 product exactly."""
    assert calls, 'no packed product ran'
    for kind, left, right, counts in calls:
        assert counts.dtype == torch.int32
        expected = left @ right.transpose(-2, -1)
        assert torch.equal(counts.to(torch.float64).cpu(), expected.cpu()), \
            kind


def assert_same_binarized(train, deploy):
    """Both graphs binarized exactly the same tensors, call by call."""
    assert train.keys() == deploy.keys()
    for name in train:
        assert len(train[name]) == len(deploy[name]), name
        for a, b in zip(train[name], deploy[name]):
            assert torch.equal(a, b), name


def count_mismatches(train, deploy):
    """``(differing elements, all elements)`` over two binarizer records."""
    assert train.keys() == deploy.keys()
    differ = total = 0
    for name in train:
        assert len(train[name]) == len(deploy[name]), name
        for a, b in zip(train[name], deploy[name]):
            total += a.numel()
            differ += (a != b.to(a.dtype)).sum().item()
    return differ, total


def layerwise_mismatches(model, deploy, x):
    """Run each deployed encoder layer on the training graph's input to it.

    A flip caused by float rounding then cannot cascade through the later
    layers, so what is left is the rate at which the two graphs binarize a
    value differently.

    Returns:
        list: per layer, ``(differing binarized elements, all of them, max
        |output difference|)``.
    """
    inputs = []
    handles = [
        layer.register_forward_pre_hook(
            lambda mod, args: inputs.append((args[0].detach(), args[1])))
        for layer in model.backbone.layers
    ]
    try:
        with torch.no_grad():
            model(x, mode='tensor')
    finally:
        for handle in handles:
            handle.remove()
    results = []
    pairs = zip(model.backbone.layers, deploy.backbone.layers, inputs)
    for train_layer, deploy_layer, (tokens, hw_shape) in pairs:
        with torch.no_grad(), record_binarized(train_layer) as train:
            expected = train_layer(tokens, hw_shape)
        dtype = next(deploy_layer.parameters()).dtype
        with torch.no_grad(), record_binarized(deploy_layer) as deployed:
            out = deploy_layer(tokens.to(dtype), hw_shape).to(tokens.dtype)
        differ, total = count_mismatches(train, deployed)
        results.append((differ, total, (out - expected).abs().max().item()))
    return results
