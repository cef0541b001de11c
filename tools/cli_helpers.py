"""What ``tools/train.py`` and ``tools/test.py`` share: their common arguments,
the config built from them, how metrics are printed and how a run ends.

A module beside the two scripts, not a script: each imports it as
``cli_helpers`` (Python puts a script's own folder first on ``sys.path``).
"""
import numbers
import os
import os.path as osp

from mmengine.config import Config, DictAction

from mmdidb.apis import load_config


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
