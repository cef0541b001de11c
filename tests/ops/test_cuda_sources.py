"""Every CUDA kernel source compiles for sm_80 and sm_90 (no GPU needed)."""
import re

import pytest

from mmdidb.ops import compile_check
from mmdidb.ops.cuda_backend import KERNELS, SOURCES

NVCC = compile_check.find_nvcc()
needs_nvcc = pytest.mark.skipif(
    NVCC is None, reason='nvcc (CUDA toolkit) not found: cannot compile the '
    'CUDA sources')
needs_nvrtc = pytest.mark.skipif(
    not compile_check.nvrtc_available(),
    reason='CuPy NVRTC bindings / libnvrtc not installed (cuda extra)')

BROKEN = '''
extern "C" __global__ void broken(int* out) {
  out[threadIdx.x] = undefined_symbol;
}
'''


def test_every_source_is_packaged_and_listed():
    files = {path.name for path in compile_check.cuda_sources()}
    assert files == set(SOURCES.values())
    for name, source in SOURCES.items():
        text = (compile_check.SOURCE_DIR / source).read_text()
        for kernel in KERNELS[name]:
            assert re.search(rf'\b{kernel}\b', text), kernel


@needs_nvcc
@pytest.mark.parametrize('arch', compile_check.DEFAULT_ARCHS)
@pytest.mark.parametrize('source', compile_check.cuda_sources(),
                         ids=lambda path: path.name)
def test_source_compiles_with_nvcc(source, arch):
    compile_check.compile_with_nvcc(source, arch)


@needs_nvcc
def test_broken_source_raises_with_log():
    with pytest.raises(compile_check.CudaCompileError) as info:
        compile_check.compile_with_nvcc(BROKEN, 'sm_80')
    assert 'undefined_symbol' in info.value.log
    with pytest.raises(compile_check.CudaCompileError, match='1 CUDA build'):
        compile_check.check_all(['sm_80'], sources=[BROKEN])


@needs_nvcc
def test_mma_needs_sm80():
    # The b1 mma shape does not exist before sm_80; ptxas must refuse it
    # there (the source guards it with __CUDA_ARCH__ and traps instead).
    source = compile_check.SOURCE_DIR / SOURCES['mma']
    unguarded = source.read_text().replace(
        '#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ < 800)', '#if 0')
    with pytest.raises(compile_check.CudaCompileError):
        compile_check.compile_with_nvcc(unguarded, 'sm_75')


@needs_nvrtc
@pytest.mark.parametrize('source', compile_check.cuda_sources(),
                         ids=lambda path: path.name)
def test_source_compiles_with_nvrtc(source):
    name = next(key for key, value in SOURCES.items() if value == source.name)
    for arch in compile_check.DEFAULT_ARCHS:
        ptx = compile_check.compile_with_nvrtc(source, arch)
        for kernel in KERNELS[name]:
            assert f'.entry {kernel}(' in ptx


@needs_nvrtc
def test_broken_source_raises_with_nvrtc():
    with pytest.raises(compile_check.CudaCompileError,
                       match='undefined_symbol'):
        compile_check.compile_with_nvrtc(BROKEN, 'sm_80')
