"""Every config under configs/ builds and runs one training iteration."""
import glob
import os

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.runner import Runner

from helpers import REPO_ROOT
from tiny import MAKERS
from tiny.classification import distillation_hooks, prepare_classification
from tiny.segmentation import shrink_segmentation

CONFIGS = sorted(
    os.path.relpath(p, REPO_ROOT)
    for p in glob.glob(os.path.join(REPO_ROOT, 'configs', '**', '*.py'),
                       recursive=True) if '_base_' not in p)


def _dataloaders(cfg):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            yield cfg[key]


def tiny_config(path, tmp_path, work_dir):
    """The config shrunk to one iteration on tiny data in its real layout."""
    cfg = Config.fromfile(os.path.join(REPO_ROOT, path))
    if cfg.get('default_scope') == 'mmseg':
        shrink_segmentation(cfg)  # small crops, no checkpoint download
    if cfg.get('default_scope') == 'mmpretrain':
        # 64 px instead of 224; generated teacher and load_from checkpoints
        prepare_classification(cfg, tmp_path)
    for loader in _dataloaders(cfg):
        dataset = loader['dataset']
        if dataset['type'] not in MAKERS:
            raise KeyError(f'{path}: no tiny dataset maker for '
                           f'{dataset["type"]} (add one under tests/tiny/)')
        dataset.update(MAKERS[dataset['type']](tmp_path))
        loader['batch_size'] = min(loader['batch_size'], 8)
        loader['num_workers'] = 0
        loader['persistent_workers'] = False
    if cfg.train_cfg.get('by_epoch', True) and \
            cfg.train_cfg.get('type') != 'IterBasedTrainLoop':
        cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    else:
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1,
                             val_interval=1)
        cfg.default_hooks.checkpoint.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.default_hooks.logger.interval = 1
    return cfg


def test_configs_are_found():
    assert 'configs/didbvit/vit-mini_fashion-mnist.py' in CONFIGS
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize('path', CONFIGS)
def test_config_trains_one_iteration(path, tmp_path):
    cfg = tiny_config(path, tmp_path, tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    after = runner.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith('backbone.') for k in changed)
    assert any(not k.startswith('backbone.') for k in changed)
    assert glob.glob(str(tmp_path / 'work' / '*_1.pth'))
    if distillation_hooks(cfg):  # the KD term was part of the loss
        assert runner.message_hub.get_scalar('train/loss_kd').current() > 0


def test_metafile_lists_every_config_and_only_existing_ones():
    """configs/didbvit/metafile.yml (OpenMMLab model index) is complete."""
    with open(os.path.join(REPO_ROOT, 'model-index.yml')) as f:
        imports = yaml.safe_load(f)['Import']
    listed = []
    for metafile in imports:
        with open(os.path.join(REPO_ROOT, metafile)) as f:
            meta = yaml.safe_load(f)
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections, model['Name']
            assert os.path.isfile(os.path.join(REPO_ROOT, model['Config'])), \
                model['Config']
            assert model['Name'] == os.path.splitext(
                os.path.basename(model['Config']))[0]
            listed.append(model['Config'])
    assert len(listed) == len(set(listed))
    assert sorted(listed) == CONFIGS
