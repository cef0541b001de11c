"""Train a classification or segmentation model with mmdidb.

Same command line as mmpretrain's and mmseg's ``tools/train.py``; the config's
``default_scope`` picks the codebase. ``mmdidb`` is imported first so its
compatibility fixes are in place before anything else is.
"""
import argparse

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmdidb  # noqa: F401  (applies mmdidb.compat before mmpretrain loads)
from mmdidb.engine import MetricsRecorderHook
from mmdidb.utils.checkpoint_sources import check_config_checkpoints

from cli_helpers import (
    add_common_args,
    destroy_process_group,
    format_metrics,
    load_config_with_args,
)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    add_common_args(parser)
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest checkpoint in the work directory')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--no-validate', action='store_true', help='skip validation')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the real batch size (auto_scale_lr)')
    return parser.parse_args()


def merge_args(cfg, args):
    """Merge the training-only command-line arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    return cfg


def main():
    args = parse_args()
    cfg = merge_args(load_config_with_args(args), args)
    # before anything is built or any process group joined: a missing
    # checkpoint or an unreachable URL names the config key to override
    check_config_checkpoints(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    recorder = MetricsRecorderHook()
    runner.register_hook(recorder)
    runner.train()
    if recorder.last_metrics:
        runner.logger.info(
            f'Final validation metrics of {args.config}: '
            f'{format_metrics(recorder.last_metrics)} '
            f'(training time {recorder.train_seconds:.0f} s)')
    del runner  # its DDP wrapper holds the process group
    destroy_process_group()


if __name__ == '__main__':
    main()
