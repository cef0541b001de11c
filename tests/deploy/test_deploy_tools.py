"""tools/deploy/convert.py and tools/test.py on a deploy checkpoint, as a
user runs them (subprocesses), and the inference and block-profile
benchmarks without a GPU."""
import importlib.util
import os
import re
import subprocess
import sys
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS, MODELS, init_default_scope

from mmdidb.compat import safe_torch_load
from mmdidb.models.deploy import META_KEY

from .deploy_helpers import randomise
from helpers import REPO_ROOT, load_tool, make_fashion_mnist

CONFIG = 'configs/didbvit/vit-mini_fashion-mnist.py'
#: the quick-start model and the window / pyramid backbones
CONFIGS = (CONFIG, 'configs/didbvit/swin-mini_fashion-mnist.py',
           'configs/didbvit/binaryvit-mini_fashion-mnist.py')


def run(cmd):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def build_model(config=CONFIG):
    """The config's model, with its data preprocessor as the runner adds."""
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(os.path.join(REPO_ROOT, config))
    model = MODELS.build(dict(cfg.model,
                              data_preprocessor=cfg.data_preprocessor))
    model.eval()
    return randomise(model)


def accuracy_in_process(model, data_root, config=CONFIG):
    """Top-1 (%) of the training graph on the test split, no runner."""
    cfg = Config.fromfile(os.path.join(REPO_ROOT, config))
    dataset = cfg.test_dataloader.dataset
    dataset.data_prefix = data_root
    samples = [item for item in DATASETS.build(dataset)]
    with torch.no_grad():
        results = model.test_step(pseudo_collate(samples))
    hits = [int(r.pred_label == r.gt_label) for r in results]
    return 100.0 * sum(hits) / len(hits)


@pytest.fixture(scope='module', params=CONFIGS,
                ids=lambda path: os.path.basename(path).split('_')[0])
def trained(request, tmp_path_factory):
    """A config and a checkpoint of its model, as the runner saves it."""
    root = tmp_path_factory.mktemp('convert')
    model = build_model(request.param)
    path = root / 'epoch_1.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict(),
                    optimizer=dict(state={})), path)
    return request.param, model, path


def convert(argv, capsys):
    """Run tools/deploy/convert.py in this process (saves a start-up)."""
    tool = load_tool('tools/deploy/convert.py')
    tool.main([str(a) for a in argv])
    return capsys.readouterr().out


def test_convert_then_test_the_deploy_checkpoint(trained, tmp_path, capsys):
    config, model, trained = trained
    out = tmp_path / 'deploy.pth'
    log = convert([config, trained, out], capsys)
    sizes = dict(re.findall(r'(training|deploy) checkpoint: .*: ([0-9,]+) '
                            r'bytes', log))
    assert int(sizes['training'].replace(',', '')) == os.path.getsize(
        trained)
    assert int(sizes['deploy'].replace(',', '')) == os.path.getsize(out)
    assert os.path.getsize(out) * 3 < os.path.getsize(trained)
    diff = re.search(r'verify: max \|deploy - training\| output difference '
                     r'(\S+)', log)
    assert diff and float(diff.group(1)) < 1e-4, log
    ckpt = safe_torch_load(str(out))
    assert ckpt['meta'][META_KEY]['float_dtype'] == 'fp32'
    assert ckpt['meta']['epoch'] == 1 and 'optimizer' not in ckpt

    # tools/test.py evaluates the deploy checkpoint like any other
    data = make_fashion_mnist(str(tmp_path / 'fmnist'), 8, 16)
    log = run([sys.executable, 'tools/test.py', config, str(out),
               '--work-dir', str(tmp_path / 'test'), '--cfg-options',
               'test_dataloader.batch_size=8',
               f'test_dataloader.dataset.data_prefix={data}'])
    found = re.search(r'Test metrics \(.*, deploy mode\): accuracy/top1: '
                      r'([0-9.]+)', log)
    assert found, log[-2000:]
    assert 'switching to deploy mode' in log
    assert 'do not match' not in log  # every key loaded
    assert float(found.group(1)) == accuracy_in_process(model, data, config)


def test_inference_benchmark_without_gpu_exits_cleanly():
    if torch.cuda.is_available():
        pytest.skip('a CUDA GPU is present: tools/gpu_checks.sh runs the '
                    'benchmark')
    log = run([sys.executable, 'tools/benchmark/inference.py', '--model',
               'deit-tiny'])
    assert 'needs a CUDA GPU' in log and 'nothing was measured' in log


def test_profile_block_tool_starts_and_writes_its_entry(tmp_path,
                                                        monkeypatch):
    # main() past the GPU measurements, which are stand-ins here: the
    # writer it calls at the end exists and adds the tool's entry
    tool = load_tool('tools/benchmark/profile_block.py')
    walls = {'eager': 1.0, 'fused': 0.8, 'eager + CUDA graph': 0.5,
             'fused + CUDA graph': 0.4, 'eager graph equals eager': True,
             'fused graph equals eager': True, 'fused equals eager': True}
    monkeypatch.setattr(tool, 'problem', lambda: None)
    monkeypatch.setattr(tool, 'build_block', lambda args: (None, ) * 4)
    monkeypatch.setattr(tool, 'wall_times', lambda *args: walls)
    monkeypatch.setattr(tool, 'profile', lambda *args, **kwargs: (
        {'kernels per call': 12.0, 'GPU kernel time': 0.3}, 'table'))
    monkeypatch.setattr(torch.cuda, 'get_device_properties',
                        lambda index: types.SimpleNamespace(name='Fake GPU'))
    output = tmp_path / 'benchmarks.md'
    output.write_text('# Benchmarks\n\n## Other section\n\nkept\n')
    assert tool.main(['--output', str(output), '--batch', '2']) == 0
    text = output.read_text()
    assert '## Other section\n\nkept' in text
    section = text[text.index(tool.HEADING):]
    assert '### deit-small, layer 0, batch 2, fp16' in section
    assert 'Fake GPU' in section and '| fused + CUDA graph | 0.400 |' in section


def _load_test_tool():
    return load_tool('tools/test.py')


def test_cuda_graph_flag_needs_a_gpu(monkeypatch):
    tool = _load_test_tool()
    cfg = Config(dict(custom_hooks=[dict(type='ReseedHook')]))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(RuntimeError, match='--cuda-graph needs a CUDA GPU'):
        tool.add_cuda_graph_hook(cfg)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    tool.add_cuda_graph_hook(cfg)
    assert [h['type'] for h in cfg.custom_hooks] == ['ReseedHook',
                                                     'CUDAGraphHook']


def test_cuda_graph_hook_refuses_a_cpu_model():
    from types import SimpleNamespace

    from mmdidb.engine.hooks import CUDAGraphHook
    runner = SimpleNamespace(model=build_model())
    with pytest.raises(RuntimeError, match='needs the model on a CUDA GPU'):
        CUDAGraphHook().before_test(runner)


@pytest.mark.skipif(not torch.cuda.is_available()
                    or importlib.util.find_spec('cupy') is None,
                    reason='--cuda-graph needs a CUDA GPU and cupy')
def test_tools_test_with_cuda_graph_equals_eager(tmp_path, capsys):
    model = build_model()
    trained = tmp_path / 'epoch_1.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()),
               trained)
    out = tmp_path / 'deploy.pth'
    convert([CONFIG, trained, out], capsys)
    data = make_fashion_mnist(str(tmp_path / 'fmnist'), 8, 16)
    # batches of 6, 6, 4: two replays, the last (smaller) batch eager
    common = [sys.executable, 'tools/test.py', CONFIG, str(out),
              '--cfg-options', 'test_dataloader.batch_size=6',
              f'test_dataloader.dataset.data_prefix={data}']
    eager = run(common + ['--work-dir', str(tmp_path / 'eager')])
    graph = run(common + ['--work-dir', str(tmp_path / 'graph'),
                          '--cuda-graph'])
    metric = r'Test metrics \(.*, deploy mode\): (.*)'
    assert re.search(metric, graph).group(1) == re.search(
        metric, eager).group(1)
    assert 'CUDA graph: 2 batches replayed' in graph, graph[-3000:]
    assert '1 ran eagerly' in graph


def test_cpu_profile_tool_splits_both_paths(tmp_path, monkeypatch):
    tool = load_tool('tools/benchmark/profile_cpu.py')
    before = torch.get_num_threads()
    output = tmp_path / 'benchmarks.md'
    try:
        entry = tool.main(['--model', 'deit-tiny', '--repeats', '1',
                           '--output', str(output)])
    finally:
        torch.set_num_threads(before)
    section = output.read_text()
    assert tool.HEADING in section and entry in section
    rows = {line.split(' | ')[0].strip('| *'): line.split(' | ')[1:]
            for line in entry.splitlines() if line.startswith('| ')}
    # both paths measured side by side, the binary work found on each
    assert 'native C kernels (ms)' in entry and 'torch path (ms)' in entry
    for row in ('binary products', 'packing', 'LayerNorm',
                'total, profiled'):
        native, torch_path = (float(cell.strip('| *'))
                              for cell in rows[row][:2])
        assert native > 0 and torch_path > 0, row
    # the profiler left the kernels as they were: the C path is back on
    from mmdidb.ops import cpu_bits
    assert cpu_bits.available()
