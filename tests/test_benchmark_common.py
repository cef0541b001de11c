"""tools/benchmark/common.py, the benchmark tools' frame: the paper's
classifiers by name, the result writers, the machine line, the guard and the
interleaved timer."""
import pytest

from helpers import load_tool

common = load_tool('tools/benchmark/common.py')
ARCHS, VARIANTS, classifier_cfg = (common.ARCHS, common.VARIANTS,
                                   common.classifier_cfg)

DIMS = {'deit-tiny': 192, 'deit-small': 384, 'swin-tiny': 768,
        'binaryvit-small': 512}


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('variant', VARIANTS)
def test_backbone_head_and_switches(arch, variant):
    cfg = classifier_cfg(arch, variant, img_size=64, num_classes=7)
    backbone, head = cfg['backbone'], cfg['head']
    assert cfg['type'] == 'ImageClassifier'
    assert head['num_classes'] == 7 and head['in_channels'] == DIMS[arch]
    assert backbone['img_size'] == 64
    off = dict(diba=False, hfsc=False, irprelu=False)
    switches = {k: backbone[k] for k in off if k in backbone}
    if variant == 'naive':
        assert switches == off
    elif arch != 'binaryvit-small' or variant == 'didb':
        assert switches == {}
    if arch == 'swin-tiny':
        assert backbone['type'] == ('SwinTransformer' if variant == 'fp'
                                    else 'DIDBSwin')
        assert cfg['neck'] == dict(type='GlobalAveragePooling')
        assert head['type'] == 'LinearClsHead'
    elif arch == 'binaryvit-small':
        assert backbone['type'] == 'DIDBBinaryViT'
        assert cfg['neck'] is None and head['type'] == 'LinearClsHead'
        fp = dict(binary_weights=False, binary_acts=False,
                  act_cfg=dict(type='GELU'), **off)
        if variant == 'fp':
            assert {k: backbone[k] for k in fp} == fp
        else:
            assert 'binary_weights' not in backbone
    else:
        assert backbone['type'] == ('VisionTransformer' if variant == 'fp'
                                    else 'DIDBViT')
        assert backbone['patch_size'] == 16 and backbone['arch'] == arch
        assert cfg['neck'] is None
        assert head['type'] == 'VisionTransformerClsHead'


def test_configs_are_fresh_copies():
    a = classifier_cfg('binaryvit-small', 'fp')
    a['backbone']['act_cfg']['type'] = 'ReLU'
    assert classifier_cfg('binaryvit-small', 'fp')['backbone']['act_cfg'] == \
        dict(type='GELU')


def test_unknown_arch_or_variant():
    with pytest.raises(ValueError, match='arch must be one of'):
        classifier_cfg('deit-base')
    with pytest.raises(ValueError, match='variant must be one of'):
        classifier_cfg('deit-tiny', 'int8')


def test_entry_goes_at_the_end_of_its_section(tmp_path):
    path = tmp_path / 'docs' / 'benchmarks.md'
    common.append_benchmark_entry(path, '### one\n\nfirst', '## Tool')
    assert path.read_text() == '# Benchmarks\n\n## Tool\n\n### one\n\nfirst\n'
    path.write_text(path.read_text() + '\n## Other\n\nkept\n')
    common.append_benchmark_entry(path, '### two\n\nsecond\n\n', '## Tool')
    assert path.read_text() == ('# Benchmarks\n\n## Tool\n\n### one\n\n'
                                'first\n\n### two\n\nsecond\n\n## Other'
                                '\n\nkept\n')


def test_section_is_replaced_whole(tmp_path):
    path = tmp_path / 'benchmarks.md'
    common.write_benchmark_section(path, '## A (tool)\n\nold\n', '## A')
    path.write_text(path.read_text() + '\n## B\n\nkept\n')
    common.write_benchmark_section(path, '## A (tool)\n\nnew\n', '## A')
    assert path.read_text() == '# Benchmarks\n\n## B\n\nkept\n\n## A ' \
        '(tool)\n\nnew\n'


def test_command_line_quotes_the_arguments(monkeypatch):
    assert common.command_line('tools/benchmark/x.py', ['--a', 'b c']) == \
        "python tools/benchmark/x.py --a 'b c'"
    monkeypatch.setattr('sys.argv', ['x.py', '--quick'])
    assert common.command_line('tools/benchmark/x.py') == \
        'python tools/benchmark/x.py --quick'


def test_machine_line_on_the_cpu():
    import os

    import torch
    line = common.machine(threads='1/2')
    assert line.startswith(common.cpu_cores())
    assert f'{os.cpu_count()} cores, torch {torch.__version__}, 1/2 torch ' \
        'threads' in line


def test_guard_names_the_tool_and_what_it_lacks(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    problem = common.setup_problem('x.py', hint='try --device cpu')
    assert problem == ('x.py needs a CUDA GPU (torch.cuda.is_available() is '
                       'False); try --device cpu; nothing was measured.')
    assert common.setup_problem('x.py', cuda=False, openmmlab=True) is None


def test_interleaved_timer_alternates_the_entries():
    order = []
    times = common.interleaved_median_ms(
        {'a': lambda: order.append('a'),
         'b': (lambda: order.append('setup b'), lambda: order.append('b'))},
        repeats=2, iters=1)
    # warm-up of each, then one timed call of each per repeat, interleaved
    assert order == ['a', 'setup b', 'b'] + ['a', 'setup b', 'b'] * 2
    assert set(times) == {'a', 'b'}
    assert all(ms >= 0 and calls == 1 for ms, calls in times.values())
