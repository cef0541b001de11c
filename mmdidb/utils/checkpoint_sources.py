"""Checking, before anything is built, that a config's checkpoints can be read.

A Pretrained backbone whose file is missing, or whose URL cannot be fetched
offline, otherwise fails deep inside the run: in a distributed run rank 0
dies on a bare ``URLError`` while the other ranks wait at mmengine's
download barrier and then die on "Connection closed by peer". These checks
name the config key to override instead.

This module imports nothing from mmdidb, mmpretrain or torch at import time,
so the launch scripts can run it before starting the workers
(``tools/misc/check_checkpoints.py``).
"""
import os
import os.path as osp
import sys
import urllib.error
import urllib.request
from typing import Iterator, List, Optional, Tuple
from urllib.parse import urlparse

#: seconds to wait for a checkpoint URL to answer
URL_TIMEOUT = 10


class CheckpointUnavailableError(FileNotFoundError):
    """A checkpoint a config names is not there or cannot be fetched."""


def _hub_cache(url: str) -> str:
    """Where mmengine's http loader (torch.hub) caches ``url``."""
    if 'torch' in sys.modules:
        hub_dir = sys.modules['torch'].hub.get_dir()
    else:  # the launch-script check: torch.hub's rule, without torch
        torch_home = os.environ.get('TORCH_HOME') or osp.join(
            os.environ.get('XDG_CACHE_HOME', '~/.cache'), 'torch')
        hub_dir = osp.join(osp.expanduser(torch_home), 'hub')
    return osp.join(hub_dir, 'checkpoints',
                    osp.basename(urlparse(url).path))


def checkpoint_problem(path) -> Optional[str]:
    """Why ``path`` cannot be read, or None when it can (or cannot tell).

    Local paths must be files. ``http(s)://`` URLs must be in torch.hub's
    cache or answer a HEAD request; other schemes (``open-mmlab://``,
    ``torchvision://``, object stores) are left to mmengine's loaders.
    """
    path = str(path)
    if path.startswith(('http://', 'https://')):
        if osp.isfile(_hub_cache(path)):
            return None
        request = urllib.request.Request(path, method='HEAD')
        try:
            with urllib.request.urlopen(request, timeout=URL_TIMEOUT):
                return None
        except urllib.error.HTTPError as err:
            if err.code in (404, 410):
                return f'cannot be fetched (HTTP {err.code})'
            return None  # the server is there; let the loader try
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, 'reason', err)
            return f'cannot be fetched ({reason}; no network?)'
    if '://' in path:
        return None
    if not osp.isfile(osp.expanduser(path)):
        return 'does not exist'
    return None


def unavailable_message(field: str, path, problem: str) -> str:
    """The error for a checkpoint that cannot be read, naming the key."""
    name = osp.basename(urlparse(str(path)).path) or 'checkpoint.pth'
    off = field[:-len('.checkpoint')] if field.endswith('.checkpoint') \
        else field
    return (f'{field}={str(path)!r} {problem}. Download it to a local path '
            f'and override the key, e.g. --cfg-options {field}=/path/{name} '
            f'(or {off}=None to start from random weights).')


def check_checkpoint(path, field: str) -> None:
    """Raise :class:`CheckpointUnavailableError` if ``path`` cannot be read.

    Args:
        path (str): A local path or URL.
        field (str): The config key that names it, for the message.
    """
    problem = checkpoint_problem(path)
    if problem is not None:
        raise CheckpointUnavailableError(
            unavailable_message(field, path, problem))


def _walk(node, path: str) -> Iterator[Tuple[str, str]]:
    if isinstance(node, dict):
        init = node.get('init_cfg')
        inits = init if isinstance(init, (list, tuple)) else [init]
        for i, cfg in enumerate(inits):
            if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained' \
                    and cfg.get('checkpoint'):
                key = f'{path}.init_cfg.{i}' \
                    if isinstance(init, (list, tuple)) else f'{path}.init_cfg'
                yield f'{key}.checkpoint', cfg['checkpoint']
        if isinstance(node.get('pretrained'), str):
            yield f'{path}.pretrained', node['pretrained']
        for key, value in node.items():
            if key != 'init_cfg':
                yield from _walk(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{path}.{i}')


def config_checkpoints(cfg) -> List[Tuple[str, str]]:
    """``(config key, path)`` of every checkpoint the model is built from.

    Pretrained ``init_cfg`` and ``pretrained`` strings anywhere under
    ``model``, and ``load_from`` when it is a URL (a missing local
    ``load_from`` is :class:`LoadFromCheckHook`'s, with its own advice).
    Nothing when the run resumes.
    """
    if cfg.get('resume'):
        return []
    found = list(_walk(cfg.get('model') or {}, 'model'))
    load_from = cfg.get('load_from')
    if load_from and '://' in str(load_from) and not cfg.get('resume'):
        found.append(('load_from', load_from))
    return found


def check_config_checkpoints(cfg) -> None:
    """Raise one error naming every checkpoint of ``cfg`` that cannot be read."""
    problems = []
    for field, path in config_checkpoints(cfg):
        problem = checkpoint_problem(path)
        if problem is not None:
            problems.append(unavailable_message(field, path, problem))
    if problems:
        raise CheckpointUnavailableError(' '.join(problems))
