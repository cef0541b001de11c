"""Every config under configs/ builds and runs one training iteration."""
import copy
import glob
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from helpers import REPO_ROOT, make_fashion_mnist

CONFIGS = sorted(
    os.path.relpath(p, REPO_ROOT)
    for p in glob.glob(os.path.join(REPO_ROOT, 'configs', '**', '*.py'),
                       recursive=True) if '_base_' not in p)

# dataset type -> function(tmp_path) -> dataset fields to override
TINY_DATASETS = {
    'LocalFashionMNIST': lambda tmp: dict(
        data_prefix=make_fashion_mnist(str(tmp / 'fashion_mnist'), 8, 8)),
}


def _datasets(cfg):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            yield cfg[key]


def tiny_config(path, tmp_path, work_dir):
    """The config shrunk to one iteration on tiny data in its real layout."""
    cfg = Config.fromfile(os.path.join(REPO_ROOT, path))
    for loader in _datasets(cfg):
        dataset = loader['dataset']
        if dataset['type'] not in TINY_DATASETS:
            raise KeyError(f'{path}: no tiny dataset maker for '
                           f'{dataset["type"]} (add one to TINY_DATASETS)')
        dataset.update(TINY_DATASETS[dataset['type']](tmp_path))
        loader['batch_size'] = 8
        loader['num_workers'] = 0
        loader['persistent_workers'] = False
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.param_scheduler = [
        s for s in copy.deepcopy(cfg.param_scheduler)
        if s.get('type') != 'LinearLR'
    ]
    cfg.work_dir = str(work_dir)
    cfg.default_hooks.logger.interval = 1
    return cfg


def test_configs_are_found():
    assert 'configs/didbvit/didbvit-mini_fashion-mnist.py' in CONFIGS
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize('path', CONFIGS)
def test_config_trains_one_iteration(path, tmp_path):
    cfg = tiny_config(path, tmp_path, tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    after = runner.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert 'backbone.patch_embed.projection.weight' in changed
    assert any(k.startswith('head.') for k in changed)
    assert os.path.isfile(tmp_path / 'work' / 'epoch_1.pth')
