"""Helpers the command-line tools share."""
import numbers
import os
import os.path as osp

from mmengine.config import Config, DictAction


def load_config(path: str) -> Config:
    """Read a config file, with a clear error when it is not there."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    return Config.fromfile(path)


def format_metrics(metrics: dict) -> str:
    """``name: value`` pairs, real numbers (numpy's too) with 4 decimals."""
    return ', '.join(
        f'{k}: {v:.4f}' if isinstance(v, numbers.Real) and
        not isinstance(v, numbers.Integral) else f'{k}: {v}'
        for k, v in (metrics or {}).items())


def add_common_args(parser) -> None:
    """The arguments ``tools/train.py`` and ``tools/test.py`` share."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config_with_args(args) -> Config:
    """Load ``args.config`` and apply the arguments of :func:`add_common_args`.

    ``--cfg-options`` are merged first, so the tool-specific arguments
    applied afterwards win; the work dir defaults to
    ``work_dirs/<config name>``.
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def destroy_process_group() -> None:
    """Tear down the default process group, if one is up, once all ranks are done.

    mmengine's Runner creates the group (``--launcher pytorch``) but never
    destroys it. A gloo group still alive at interpreter shutdown leaves its
    native worker threads joinable while C++ statics are destroyed, and
    the process can then die by SIGABRT ("terminate called without an
    active exception") after a run that succeeded. Call this on the success
    path only: the barrier waits for every rank. Drop the runner first
    (``del runner``): its DDP wrapper holds the group too.
    """
    import gc

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        # objects that hold the group in C++ (DDP's reducer) must go first:
        # the group dies with its last holder, and that must happen here,
        # while the interpreter is fully alive
        gc.collect()
        dist.destroy_process_group()
        gc.collect()


def write_benchmark_section(path: str, text: str, section: str) -> None:
    """Replace (or append) one ``## `` section of a benchmarks file.

    Args:
        path (str): The Markdown file, e.g. ``docs/benchmarks.md``; created
            with a ``# Benchmarks`` title if missing.
        text (str): The new section, starting with its ``section`` heading.
        section (str): The heading line's start that identifies the old
            section; everything from it to the next ``## `` heading goes.
    """
    old = open(path).read() if osp.exists(path) else '# Benchmarks\n'
    start = old.find(section)
    if start >= 0:
        end = old.find('\n## ', start + len(section))
        old = old[:start] + (old[end + 1:] if end >= 0 else '')
    with open(path, 'w') as f:
        f.write(old.rstrip('\n') + '\n\n' + text)


def append_benchmark_entry(path, text: str, heading: str) -> None:
    """Add one entry at the end of a ``## `` section of a benchmarks file.

    Unlike :func:`write_benchmark_section`, the section's earlier entries
    stay: every run of a benchmark adds its own ``### `` entry (command,
    machine, date, table) after them, before the next ``## `` section.

    Args:
        path (str | Path): The Markdown file, e.g. ``docs/benchmarks.md``;
            created with a ``# Benchmarks`` title if missing.
        text (str): The entry, usually starting with a ``### `` line.
        heading (str): The section's ``## `` heading line; appended at the
            end of the file when the file has no such section yet.
    """
    path = str(path)
    content = open(path).read() if osp.exists(path) else '# Benchmarks\n'
    if heading not in content:
        content = content.rstrip('\n') + f'\n\n{heading}\n'
    start = content.index(heading) + len(heading)
    nxt = content.find('\n## ', start)
    block = '\n' + text.rstrip('\n') + '\n'
    if nxt == -1:
        content = content.rstrip('\n') + '\n' + block
    else:
        content = content[:nxt].rstrip('\n') + '\n' + block + content[nxt:]
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write(content)
