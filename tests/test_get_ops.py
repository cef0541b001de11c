"""tools/analysis/get_ops.py: counts checked against hand formulas."""
import os

import pytest
import torch
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

from mmdidb.models import DIDBViT
from mmdidb.models.layers import BinaryLinear

from helpers import REPO_ROOT, load_tool

get_ops = load_tool('tools/analysis/get_ops.py')

# tiny arch: C channels, L layers, F hidden, 16x16 input, patch 4 -> 4x4
C, L, F, HEADS, CLASSES = 16, 2, 32, 2, 5
GRID = 16
N = GRID + 1  # + class token
ARCH = dict(embed_dims=C, num_layers=L, num_heads=HEADS,
            feedforward_channels=F)
PATCH_FLOPS = GRID * C * 3 * 4 * 4
HEAD_FLOPS = C * CLASSES


def classifier(backbone):
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=backbone, neck=None,
        head=dict(type='LinearClsHead', num_classes=CLASSES,
                  in_channels=C)))
    return model


def count(model, size=(16, 16)):
    return get_ops.count_ops(model, torch.zeros(1, 3, *size))


def test_binary_linear_bops_are_m_k_n():
    m, k, n = 5, 70, 37
    result = get_ops.count_ops(BinaryLinear(k, n), torch.zeros(1, m, k))
    row = result['rows']['binary linear']
    assert row == dict(params=k * n + n, flops=0, bops=m * k * n,
                       ops=m * k * n / 64)
    assert result['total']['params'] == k * n + n + k  # + RSign shifts
    assert result['total']['ops'] == m * k * n / 64
    fp = get_ops.count_ops(BinaryLinear(k, n, binary_acts=False),
                           torch.zeros(1, m, k))
    assert fp['rows']['FP linear']['flops'] == m * k * n
    assert fp['total']['bops'] == 0


@pytest.mark.parametrize('hfsc,diba,theta', [(True, True, 3),
                                             (False, False, 1),
                                             (True, True, 5)])
def test_didb_vit_counts_match_the_formulas(hfsc, diba, theta):
    model = classifier(dict(type='DIDBViT', arch=ARCH, img_size=16,
                            patch_size=4, hfsc=hfsc, diba=diba, theta=theta))
    result = count(model)
    rows, total = result['rows'], result['total']
    bands = 2 if hfsc else 1
    # Q and K projections run once per band; V, proj, fc1, fc2 once
    linear = L * N * (2 * bands * C * C + 2 * C * C + 2 * C * F)
    assert rows['binary linear']['bops'] == linear
    assert rows['binary Q·Kᵀ']['bops'] == L * bands * N * N * C
    assert rows['binary A·V']['bops'] == L * N * N * C
    conv = L * C * GRID * theta**2 if diba and theta > 1 else 0
    assert rows['binary θ×θ conv']['bops'] == conv
    assert rows['patch embedding (conv)']['flops'] == PATCH_FLOPS
    assert rows['head (FP linear)']['flops'] == HEAD_FLOPS
    assert total['flops'] == PATCH_FLOPS + HEAD_FLOPS
    bops = linear + L * (bands + 1) * N * N * C + conv
    assert total['bops'] == bops
    assert total['ops'] == PATCH_FLOPS + HEAD_FLOPS + bops / 64
    binary_weights = L * (4 * C * C + 2 * C * F) + (
        L * C * theta**2 if conv else 0)
    assert total['binary_params'] == binary_weights
    assert total['params'] == sum(p.numel() for p in model.parameters())
    assert rows['binary linear']['params'] == binary_weights - (
        L * C * theta**2 if conv else 0) + L * (4 * C + C + F)  # + biases


def test_other_input_size_changes_the_token_count():
    model = DIDBViT(arch=ARCH, img_size=16, patch_size=4)
    result = count(model, size=(16, 24))  # 4 x 6 grid
    n = 4 * 6 + 1
    assert result['rows']['binary A·V']['bops'] == L * n * n * C


def test_full_precision_vit_is_all_flops():
    model = classifier(dict(type='VisionTransformer', arch=ARCH,
                            img_size=16, patch_size=4))
    result = count(model)
    rows, total = result['rows'], result['total']
    assert rows['FP linear']['flops'] == L * N * (4 * C * C + 2 * C * F)
    assert rows['FP attention (Q·Kᵀ + A·V)']['flops'] == 2 * L * N * N * C
    assert total['bops'] == 0 and total['binary_params'] == 0
    assert total['ops'] == total['flops'] == (
        PATCH_FLOPS + HEAD_FLOPS + L * N * (4 * C * C + 2 * C * F)
        + 2 * L * N * N * C)
    assert total['params'] == sum(
        p.numel() for p in model.parameters())
    assert isinstance(model.backbone, VisionTransformer)


def test_config_path_prints_the_table(capsys):
    config = os.path.join(REPO_ROOT, 'configs', 'didbvit',
                          'vit-mini_fashion-mnist.py')
    result, = get_ops.main([config])
    out = capsys.readouterr().out
    # mini: C=64, F=256, 4 layers, 28x28 grey input in 7x7 patches
    n, layers = 17, 4
    linear = layers * n * (6 * 64 * 64 + 2 * 64 * 256)
    assert result['rows']['binary linear']['bops'] == linear
    assert result['rows']['patch embedding (conv)']['flops'] == 16 * 64 * 49
    assert '| binary linear | 0.1989 | 0 | 3.899 | 0.06093 |' in out
    assert 'input 1x28x28' in out and '**total**' in out


def test_needs_a_config_or_a_model():
    with pytest.raises(SystemExit):
        get_ops.parse_args([])
    args = get_ops.parse_args(['--model', 'deit-tiny', '--variant', 'didb',
                               'fp'])
    assert args.variant == ['didb', 'fp']


def test_didb_swin_counts_windows_and_patch_merging():
    # 16x16 input, patch 2 -> 8x8 (4 windows of 4x4), merged to 4x4
    # (one window); 8 -> 16 channels, one block per stage, FFN ratio 4
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='DIDBSwin', arch=dict(embed_dims=8, depths=[1, 1],
                                                 num_heads=[1, 2]),
                      img_size=16, patch_size=2, window_size=4),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=CLASSES,
                  in_channels=16)))
    rows = count(model)['rows']
    stages = ((64, 8), (16, 16))  # (tokens, channels)
    # HFSC: Q and K once per band; V, proj, fc1 (C -> 4C), fc2
    linear = sum(n * (2 * 2 * c * c + 2 * c * c + 2 * c * 4 * c)
                 for n, c in stages) + 16 * 32 * 16  # + merging 4C -> 2C
    assert rows['binary linear']['bops'] == linear
    # attention within 16-token windows, whatever the map
    attention = sum(n * 16 * c for n, c in stages)
    assert rows['binary Q·Kᵀ']['bops'] == 2 * attention
    assert rows['binary A·V']['bops'] == attention
    assert rows['binary θ×θ conv']['bops'] == sum(n * c * 9
                                                  for n, c in stages)
    assert rows['patch embedding (conv)']['flops'] == 64 * 8 * 3 * 2 * 2


def test_didb_binary_vit_counts_reduced_keys():
    # 16x16 input, patch 2 -> 8x8, keys/values pooled 2x2 -> 4x4
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='DIDBBinaryViT',
                      arch=dict(embed_dims=[8], depths=[1], num_heads=[1],
                                ffn_ratios=[4], sr_ratios=[2]),
                      img_size=16, patch_size=2, hfsc=False),
        neck=None,
        head=dict(type='LinearClsHead', num_classes=CLASSES, in_channels=8)))
    rows = count(model)['rows']
    n, m, c = 64, 16, 8
    # q, proj, fc1, fc2 on n tokens; reduction, k, v on m
    assert rows['binary linear']['bops'] == (
        n * (2 * c * c + 2 * c * 4 * c) + m * 3 * c * c)
    assert rows['binary Q·Kᵀ']['bops'] == n * m * c
    assert rows['binary A·V']['bops'] == n * m * c
    assert rows['binary θ×θ conv']['bops'] == m * c * 9
