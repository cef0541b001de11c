"""Initialising the DIDB backbones from the checkpoint formats users hold.

Tiny full-precision models are built with mmpretrain's and mmseg's own
classes (so their key names and tensor layouts are the real ones), saved in
each format, and loaded through ``init_cfg`` / ``pretrained``; every
binary-layer weight must land.
"""
import logging
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmpretrain.models import SwinTransformer
from mmpretrain.models.utils import PatchMerging
from mmseg.models.backbones import VisionTransformer as SegViT

from mmdidb.models import DIDBSwin, DIDBViT
from mmdidb.models.backbones.ckpt_convert import (
    _unfold_norm_order,
    _unfold_reduction_order,
    detect_format,
)
from mmdidb.utils.checkpoint_sources import CheckpointUnavailableError

from tiny.checkpoints import (
    mmpretrain_vit_state_dict,
    randomised,
    timm_from_mmpretrain,
)

VIT_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2,
                feedforward_channels=64)
# three stages: a patch merging read one stage off has the wrong shape
SWIN_ARCH = dict(embed_dims=16, depths=[2, 2, 2], num_heads=[1, 2, 4])


def mmpretrain_vit():
    return mmpretrain_vit_state_dict(VIT_ARCH, img_size=32, patch_size=8)


def expected_vit(sd):
    """What each DIDBViT tensor must hold, from mmpretrain-named ``sd``."""
    exp = {'cls_token': sd['cls_token'], 'pos_embed': sd['pos_embed'],
           'patch_embed.projection.weight':
           sd['patch_embed.projection.weight'], 'ln1.weight': sd['ln1.weight']}
    for i in range(VIT_ARCH['num_layers']):
        p = f'layers.{i}.'
        for name, part in zip('qkv', sd[p + 'attn.qkv.weight'].chunk(3)):
            exp[f'{p}attn.{name}.weight'] = part
        for name, part in zip('qkv', sd[p + 'attn.qkv.bias'].chunk(3)):
            exp[f'{p}attn.{name}.bias'] = part
        for ours, theirs in (('attn.proj', 'attn.proj'),
                             ('ffn.fc1', 'ffn.layers.0.0'),
                             ('ffn.fc2', 'ffn.layers.1'), ('ln1', 'ln1'),
                             ('ln2', 'ln2')):
            for param in ('weight', 'bias'):
                exp[f'{p}{ours}.{param}'] = sd[f'{p}{theirs}.{param}']
    return exp


def assert_landed(model, expected):
    own = model.state_dict()
    binary = [k for k in own if re.search(
        r'\.(q|k|v|proj|fc1|fc2|reduction)\.weight$', k)]
    assert binary and set(binary) <= set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(own[key], value, rtol=0, atol=0, msg=key)


def build_vit(**kwargs):
    return DIDBViT(arch=VIT_ARCH, img_size=32, patch_size=8,
                   out_type='featmap', **kwargs)


def log_of(model, caplog):
    """What ``model.init_weights()`` logs (MMLogger calls only its own
    handlers, so pytest's is added to it)."""
    logger = MMLogger.get_current_instance()
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO):
            model.init_weights()
    finally:
        logger.removeHandler(caplog.handler)
    return caplog.text


@pytest.mark.parametrize('fmt', ['mmpretrain', 'timm', 'mmseg'])
def test_vit_formats_land_every_binary_weight(fmt, tmp_path, caplog):
    if fmt == 'mmseg':
        seg = SegViT(img_size=32, patch_size=8, embed_dims=32, num_layers=2,
                     num_heads=2, mlp_ratio=2, final_norm=True,
                     patch_bias=True)
        file_sd = randomised(seg.state_dict())
        # mmseg's nn.MultiheadAttention: in_proj is qkv in q, k, v order
        sd = {}
        for key, value in file_sd.items():
            key = key.replace('attn.attn.in_proj_weight', 'attn.qkv.weight')
            key = key.replace('attn.attn.in_proj_bias', 'attn.qkv.bias')
            sd[key.replace('attn.attn.out_proj.', 'attn.proj.')] = value
        checkpoint, prefix = file_sd, None
    else:
        sd = mmpretrain_vit()
        if fmt == 'timm':
            # the official DeiT file: {'model': state_dict}
            checkpoint, prefix = {'model': timm_from_mmpretrain(sd)}, None
        else:
            checkpoint = {'state_dict': {'backbone.' + k: v
                                         for k, v in sd.items()}}
            prefix = 'backbone.'
    path = str(tmp_path / f'{fmt}.pth')
    torch.save(checkpoint, path)
    init_cfg = dict(type='Pretrained', checkpoint=path)
    if prefix:
        init_cfg['prefix'] = prefix
    model = build_vit(init_cfg=init_cfg)
    text = log_of(model, caplog)
    assert_landed(model, expected_vit(sd))
    names = {'mmpretrain': "mmpretrain's", 'timm': 'official DeiT / timm',
             'mmseg': "mmseg's converted ViT"}
    assert f'({names[fmt]}' in text
    assert re.search(r'102 parameters of the binary model .*missing by '
                     r'design.*: act.gamma, act.slope, act.token_offset, '
                     'act.zeta, attn_binarizer.alpha, input_binarizer.beta, '
                     'local_difference.scale', text)
    if fmt == 'timm':
        assert 'blocks.N.mlp.fc1.weight -> layers.N.ffn.layers.0.0.weight ' \
               '(x2)' in text
        assert 'not part of the backbone, ignored: head.weight' in text
    assert 'left at their initialisation' not in text


def test_mmseg_pretrained_argument_loads_the_deit_file(tmp_path):
    sd = mmpretrain_vit()
    path = str(tmp_path / 'deit_small_patch16_224-cd65a155.pth')
    torch.save({'model': timm_from_mmpretrain(sd)}, path)
    model = build_vit(pretrained=path)
    model.init_weights()
    assert_landed(model, expected_vit(sd))
    with pytest.raises(ValueError, match='cannot be set at the same time'):
        build_vit(pretrained=path, init_cfg=dict(type='Pretrained',
                                                 checkpoint=path))
    with pytest.raises(TypeError, match='pretrained must be'):
        build_vit(pretrained=3)


def test_shape_mismatch_fails_loudly(tmp_path):
    sd = mmpretrain_vit()
    path = str(tmp_path / 'vit.pth')
    torch.save(sd, path)
    wider = dict(VIT_ARCH, embed_dims=64, feedforward_channels=128)
    model = DIDBViT(arch=wider, img_size=32, patch_size=8,
                    init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match=r'does not fit the model: .*'
                       r'size mismatch for .*Check that arch'):
        model.init_weights()


def test_swin_file_into_a_vit_is_refused(tmp_path):
    path = str(tmp_path / 'swin.pth')
    torch.save({'state_dict': {'stages.0.blocks.0.norm1.weight':
                               torch.ones(16)}}, path)
    with pytest.raises(ValueError, match='no key of .* fits the model'):
        build_vit(init_cfg=dict(type='Pretrained',
                                checkpoint=path)).init_weights()


@pytest.mark.parametrize('pretrained', [False, True])
def test_missing_checkpoint_names_the_key_to_override(tmp_path, pretrained):
    path = str(tmp_path / 'nowhere' / 'deit-small.pth')
    model = build_vit(pretrained=path) if pretrained else build_vit(
        init_cfg=dict(type='Pretrained', checkpoint=path))
    key = 'model.pretrained' if pretrained \
        else 'model.backbone.init_cfg.checkpoint'
    with pytest.raises(CheckpointUnavailableError,
                       match=rf'{re.escape(key)}=.*does not exist.*'
                       rf'--cfg-options {re.escape(key)}=/path/deit-small'):
        model.init_weights()


def test_unreachable_url_fails_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    # nothing listens on port 9 of this machine: refused at once, as offline
    url = 'http://127.0.0.1:9/deit-small_pt-4xb256_in1k.pth'
    model = build_vit(init_cfg=dict(type='Pretrained', checkpoint=url))
    with pytest.raises(CheckpointUnavailableError,
                       match=r'cannot be fetched.*model\.backbone\.init_cfg'
                       r'\.checkpoint=/path/deit-small_pt-4xb256_in1k.pth'):
        model.init_weights()


# ------------------------------------------------------------------ Swin
def official_merge(x, hw, norm_w, norm_b, reduction):
    """The official Swin PatchMerging: cat(x0, x1, x2, x3), LN, Linear."""
    b, _, c = x.shape
    x = x.view(b, *hw, c)
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
                   x[:, 1::2, 1::2]], -1).view(b, -1, 4 * c)
    x = F.layer_norm(x, (4 * c, ), norm_w, norm_b)
    return x @ reduction.t()


def test_official_merge_order_becomes_unfold_order():
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(16, 32, generator=gen)
    norm_w, norm_b = torch.randn(2, 32, generator=gen)
    x = torch.randn(2, 16, 8, generator=gen)
    merge = PatchMerging(8, 16)
    merge.load_state_dict({'reduction.weight': _unfold_reduction_order(weight),
                           'norm.weight': _unfold_norm_order(norm_w),
                           'norm.bias': _unfold_norm_order(norm_b)})
    ours, _ = merge(x, (4, 4))
    torch.testing.assert_close(
        ours, official_merge(x, (4, 4), norm_w, norm_b, weight))


def official_swin_from_mmpretrain(sd):
    """Official Swin names; merges back in the official order."""
    out = {}
    for key, value in sd.items():
        new = re.sub(r'^stages\.', 'layers.', key)
        new = new.replace('.attn.w_msa.', '.attn.')
        new = new.replace('.ffn.layers.0.0.', '.mlp.fc1.')
        new = new.replace('.ffn.layers.1.', '.mlp.fc2.')
        new = new.replace('patch_embed.projection.', 'patch_embed.proj.')
        if '.downsample.' in key:
            # the inverse of the unfold reordering (a fixed permutation)
            if value.dim() == 2:
                o, i = value.shape
                value = value.reshape(o, i // 4, 4).transpose(1, 2)[
                    :, [0, 2, 1, 3]].reshape(o, i)
            else:
                value = value.reshape(-1, 4).t()[[0, 2, 1, 3]].reshape(-1)
        new = re.sub(r'^norm\d+\.', 'norm.', new)
        out[new] = value
    out['head.weight'] = torch.randn(10, 64)
    return out


def timm_swin_from_official(official):
    """timm's layout (timm >= 0.9), from the official one: each merging
    opens the next stage, the head is ``head.fc`` and the buffers that
    timm does not save (relative position index, attention mask) are
    absent; the inverse of timm's own ``checkpoint_filter_fn``."""
    out = {}
    for key, value in official.items():
        if 'relative_position_index' in key or 'attn_mask' in key:
            continue
        key = re.sub(r'^layers\.(\d+)\.downsample\.',
                     lambda m: f'layers.{int(m.group(1)) + 1}.downsample.',
                     key)
        out[re.sub(r'^head\.', 'head.fc.', key)] = value
    return out


def expected_swin(sd):
    """What each DIDBSwin tensor must hold, from mmpretrain-named ``sd``."""
    expected = {}
    for key, value in sd.items():
        if '.attn.w_msa.qkv.' in key:
            for name, part in zip('qkv', value.chunk(3)):
                expected[key.replace('.qkv.', f'.{name}.')] = part
            continue
        key = key.replace('.ffn.layers.0.0.', '.ffn.fc1.')
        expected[key.replace('.ffn.layers.1.', '.ffn.fc2.')] = value
    return expected


def swin_state_dict():
    return randomised(SwinTransformer(arch=SWIN_ARCH, img_size=64,
                                      window_size=4,
                                      out_indices=(2, )).state_dict())


@pytest.mark.parametrize('fmt', ['mmpretrain', 'official', 'timm', 'mmseg'])
def test_swin_formats_land_every_binary_weight(fmt, tmp_path, caplog):
    sd = swin_state_dict()
    if fmt == 'official':
        checkpoint = {'model': official_swin_from_mmpretrain(sd)}
    elif fmt == 'timm':
        checkpoint = timm_swin_from_official(
            official_swin_from_mmpretrain(sd))
    elif fmt == 'mmseg':
        # swin2mmseg.py output: mmpretrain's names, a bare state dict
        checkpoint = sd
    else:
        checkpoint = {'state_dict': {'backbone.' + k: v
                                     for k, v in sd.items()}}
    path = str(tmp_path / f'{fmt}.pth')
    torch.save(checkpoint, path)
    model = DIDBSwin(arch=SWIN_ARCH, img_size=64, window_size=4,
                     out_indices=(2, ),
                     init_cfg=dict(type='Pretrained', checkpoint=path))
    text = log_of(model, caplog)
    assert_landed(model, expected_swin(sd))
    if fmt == 'official':
        assert '(official Swin format)' in text
        assert 'not part of the backbone, ignored: head.weight' in text
    if fmt == 'timm':
        assert '(timm Swin (timm >= 0.9) format)' in text
        assert 'not part of the backbone, ignored: head.fc.weight' in text
    assert 'left at their initialisation' not in text
    assert 'not in the model, ignored' not in text


def test_official_and_timm_swin_layouts_are_told_apart():
    official = official_swin_from_mmpretrain(swin_state_dict())
    timm = timm_swin_from_official(official)
    assert 'layers.0.downsample.reduction.weight' in official
    assert 'layers.0.downsample.reduction.weight' not in timm
    assert detect_format(official, 'swin') == 'official_swin'
    assert detect_format(timm, 'swin') == 'timm_swin'


def test_mmengine_checkpoint_with_an_empty_history_buffer_loads(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader
    path = str(tmp_path / 'iter_1.pth')
    updated = HistoryBuffer()
    updated.update(0.5)
    torch.save({'state_dict': {'w': torch.ones(2)},
                'message_hub': {'log_scalars': {'loss': updated,
                                                'time': HistoryBuffer()}}},
               path)
    loaded = CheckpointLoader.load_checkpoint(path)
    scalars = loaded['message_hub']['log_scalars']
    assert scalars['time'].data[0].size == 0
    assert scalars['loss'].current() == 0.5


class _Allocates:
    """Pickles as ``bytes(4096)``: not something a checkpoint holds."""

    def __reduce__(self):
        return bytes, (4096, )


def test_bytes_with_arguments_are_still_refused(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmdidb.compat import UnsafeCheckpointError
    path = str(tmp_path / 'odd.pth')
    torch.save({'state_dict': {}, 'x': _Allocates()}, path)
    with pytest.raises(UnsafeCheckpointError, match='Refused to load'):
        CheckpointLoader.load_checkpoint(path)
