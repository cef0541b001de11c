"""torchrun, plus a plain report of the workers that died by a signal.

``tools/dist_train.sh`` and ``tools/dist_test.sh`` start their processes
through this script. It takes torchrun's arguments unchanged. torchrun alone
reports a worker killed by the kernel as a bare ``exitcode: -9``; this
says which rank, which signal and, for SIGKILL, that running out of memory
is the usual cause.

It imports neither mmdidb nor OpenMMLab, so the launcher starts fast.
"""
import signal
import sys

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run

HINTS = {
    signal.SIGKILL: ('the usual cause is the kernel\'s out-of-memory killer '
                     '(check `dmesg | grep -i oom`); lower the batch size '
                     'per process, the crop size or the number of processes'),
    signal.SIGTERM: ('usually the launcher stopping this worker after '
                     'another one failed: look at the other ranks first'),
    signal.SIGABRT: 'aborted by native code: the lines above it say where',
    signal.SIGSEGV: 'a crash in native code',
}


def describe_failure(rank: int, exitcode: int) -> str:
    """One line saying how worker ``rank`` ended with ``exitcode``.

    Args:
        rank (int): Global rank of the worker.
        exitcode (int): Its exit status as torchrun records it; a negative
            value ``-N`` means that signal ``N`` ended it.
    """
    if exitcode >= 0:
        return f'rank {rank} exited with status {exitcode}'
    try:
        sig = signal.Signals(-exitcode)
    except ValueError:
        return f'rank {rank} was killed by signal {-exitcode}'
    line = f'rank {rank} was killed by {sig.name} (signal {sig.value})'
    hint = HINTS.get(sig)
    return f'{line}: {hint}' if hint else line


def exit_status(exitcode: int) -> int:
    """The shell's convention: 128 + N for a signal N, else the code."""
    return 128 - exitcode if exitcode < 0 else max(exitcode, 1)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except ChildFailedError as error:
        print('\nDistributed run failed:', file=sys.stderr)
        for rank, failure in sorted(error.failures.items()):
            print('  ' + describe_failure(rank, failure.exitcode),
                  file=sys.stderr)
        _, first = error.get_first_failure()
        return exit_status(first.exitcode)
    return 0


if __name__ == '__main__':
    sys.exit(main())
