"""mmseg's and mmpretrain's own configs and tools, with only the backbone swapped.

What a user of an existing OpenMMLab project does: take a model-zoo config
shipped inside the installed package (``.mim/configs``), add
``custom_imports``, replace the backbone, and run the package's own
``tools/train.py`` and ``tools/test.py``. The tools run in this process
(``runpy``, as ``python tools/train.py`` would run them) to save the
seconds each interpreter spends importing the stack; the architectures are
shrunk (a tiny ``arch`` dict, tiny images through ``--cfg-options``), the
rest of each stock config is used as shipped.
"""
import os
import re
import runpy
import sys

import mmpretrain
import mmseg
import pytest
import torch
from mmengine.config import Config

from tiny.checkpoints import randomised, save_deit_release
from tiny.imagenet import make_imagenet
from tiny.segmentation import make_ade20k

SEG = os.path.join(os.path.dirname(mmseg.__file__), '.mim')
PRE = os.path.join(os.path.dirname(mmpretrain.__file__), '.mim')
VIT_ARCH = dict(embed_dims=32, num_layers=4, num_heads=2,
                feedforward_channels=64)
SWIN_ARCH = dict(embed_dims=16, depths=[2, 2], num_heads=[1, 2])


def write_config(path, stock, body):
    """A user config: the stock file, custom_imports and ``body``."""
    with open(path, 'w') as f:
        f.write(f'_base_ = [{stock!r}]\n'
                "custom_imports = dict(imports=['mmdidb'], "
                'allow_failed_imports=False)\n' + body)
    return str(path)


def run_tool(tool, args, cwd, monkeypatch, capfd):
    """Run a stock tool as ``python TOOL ARGS`` would, from ``cwd``."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, 'argv', [tool] + [str(a) for a in args])
    # the tools set it when it is missing; keep it out of later tests
    monkeypatch.setenv('LOCAL_RANK', '0')
    runpy.run_path(tool, run_name='__main__')
    captured = capfd.readouterr()
    return captured.out + captured.err


def loader_options(data_root):
    """The tiny data, in this process, training batches of 2."""
    opts = ['train_dataloader.batch_size=2']
    for loader in ('train', 'val', 'test'):
        opts += [f'{loader}_dataloader.dataset.data_root={data_root}',
                 f'{loader}_dataloader.num_workers=0',
                 f'{loader}_dataloader.persistent_workers=False']
    return opts


# --------------------------------------------------------------- mmseg
def ade20k_options(data_root):
    """One iteration on 64-pixel crops; test images 64 on the short side."""
    return ['--cfg-options'] + loader_options(data_root) + [
        'train_cfg.max_iters=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
        'model.data_preprocessor.size=(64,64)',
        'train_dataloader.dataset.pipeline.2.scale=(256,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'val_dataloader.dataset.pipeline.1.scale=(256,64)',
        'test_dataloader.dataset.pipeline.1.scale=(256,64)']


SEG_CASES = {
    # the report: mmseg's DeiT-S UPerNet, `pretrained` holding the
    # official DeiT release (timm keys) at the path the stock config names
    'vit': dict(
        stock='vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py',
        body=f"""model = dict(
    backbone=dict(_delete_=True, type='DIDBViT', arch={VIT_ARCH!r},
                  img_size=(512, 512), out_indices=(0, 1, 2, 3),
                  out_type='featmap'),
    neck=dict(in_channels=[32] * 4, out_channels=32),
    decode_head=dict(in_channels=[32] * 4, channels=32),
    auxiliary_head=dict(in_channels=32, channels=16))
""", loaded='DIDBViT: loaded pretrain/deit_small_patch16_224-cd65a155.pth '
             '(official DeiT / timm ViT format)'),
    # mmseg's Swin-T UPerNet, its init_cfg pointed at an official Swin file
    'swin': dict(
        stock='swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_'
              'ade20k-512x512.py',
        body=f"""model = dict(
    backbone=dict(_delete_=True, type='DIDBSwin', arch={SWIN_ARCH!r},
                  window_size=4, out_indices=(0, 1),
                  init_cfg=dict(type='Pretrained',
                                checkpoint='pretrain/swin_tiny_patch4.pth')),
    decode_head=dict(in_channels=[16, 32], in_index=[0, 1], channels=32),
    auxiliary_head=dict(in_channels=32, in_index=1, channels=16))
""", loaded='DIDBSwin: loaded pretrain/swin_tiny_patch4.pth (official Swin '
             'format)'),
}


def save_official_swin(path):
    """A tiny official Swin release: ``{'model': ...}`` with its key names."""
    from mmpretrain.models import SwinTransformer
    sd = randomised(SwinTransformer(arch=SWIN_ARCH, img_size=32,
                                    window_size=4,
                                    out_indices=(1, )).state_dict())
    official = {}
    for key, value in sd.items():
        key = re.sub(r'^stages\.', 'layers.', key)
        key = key.replace('.attn.w_msa.', '.attn.')
        key = key.replace('.ffn.layers.0.0.', '.mlp.fc1.')
        key = key.replace('.ffn.layers.1.', '.mlp.fc2.')
        key = key.replace('patch_embed.projection.', 'patch_embed.proj.')
        official[re.sub(r'^norm1\.', 'norm.', key)] = value
    torch.save({'model': official}, path)


@pytest.mark.parametrize('case', list(SEG_CASES))
def test_mmseg_stock_config_trains_and_tests_with_the_backbone_swapped(
        case, tmp_path, monkeypatch, capfd):
    spec = SEG_CASES[case]
    # images of odd sizes: resized to 64 x 86 for testing, not a multiple of
    # the patch (16 / 4) nor of the window; the stock config pads nothing
    root = make_ade20k(str(tmp_path / 'data'), num_train=2, num_val=2,
                       size=(75, 101))
    os.makedirs(tmp_path / 'pretrain')
    if case == 'vit':
        save_deit_release(
            str(tmp_path / 'pretrain' / 'deit_small_patch16_224-cd65a155.pth'),
            VIT_ARCH, img_size=224, patch_size=16)
    else:
        save_official_swin(str(tmp_path / 'pretrain' / 'swin_tiny_patch4.pth'))
    stock = os.path.join(SEG, 'configs', spec['stock'])
    config = write_config(tmp_path / 'user.py', stock, spec['body'])
    cfg = Config.fromfile(config)
    assert not cfg.model.data_preprocessor.get('test_cfg')
    assert cfg.model.test_cfg.mode == 'whole'
    out = run_tool(os.path.join(SEG, 'tools', 'train.py'),
                   [config, '--work-dir', 'work'] + ade20k_options(root),
                   tmp_path, monkeypatch, capfd)
    assert spec['loaded'] in out
    assert re.search(r'Iter\(val\) \[2/2\].*mIoU: ', out)
    out = run_tool(os.path.join(SEG, 'tools', 'test.py'),
                   [config, 'work/iter_1.pth', '--work-dir', 'test'] +
                   ade20k_options(root), tmp_path, monkeypatch, capfd)
    assert re.search(r'Iter\(test\) \[2/2\].*aAcc: .*mIoU: ', out)


# ---------------------------------------------------------- mmpretrain
PRE_CASES = {
    'deit': ('deit/deit-small_4xb256_in1k.py', f"""model = dict(
    backbone=dict(_delete_=True, type='DIDBViT', arch={VIT_ARCH!r},
                  img_size=32, patch_size=8),
    head=dict(in_channels=32))
"""),
    'swin': ('swin_transformer/swin-tiny_16xb64_in1k.py', f"""model = dict(
    backbone=dict(_delete_=True, type='DIDBSwin', arch={SWIN_ARCH!r},
                  img_size=32, window_size=4),
    head=dict(in_channels=32))
"""),
}


@pytest.mark.parametrize('case', list(PRE_CASES))
def test_mmpretrain_stock_config_trains_and_tests_with_the_backbone_swapped(
        case, tmp_path, monkeypatch, capfd):
    stock, body = PRE_CASES[case]
    root = make_imagenet(tmp_path / 'imagenet', num_train=2, num_val=2)
    config = write_config(tmp_path / 'user.py',
                          os.path.join(PRE, 'configs', stock), body)
    options = ['--cfg-options'] + loader_options(root) + [
        # one epoch: the warm-up, then the cosine decay, inside it
        'train_cfg.max_epochs=1', 'param_scheduler.1.begin=0',
        'train_dataloader.dataset.pipeline.1.scale=32',
        'val_dataloader.dataset.pipeline.1.scale=36',
        'val_dataloader.dataset.pipeline.2.crop_size=32',
        'test_dataloader.dataset.pipeline.1.scale=36',
        'test_dataloader.dataset.pipeline.2.crop_size=32']
    out = run_tool(os.path.join(PRE, 'tools', 'train.py'),
                   [config, '--work-dir', 'work', '--no-persistent-workers'] +
                   options, tmp_path, monkeypatch, capfd)
    # one iteration (2 images, batches of 2), then the validation
    assert 'Epoch(train) [1][1/1]' in out
    assert re.search(r'Epoch\(val\) \[1\]\[1/1\].*accuracy/top1: ', out)
    out = run_tool(os.path.join(PRE, 'tools', 'test.py'),
                   [config, 'work/epoch_1.pth', '--work-dir', 'test'] +
                   options, tmp_path, monkeypatch, capfd)
    assert re.search(r'Epoch\(test\) \[1/1\].*accuracy/top1: ', out)
