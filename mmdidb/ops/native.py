"""Building and loading the plain-C CPU kernels of :mod:`mmdidb.ops`.

The C sources in ``csrc/`` are compiled on first use with the system C
compiler (``$CC``, default ``cc``) into ``$MMDIDB_CPU_KERNEL_DIR`` (default
``~/.cache/mmdidb``), one shared library per source and flags, keyed by
their hash so that an edited source is rebuilt, and loaded with ctypes
(which releases the GIL during each call). ``MMDIDB_CPU_KERNELS=0`` turns
every C path off: callers then use the torch formulation, which computes
the same numbers.

Threads: the kernels can split their work over POSIX threads, but by
default they run on the calling thread only. Measured on a 2-core machine
(docs/benchmarks.md, "CPU inference" and "Training step"), a second kernel
thread made every model slower at 2 torch threads: it must first win the
other core from torch's OpenMP workers, which spin for a while after each
parallel region. ``MMDIDB_CPU_THREADS=N`` lets the kernels use N threads.
"""
import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional, Sequence

CSRC = Path(__file__).parent / 'csrc'
ENV_SWITCH = 'MMDIDB_CPU_KERNELS'
ENV_THREADS = 'MMDIDB_CPU_THREADS'

logger = logging.getLogger(__name__)


class CpuKernelBuildError(RuntimeError):
    """The C compiler could not build a kernel source."""


def enabled() -> bool:
    """Whether ``MMDIDB_CPU_KERNELS`` allows the C kernels (default yes)."""
    return os.environ.get(ENV_SWITCH, '1').strip() != '0'


def kernel_threads() -> int:
    """Threads a C kernel may use: ``$MMDIDB_CPU_THREADS``, default 1.

    Raises:
        ValueError: The variable is not a positive integer.
    """
    value = os.environ.get(ENV_THREADS, '').strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f'{ENV_THREADS} must be a positive integer, got '
                         f'{value!r}')
    return int(value)


def library_path(source: Path, cflags: Sequence[str]) -> Path:
    """Where the shared library of ``source`` built with ``cflags`` goes."""
    # the headers beside the source count too: an edited header rebuilds
    headers = b''.join(h.read_bytes() for h in sorted(CSRC.glob('*.h')))
    digest = hashlib.sha256(source.read_bytes() + headers +
                            ' '.join(cflags).encode())
    root = Path(os.environ.get('MMDIDB_CPU_KERNEL_DIR',
                               Path.home() / '.cache' / 'mmdidb'))
    return root / f'{source.stem}_{digest.hexdigest()[:16]}.so'


def build(source: Path, cflags: Sequence[str], libs: Sequence[str] = (),
          path: Optional[Path] = None) -> Path:
    """Compile ``source`` into a shared library, once per source and flags.

    The library is written under a temporary name and renamed, so parallel
    processes (pytest-xdist, distributed workers) never load half a file.

    Args:
        source (Path): The C file.
        cflags (Sequence[str]): Compiler flags (``-shared -fPIC`` included).
        libs (Sequence[str]): Linker flags after the source, e.g. ``-lm``.
        path (Path, optional): Output file; defaults to
            :func:`library_path`.

    Returns:
        Path: The shared library.

    Raises:
        CpuKernelBuildError: No C compiler, or it failed (its output is in
            the message).
    """
    path = Path(path or library_path(source, cflags))
    if path.exists():
        return path
    compiler = shutil.which(os.environ.get('CC', 'cc'))
    if compiler is None:
        raise CpuKernelBuildError(
            f'no C compiler ({os.environ.get("CC", "cc")!r} is not on PATH); '
            'install gcc or set CC')
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f'.{os.getpid()}.tmp')
    proc = subprocess.run([compiler, *cflags, str(source), '-o', str(tmp),
                           *libs], capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise CpuKernelBuildError(f'{compiler} failed on {source}:\n'
                                  f'{proc.stderr}')
    tmp.replace(path)
    return path


def load(source: Path, cflags: Sequence[str], libs: Sequence[str] = (),
         what: str = 'CPU kernels') -> Optional[ctypes.CDLL]:
    """Build (if needed) and load ``source``; None when disabled or unusable.

    A library that cannot be built is logged once as a warning naming the
    reason; the caller falls back to its torch formulation.
    """
    if not enabled():
        return None
    try:
        return ctypes.CDLL(str(build(source, cflags, libs)))
    except (CpuKernelBuildError, OSError) as err:
        logger.warning('mmdidb: the %s are unavailable, the (slower, '
                       'same-valued) torch path is used: %s', what, err)
        return None
