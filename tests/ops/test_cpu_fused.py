"""The fused CPU kernels (mmdidb/ops/csrc/cpu_fused.c) against torch.

Every value a kernel writes must equal the torch formulation bit for bit
(same float operations, no fused multiply-add); the per-channel sums, the
parameter gradients, equal torch's float sums to rounding. The layers that
call the kernels are compared with the kernels turned off, so a kernel
that is wrong, or a layer that wires it wrongly, fails here.
"""
import pytest
import torch
import torch.nn.functional as F

from mmdidb.models.layers import BinaryLinear, IRPReLU, RSign
from mmdidb.models.layers.binarizers import _sign_, approx_sign_slope
from mmdidb.ops import cpu_fused

pytestmark = pytest.mark.skipif(
    not cpu_fused.available(),
    reason='no C compiler: the fused CPU kernels cannot be built (the '
    'layers then use the torch passes)')


@pytest.fixture
def torch_path(monkeypatch):
    """Run the layers with the C kernels off (the torch formulation)."""

    def off():
        monkeypatch.setitem(cpu_fused._state, 'lib', None)

    return off


def _inputs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 1.5
    # exact zeros and values on the kinks of both functions
    x.view(-1)[:7] = torch.tensor([0., 1., -1., 0.5, -0., 2., -2.])
    return x, g


def test_sign_shift_equals_torch_bit_for_bit():
    x, g = _inputs((6, 9, 40))
    beta = torch.randn(40, generator=g)
    x[0, 0, :3] = -beta[:3]  # x + beta == 0 exactly -> +1
    want = _sign_(x + beta)
    got = cpu_fused.sign_shift(x, beta)
    assert torch.equal(got, want)
    assert got[0, 0, :3].tolist() == [1., 1., 1.]


def test_approx_sign_backward_equals_torch():
    x, g = _inputs((5, 11, 24))
    beta = torch.randn(24, generator=g) * 0.2
    grad = torch.randn(x.shape, generator=g)
    want = approx_sign_slope(x + beta).mul_(grad)
    got, channel_sum, signs = cpu_fused.approx_sign_backward_(
        grad.clone(), x, beta, want_signs=True)
    assert torch.equal(got, want)
    assert torch.equal(signs, _sign_(x + beta))
    assert channel_sum.dtype == torch.float64
    torch.testing.assert_close(channel_sum.float(), want.sum((0, 1)),
                               rtol=1e-5, atol=1e-5)
    # the sum covers more rows than one float block (64)
    assert x.numel() // 24 > 64 - 10


def test_approx_sign_backward_propagates_nan():
    x = torch.tensor([[0.2, float('nan'), 3.0]])
    got, _, _ = cpu_fused.approx_sign_backward_(torch.ones(1, 3), x,
                                                torch.zeros(3))
    assert got[0, 0].item() == pytest.approx(1.6)
    assert torch.isnan(got[0, 1]) and got[0, 2].item() == 0.0


@pytest.mark.parametrize('channels,shift_shape', [
    (32, (13, 32)),  # per-token and per-channel offset (DIDB-ViT's IRPReLU)
    (32, (13, 1)),
    (32, (32, )),
    (1, (1, )),
])
def test_shifted_prelu_equals_torch(channels, shift_shape):
    x, g = _inputs((70, 13, 32))
    gamma = torch.randn(channels, generator=g) * 0.3
    slope = torch.rand(channels, generator=g) - 0.3  # negative slopes too
    shift = torch.randn(shift_shape, generator=g)
    x[0, 0, 10] = gamma[10 % channels]  # x - gamma == 0: the slope side
    shifted = x - gamma
    want = F.prelu(shifted.reshape(-1, 32), slope).view_as(x) + shift
    assert torch.equal(cpu_fused.shifted_prelu(x, gamma, slope, shift), want)

    grad = torch.randn(x.shape, generator=g)
    gx, gsum, gslope, gshift = cpu_fused.shifted_prelu_backward(
        grad, x, gamma, slope, torch.Size(shift_shape))
    neg = (shifted <= 0).float()
    want_gx = torch.where(shifted <= 0, grad * slope, grad)
    assert torch.equal(gx, want_gx)
    torch.testing.assert_close(gsum.float(), want_gx.sum((0, 1)),
                               rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(gslope.float(),
                               (grad * neg * shifted).sum((0, 1)),
                               rtol=1e-5, atol=1e-4)
    per_token = len(shift_shape) == 2 and shift_shape[0] != 1
    torch.testing.assert_close(
        gshift.float(), grad.sum(0) if per_token else grad.sum((0, 1))[None],
        rtol=1e-5, atol=1e-4)


def _layer_run(layer, x, seed=1):
    x = x.clone().requires_grad_()
    y = layer(x)
    g = torch.Generator().manual_seed(seed)
    y.backward(torch.randn(y.shape, generator=g))
    grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
    layer.zero_grad(set_to_none=True)
    return y.detach(), x.grad, grads


@pytest.mark.parametrize('make', [
    lambda: IRPReLU(32, num_tokens=13, num_extra_tokens=1),
    lambda: IRPReLU(),
    lambda: RSign(32),
    lambda: BinaryLinear(32, 16),
], ids=['irprelu', 'rprelu-shared', 'rsign', 'binary-linear'])
def test_layers_give_the_torch_path_numbers(make, torch_path, monkeypatch):
    used = []
    for name in ('sign_shift', 'approx_sign_backward_', 'shifted_prelu',
                 'shifted_prelu_backward'):
        kernel = getattr(cpu_fused, name)
        monkeypatch.setattr(cpu_fused, name,
                            lambda *a, _k=kernel, _n=name, **kw:
                            (used.append(_n), _k(*a, **kw))[1])
    torch.manual_seed(0)
    layer = make()
    with torch.no_grad():  # parameters away from their zero init
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x, _ = _inputs((9, 13, 32))
    fused = _layer_run(layer, x)
    assert len(set(used)) == 2  # the layer's forward and backward kernels
    torch_path()
    plain = _layer_run(layer, x)
    assert torch.equal(fused[0], plain[0])
    assert torch.equal(fused[1], plain[1])
    for name, grad in plain[2].items():
        torch.testing.assert_close(fused[2][name], grad, rtol=1e-5,
                                   atol=1e-5, msg=name)
        # the gradient is a real one, not a zero both paths agree on
        assert grad.abs().max() > 1e-2, name


def test_other_dtypes_take_the_torch_path(monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_fused, 'shifted_prelu',
                        lambda *a: calls.append(a))
    layer = IRPReLU(8).double()
    y = layer(torch.randn(2, 3, 8, dtype=torch.float64))
    assert y.dtype == torch.float64 and calls == []


def test_missing_compiler_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv('CC', 'no-such-compiler-xyz')
    with pytest.raises(cpu_fused.CpuKernelBuildError,
                       match='no-such-compiler-xyz.*install gcc or set CC'):
        cpu_fused.build(tmp_path / 'lib.so')


def test_switch_off_keeps_the_torch_path(monkeypatch):
    monkeypatch.setenv('MMDIDB_CPU_KERNELS', '0')
    monkeypatch.delitem(cpu_fused._state, 'lib', raising=False)
    assert not cpu_fused.available()
    monkeypatch.delitem(cpu_fused._state, 'lib')
    monkeypatch.delenv('MMDIDB_CPU_KERNELS')
    assert cpu_fused.available()


def test_thread_count_changes_no_bit(monkeypatch):
    # big enough to be split over threads (rows * C >= 2**15, C >= 32), an
    # odd channel count so the last slice is not a multiple of 16, and per
    # token shifts (T = 37 rows) so the shift table's sums are split too
    x, g = _inputs((8, 37, 200))
    beta = torch.randn(200, generator=g) * 0.2
    gamma, slope = torch.randn(200, generator=g), torch.rand(200,
                                                             generator=g)
    shift = torch.randn(37, 200, generator=g)
    grad = torch.randn(x.shape, generator=g)
    results = []
    for count in (1, 2, 3):
        monkeypatch.setenv('MMDIDB_CPU_THREADS', str(count))
        out = [cpu_fused.sign_shift(x, beta)]
        out += cpu_fused.approx_sign_backward_(grad.clone(), x, beta,
                                               want_signs=True)
        out.append(cpu_fused.shifted_prelu(x, gamma, slope, shift))
        out += cpu_fused.shifted_prelu_backward(grad, x, gamma, slope,
                                                shift.shape)
        results.append(out)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_kernel_threads_come_from_the_environment(monkeypatch):
    from mmdidb.ops import native
    monkeypatch.delenv(native.ENV_THREADS, raising=False)
    assert native.kernel_threads() == 1
    monkeypatch.setenv(native.ENV_THREADS, '3')
    assert native.kernel_threads() == 3
    monkeypatch.setenv(native.ENV_THREADS, '0')
    with pytest.raises(ValueError, match='MMDIDB_CPU_THREADS must be'):
        native.kernel_threads()
