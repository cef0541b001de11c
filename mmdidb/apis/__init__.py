"""Helpers the command-line tools share."""
import numbers
import os.path as osp

from mmengine.config import Config


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
