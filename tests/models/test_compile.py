"""torch.compile of a DIDB-ViT gives the eager training graph's numbers.

The Haar split pads by concatenation because torch's CPU compiler rejects
``replication_pad2d_backward`` (wrong strides, torch 2.13); with F.pad's
replicate mode this test fails at the backward pass. Compiling on CPU takes
about a minute on 2 cores the first time (inductor caches it after). The
CUDA case (Triton kernels; tools/gpu_checks.sh runs it) skips without a GPU.
"""
import pytest
import torch

from mmdidb.models import DIDBViT


def _forward_backward(model, params_of, x):
    model.zero_grad(set_to_none=True)
    out = model(x)[-1]
    g = torch.Generator().manual_seed(1)
    (out * torch.randn(out.shape, generator=g).to(out.device)).sum().backward()
    return out.detach(), {n: p.grad.clone()
                          for n, p in params_of.named_parameters()}


@pytest.mark.parametrize('device', [
    'cpu',
    pytest.param('cuda', marks=pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason='needs a CUDA GPU (tools/gpu_checks.sh runs it)'))])
def test_compiled_training_graph_equals_eager(device, monkeypatch):
    if device == 'cuda':
        # exact FP32 products in both graphs (cuDNN convolutions default to
        # TF32, which would differ by more than the tolerance below)
        monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
        monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)
    torch.manual_seed(0)
    # 7x7 patch grid: odd, so the Haar split pads its last row and column
    model = DIDBViT(arch=dict(embed_dims=32, num_layers=1, num_heads=2,
                              feedforward_channels=64),
                    img_size=28, patch_size=4, in_channels=1)
    with torch.no_grad():  # away from the zero inits of shifts and offsets
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.to(device)
    x = torch.randn(4, 1, 28, 28).to(device)
    eager_out, eager_grads = _forward_backward(model, model, x)
    out, grads = _forward_backward(torch.compile(model), model, x)

    torch.testing.assert_close(out, eager_out, rtol=1e-5, atol=1e-5)
    # float tolerance against the model's largest gradient: some token
    # offsets get only rounding noise (docs/method.md, choice 26)
    scale = max(g.abs().max() for g in eager_grads.values())
    assert scale > 1e-2
    for name, grad in eager_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4,
                                   atol=1e-4 * scale, msg=name)
