"""tools/visualization/vis_attention.py and the inspection helpers it uses."""
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from mmdidb.apis.inspection import (
    attention_maps,
    effective_weights,
    find_didb_vit,
    load_model,
    record_attention_inputs,
)
from mmdidb.models.layers import DIBA, sign

from helpers import load_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs/didbvit/vit-mini_fashion-mnist.py')


def _load_tool():
    return load_tool('tools/visualization/vis_attention.py')


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    """The quick-start model, randomly initialised, with non-zero offsets."""
    root = tmp_path_factory.mktemp('vis')
    torch.manual_seed(0)
    model, _ = load_model(CONFIG)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(('token_offset', 'local_difference.scale')):
                p.normal_(0, 0.3)
    torch.save({'state_dict': model.state_dict()}, root / 'tiny.pth')
    image = np.random.RandomState(0).randint(0, 256, (40, 40), np.uint8)
    Image.fromarray(image).save(root / 'image.png')
    return root


def test_vis_attention_writes_the_pictures(tiny_checkpoint):
    out = tiny_checkpoint / 'out'
    written = _load_tool().main([
        CONFIG, str(tiny_checkpoint / 'tiny.pth'),
        str(tiny_checkpoint / 'image.png'), '--out', str(out),
        '--query', '1', '2', '--layers', '0', '3'
    ])
    expected = ['input.png', 'attention_layer0.png', 'haar_layer0.png',
                'attention_layer3.png', 'haar_layer3.png',
                'irprelu_offsets.png']
    assert [osp.basename(p) for p in written] == expected
    for name in expected:
        with Image.open(out / name) as png:
            assert png.format == 'PNG' and min(png.size) >= 100


def test_vis_attention_refuses_a_query_off_the_grid(tiny_checkpoint):
    with pytest.raises(ValueError, match='outside'):
        _load_tool().main([
            CONFIG, str(tiny_checkpoint / 'tiny.pth'),
            str(tiny_checkpoint / 'image.png'), '--out',
            str(tiny_checkpoint / 'bad'), '--query', '4', '0'
        ])


def test_recorded_maps_are_the_model_s(tiny_checkpoint):
    model, _ = load_model(CONFIG, str(tiny_checkpoint / 'tiny.pth'))
    backbone = find_didb_vit(model)
    x = torch.randn(2, 1, 28, 28)
    with record_attention_inputs(backbone) as records:
        out = backbone(x)[0]
    assert len(records) == 4 and records[0][1] == (4, 4)
    # re-running layer 0 from its recorded input gives its attention output
    attn = backbone.layers[0].attn
    maps = attention_maps(attn, *records[0])
    assert torch.allclose(maps['probs'].sum(-1), torch.ones(2, 2, 17),
                          atol=1e-5)
    alpha = attn.attn_binarizer.alpha.view(1, 2, 1, 1)
    assert torch.equal(maps['binary'],
                       alpha * (maps['probs'] >= alpha / 2).float())
    assert out.shape == (2, 64)


def test_effective_weights_give_the_aggregation_without_d():
    torch.manual_seed(0)
    attn = DIBA(8, 2, 10, theta=1)
    a = 0.15 * (torch.rand(1, 2, 10, 10) > 0.5).float()
    v = sign(torch.randn(1, 10, 8))
    weights = effective_weights(attn, a, (3, 3))
    heads = v.view(1, 10, 2, 4).transpose(1, 2)
    expected = (weights @ heads).transpose(1, 2).reshape(1, 10, 8)
    assert torch.allclose(expected, attn.aggregate(a, v, (3, 3)), atol=1e-6)


def test_effective_weights_of_d_are_differences():
    # D adds sum_j w_j (v_j - v_i): its weights in each row sum to zero,
    # and it acts only on neighbours of the grid
    torch.manual_seed(0)
    attn = DIBA(8, 2, 10, theta=3, d_init_scale=0.5)
    a = 0.15 * (torch.rand(1, 2, 10, 10) > 0.5).float()
    without = effective_weights(DIBA(8, 2, 10, theta=1), a, (3, 3))
    d = effective_weights(attn, a, (3, 3)) - without
    assert torch.allclose(d.sum(-1), torch.zeros(1, 2, 10), atol=1e-6)
    assert torch.equal(d[..., 0, :], torch.zeros(1, 2, 10))  # class token
    assert torch.equal(d[..., 1, 9], torch.zeros(1, 2))  # corners: no link
    assert d.abs().max() > 0.1


def test_diba_stats_splits_v_s_gradient_by_term(tiny_checkpoint):
    tool = load_tool('tools/analysis/diba_stats.py')
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    data = dict(inputs=torch.randn(4, 1, 28, 28),
                data_samples=[DataSample().set_gt_label(i) for i in range(4)])
    # the quick-start config leaves DIBA's self term out (choice 22): no
    # self term to record, and no agreement to compare
    model, _ = load_model(CONFIG, str(tiny_checkpoint / 'tiny.pth'))
    stats = tool.collect(model, data)
    assert set(stats[0]['term_norm']) == {'av', 'd'}
    assert 'own_sign_agreement' not in stats[0]
    # the paper's formula, as the reference configuration selects it
    model, _ = load_model(CONFIG, str(tiny_checkpoint / 'tiny.pth'),
                          {'model.backbone.diba_self_term': 'paper'})
    stats = tool.collect(model, data)
    assert [row['layer'] for row in stats] == [0, 1, 2, 3]
    alpha = model.backbone.layers[0].attn.attn_binarizer.alpha
    assert stats[0]['heads'][0]['alpha'] == pytest.approx(alpha[0].item())
    # the class-token readout: the last D gets no gradient, the others do
    assert stats[3]['grad_norm_into_v']['d'] == 0.0
    assert stats[0]['grad_norm_into_v']['d'] > 1e-4
    assert set(stats[0]['term_norm']) == {'av', 'self', 'd'}
    # 2 header lines + 8 heads, then twice a blank line, 2 header lines
    # and 4 layers
    # adding c * v_i (c = 1 - alpha·k > 0 here) only moves sign(x + beta)
    # towards sign(v_i): the self term raises the agreement, here by 0.2-0.3
    for row in stats:
        agreement = row['own_sign_agreement']
        assert agreement['with_self'] >= agreement['without_self'] + 0.1
    assert tool.markdown(stats).count('\n') == 2 + 8 + 2 * (1 + 2 + 4) - 1
    # sign(out + beta) == sign(own value): with beta far above / below every
    # output, the proj input is all +1 / all -1, and the two fractions are
    # the shares of own values >= 0 and < 0
    beta = model.backbone.layers[0].attn.proj.input_binarizer.beta
    shares = []
    for big in (1e6, -1e6):
        with torch.no_grad():
            beta.fill_(big)
        shares.append(tool.collect(model, data)[0]['own_sign_agreement'])
    for key in ('with_self', 'without_self'):
        assert shares[0][key] + shares[1][key] == pytest.approx(1.0)
        assert 0.2 < shares[0][key] < 0.8  # both signs occur
    # a deploy model has no per-term gradients: refused, naming the fix
    from mmdidb.models.deploy import switch_to_deploy
    switch_to_deploy(model)
    with pytest.raises(ValueError, match='training checkpoint'):
        tool.collect(model, data)
