"""Compile the CUDA kernel sources without a GPU, to catch errors in CI.

At run time CuPy compiles ``csrc/*.cu`` with NVRTC on the GPU machine; a
syntax or PTX error would only show up there. These helpers compile each
source ahead of time:

- :func:`compile_with_nvcc`: ``nvcc -cubin -arch=sm_XX`` (runs ``ptxas`` too,
  so invalid PTX such as an ``mma`` shape the arch lacks is caught);
- :func:`compile_with_nvrtc`: NVRTC itself through CuPy's low-level
  bindings, which need no GPU either; it proves the source needs no host
  header (nvcc silently includes ``cuda_runtime.h``, NVRTC does not).

Command line: ``python -m mmdidb.ops.compile_check [--arch sm_80 ...]``.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

SOURCE_DIR = Path(__file__).resolve().parent / 'csrc'
#: sm_90a: Hopper's architecture-specific target (wgmma); bmm_wgmma.cu is
#: loaded from an nvcc-built sm_90a cubin, the other sources compile to the
#: same code as for sm_90.
DEFAULT_ARCHS = ('sm_80', 'sm_90', 'sm_90a')
NVCC_FLAGS = ('-std=c++17', '--Werror', 'all-warnings')


class CudaCompileError(RuntimeError):
    """A CUDA source failed to compile; ``log`` holds the compiler output."""

    def __init__(self, message: str, log: str = ''):
        super().__init__(f'{message}\n{log}' if log else message)
        self.log = log


def cuda_sources(directory: Union[str, Path] = SOURCE_DIR) -> List[Path]:
    """List the ``.cu`` kernel sources of the package.

    Args:
        directory: Folder to scan (default: ``mmdidb/ops/csrc``).

    Returns:
        Sorted paths of the ``*.cu`` files.
    """
    return sorted(Path(directory).glob('*.cu'))


def find_nvcc() -> Optional[str]:
    """Locate ``nvcc``: ``PATH``, then ``$CUDA_HOME/bin``, then /usr/local/cuda.

    Returns:
        Path of the executable, or None when there is none.
    """
    found = shutil.which('nvcc')
    if found:
        return found
    for root in (os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH'),
                 '/usr/local/cuda'):
        if root and os.access(os.path.join(root, 'bin', 'nvcc'), os.X_OK):
            return os.path.join(root, 'bin', 'nvcc')
    return None


def _source_text(source: Union[str, Path]) -> tuple:
    """Return ``(name, text)`` for a path or for source code given inline."""
    if isinstance(source, Path) or (isinstance(source, str)
                                    and '\n' not in source
                                    and source.endswith('.cu')):
        path = Path(source)
        return path.name, path.read_text()
    return 'inline.cu', str(source)


def arch_flags(arch: str) -> List[str]:
    """nvcc flags selecting one real architecture.

    Architecture-specific targets (``sm_90a``) use the ``-gencode`` form:
    with nvcc 13.0 the ``-arch=sm_90a`` shorthand also ran a plain sm_90
    pass that rejects wgmma (seen with nvcc 13 for sm_90).

    Args:
        arch: ``'sm_80'``, ``'sm_90a'``, ...

    Returns:
        The flags.
    """
    if arch.endswith('a'):
        number = arch[len('sm_'):]
        return [f'-gencode=arch=compute_{number},code=sm_{number}']
    return [f'-arch={arch}']


def compile_with_nvcc(source: Union[str, Path], arch: str = 'sm_80',
                      nvcc: Optional[str] = None,
                      extra_flags: Sequence[str] = (),
                      timeout: float = 300,
                      output: Optional[Union[str, Path]] = None) -> str:
    """Compile one source to a cubin with nvcc, in a temporary folder.

    Args:
        source: Path of a ``.cu`` file, or CUDA source code.
        arch: Real architecture, e.g. ``'sm_80'`` or ``'sm_90a'``.
        nvcc: nvcc executable (default: :func:`find_nvcc`).
        extra_flags: More nvcc flags.
        timeout: Seconds before the compiler is stopped.
        output: Keep the cubin at this path (default: discard it).

    Returns:
        The compiler's output (warnings, if any; usually empty).

    Raises:
        FileNotFoundError: No nvcc found.
        CudaCompileError: nvcc failed; the error carries its log.
    """
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise FileNotFoundError('nvcc not found (PATH, CUDA_HOME, /usr/local/cuda)')
    name, text = _source_text(source)
    with tempfile.TemporaryDirectory(prefix='mmdidb_nvcc_') as tmp:
        src = Path(tmp) / name
        src.write_text(text)
        target = Path(output) if output else Path(tmp) / (src.stem + '.cubin')
        cmd = [nvcc, '-cubin', *arch_flags(arch), *NVCC_FLAGS, *extra_flags,
               '-o', str(target), str(src)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            raise CudaCompileError(
                f'nvcc timed out after {timeout} s on {name} ({arch})') from err
    log = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise CudaCompileError(
            f'nvcc failed on {name} for {arch} (exit {proc.returncode}): '
            f'{" ".join(cmd)}', log)
    return log


def nvrtc_available() -> bool:
    """Whether CuPy's NVRTC bindings import and find ``libnvrtc``.

    Returns:
        True if :func:`compile_with_nvrtc` can run.
    """
    try:
        from cupy_backends.cuda.libs import nvrtc  # noqa: PLC0415
        nvrtc.getVersion()
    except Exception:  # noqa: BLE001  (ImportError, library not found, ...)
        return False
    return True


def compile_with_nvrtc(source: Union[str, Path], arch: str = 'sm_80',
                       options: Sequence[str] = ('-std=c++17', )) -> str:
    """Compile one source to PTX with NVRTC, as CuPy will at run time.

    Args:
        source: Path of a ``.cu`` file, or CUDA source code.
        arch: ``'sm_80'`` style; compiled for the virtual ``compute_80``.
        options: More NVRTC options.

    Returns:
        The PTX text.

    Raises:
        ImportError: CuPy or NVRTC is not available.
        CudaCompileError: NVRTC failed; the error carries its log.
    """
    from cupy_backends.cuda.libs import nvrtc  # noqa: PLC0415

    name, text = _source_text(source)
    virtual = arch.replace('sm_', 'compute_')
    prog = nvrtc.createProgram(text, name, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, [f'-arch={virtual}', *options])
        except nvrtc.NVRTCError as err:
            raise CudaCompileError(f'NVRTC failed on {name} for {virtual}',
                                   nvrtc.getProgramLog(prog)) from err
        ptx = nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
    return ptx.decode() if isinstance(ptx, bytes) else ptx


def check_all(archs: Iterable[str] = DEFAULT_ARCHS,
              sources: Optional[Iterable[Union[str, Path]]] = None,
              nvrtc: bool = False) -> Dict[tuple, str]:
    """Compile every source for every arch; collect all failures.

    Args:
        archs: Real architectures for nvcc.
        sources: Files to compile (default: :func:`cuda_sources`).
        nvrtc: Also compile each source with NVRTC (needs CuPy).

    Returns:
        ``{(file name, arch, compiler): log}`` for the successful builds.

    Raises:
        FileNotFoundError: No nvcc, or no source to compile.
        CudaCompileError: At least one build failed; the message lists all.
    """
    sources = list(cuda_sources() if sources is None else sources)
    if not sources:
        raise FileNotFoundError(f'no .cu sources found in {SOURCE_DIR}')
    logs, failures = {}, []
    for source in sources:
        name = _source_text(source)[0]
        for arch in archs:
            try:
                logs[(name, arch, 'nvcc')] = compile_with_nvcc(source, arch)
            except CudaCompileError as err:
                failures.append(str(err))
            if nvrtc:
                try:
                    compile_with_nvrtc(source, arch)  # returns PTX, not a log
                    logs[(name, arch, 'nvrtc')] = ''
                except CudaCompileError as err:
                    failures.append(str(err))
    if failures:
        raise CudaCompileError(
            f'{len(failures)} CUDA build(s) failed', '\n\n'.join(failures))
    return logs


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit status: 0 when everything compiled.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', action='append', dest='archs',
                        help='real arch, repeatable (default: sm_80, sm_90, '
                        'sm_90a)')
    parser.add_argument('--nvrtc', action='store_true',
                        help='also compile with NVRTC through CuPy')
    args = parser.parse_args(argv)
    try:
        logs = check_all(args.archs or DEFAULT_ARCHS, nvrtc=args.nvrtc)
    except (CudaCompileError, FileNotFoundError) as err:
        print(err, file=sys.stderr)
        return 1
    for (name, arch, compiler), log in sorted(logs.items()):
        print(f'ok  {compiler:5s} {arch}  {name}' + (f'\n{log}' if log else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
