"""Evaluate a checkpoint with mmdidb (classification or segmentation).

A deploy checkpoint (``tools/deploy/convert.py``) is evaluated the same way:
the model switches itself to deploy mode when it loads packed weights, and
the log line of the metrics says so.
"""
import argparse
import copy

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmdidb  # noqa: F401  (applies mmdidb.compat before mmpretrain loads)

from cli_helpers import (
    add_common_args,
    destroy_process_group,
    format_metrics,
    load_config_with_args,
)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_common_args(parser)
    parser.add_argument(
        '--show-dir',
        help='write the drawn predictions here: for segmentation, image + '
        'ground truth + prediction overlays from mmseg\'s visualizer')
    parser.add_argument(
        '--show-interval',
        type=int,
        help='with --show-dir, draw every N-th test batch (default: the '
        'visualization hook\'s interval, 50 in mmseg)')
    parser.add_argument(
        '--cuda-graph',
        action='store_true',
        help='run the backbone as a CUDA graph captured for the first '
        'batch\'s shape (other shapes run eagerly); needs a CUDA GPU. Meant '
        'for deploy checkpoints: the same results, less per-call overhead')
    return parser.parse_args()


def trigger_visualization_hook(cfg, show_dir, interval=None):
    """Turn on the config's visualization hook, writing to ``show_dir``.

    As mmseg's and mmpretrain's own ``tools/test.py --show-dir`` do:
    mmseg's ``SegVisualizationHook`` gets ``draw=True`` and the visualizer
    (``SegLocalVisualizer``) saves under ``show_dir``; mmpretrain's
    ``VisualizationHook`` gets ``enable=True`` and ``out_dir=show_dir``.
    """
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise RuntimeError(
            '--show-dir needs a visualization hook in default_hooks, e.g. '
            "visualization=dict(type='SegVisualizationHook') (mmseg) or "
            "dict(type='VisualizationHook') (mmpretrain)")
    if hook['type'].split('.')[-1] == 'SegVisualizationHook':
        hook['draw'] = True
        cfg.visualizer['save_dir'] = show_dir
        if cfg.get('train_dataloader'):
            # The hook names each drawing after runner.iter, which builds the
            # training loop and so the training dataset; the test data
            # stands in, so that testing needs no training data.
            cfg.train_dataloader = copy.deepcopy(cfg.test_dataloader)
    else:
        hook['enable'] = True
        hook['out_dir'] = show_dir
    if interval is not None:
        hook['interval'] = interval
    return cfg


def add_cuda_graph_hook(cfg):
    """Add :class:`~mmdidb.engine.hooks.CUDAGraphHook` (``--cuda-graph``).

    Raises:
        RuntimeError: No CUDA GPU here (a graph cannot be captured).
    """
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError('--cuda-graph needs a CUDA GPU '
                           '(torch.cuda.is_available() is False); drop it')
    hooks = list(cfg.get('custom_hooks') or [])
    hooks.append(dict(type='CUDAGraphHook'))
    cfg.custom_hooks = hooks
    return cfg


def main():
    args = parse_args()
    cfg = load_config_with_args(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        trigger_visualization_hook(cfg, args.show_dir, args.show_interval)
    if args.cuda_graph:
        add_cuda_graph_hook(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    metrics = runner.test()
    deploy = any(getattr(m, 'deploy', False) for m in runner.model.modules())
    mode = ', deploy mode' if deploy else ''
    runner.logger.info(f'Test metrics ({args.checkpoint}{mode}): '
                       f'{format_metrics(metrics)}')
    del runner  # its DDP wrapper holds the process group
    destroy_process_group()


if __name__ == '__main__':
    main()
