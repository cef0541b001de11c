"""The command-line tools, run as a user runs them (subprocesses), and the
names they import lazily, checked without running them."""
import ast
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mmpretrain
import pytest
import torch

from helpers import REPO_ROOT, make_fashion_mnist

CONFIG = 'configs/didbvit/vit-mini_fashion-mnist.py'
ACCURACY = re.compile(r'accuracy/top1: ([0-9.]+)')


def tiny_options(data_root, epochs=1):
    opts = [f'train_cfg.max_epochs={epochs}',
            'train_dataloader.batch_size=8',
            'val_dataloader.batch_size=8',
            'test_dataloader.batch_size=8',
            'default_hooks.logger.interval=1']
    for loader in ('train', 'val', 'test'):
        opts.append(f'{loader}_dataloader.dataset.data_prefix={data_root}')
    return ['--cfg-options'] + opts


def run(cmd, **kwargs):
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.update(kwargs.pop('env', {}))
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=600, **kwargs)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def state_dict(path):
    from mmdidb.compat import safe_torch_load
    return safe_torch_load(str(path))['state_dict']


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_fashion_mnist(str(tmp_path_factory.mktemp('fmnist')), 16, 16)


def test_train_then_test_reports_the_same_accuracy(data_root, tmp_path):
    work = tmp_path / 'work'
    out = run([sys.executable, 'tools/train.py', CONFIG, '--work-dir',
               str(work)] + tiny_options(data_root))
    assert 'Epoch(train) [1][1/2]' in out  # progress log
    final = re.search(r'Final validation metrics .*accuracy/top1: ([0-9.]+)',
                      out)
    assert final, out[-2000:]
    out = run([sys.executable, 'tools/test.py', CONFIG,
               str(work / 'epoch_1.pth'), '--work-dir',
               str(tmp_path / 'test')] + tiny_options(data_root))
    tested = re.search(r'Test metrics .*accuracy/top1: ([0-9.]+)', out)
    assert tested and float(tested.group(1)) == float(final.group(1))


def test_resume_ends_like_the_uninterrupted_run(data_root, tmp_path):
    base = [sys.executable, 'tools/train.py', CONFIG]
    run(base + ['--work-dir', str(tmp_path / 'straight')] +
        tiny_options(data_root, epochs=2))
    # the same run stopped after its first epoch checkpoint, then resumed
    # (the schedule's length comes from the config file, not max_epochs)
    run(base + ['--work-dir', str(tmp_path / 'split')] +
        tiny_options(data_root, epochs=1))
    out = run(base + ['--work-dir', str(tmp_path / 'split'), '--resume'] +
              tiny_options(data_root, epochs=2))
    assert 'resumed epoch: 1' in out
    straight = state_dict(tmp_path / 'straight' / 'epoch_2.pth')
    resumed = state_dict(tmp_path / 'split' / 'epoch_2.pth')
    first = state_dict(tmp_path / 'split' / 'epoch_1.pth')
    assert straight.keys() == resumed.keys()
    assert any(not torch.equal(first[k], resumed[k]) for k in first)
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_mmpretrain_stock_tools_with_only_custom_imports(tmp_path):
    root = make_fashion_mnist(str(tmp_path / 'plain'), 16, 8, compress=False)
    config = tmp_path / 'user_config.py'
    config.write_text(f'''
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmdidb'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='DIDBViT', arch='mini', img_size=28, patch_size=7,
                  in_channels=1),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
data_preprocessor = dict(num_classes=10, mean=[73.], std=[90.], to_rgb=False)
pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=8, num_workers=0,
    dataset=dict(type='FashionMNIST', data_prefix='{root}', download=False,
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=8, num_workers=0,
    dataset=dict(type='FashionMNIST', data_prefix='{root}', download=False,
                 test_mode=True, pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict()
test_cfg = dict()
''')
    tools = os.path.join(os.path.dirname(mmpretrain.__file__), '.mim', 'tools')
    work = tmp_path / 'work'
    out = run([sys.executable, os.path.join(tools, 'train.py'), str(config),
               '--work-dir', str(work), '--no-persistent-workers'])
    assert ACCURACY.search(out)
    # mmpretrain's own test.py loads the checkpoint through mmdidb's
    # weights_only loader, brought in by custom_imports alone
    out = run([sys.executable, os.path.join(tools, 'test.py'), str(config),
               str(work / 'epoch_1.pth'), '--work-dir', str(tmp_path / 't')])
    assert ACCURACY.search(out)


def _top_level_names(path):
    """Names a module defines or imports at its top level, without running it."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split('.')[0] for a in node.names}
    return names


#: The benchmark tools' frame, which tools in other folders load from its
#: file into a variable of this name.
FRAME = Path(REPO_ROOT, 'tools', 'benchmark', 'common.py')


def _sibling_modules(path, tree):
    """name -> file of the modules a tool reaches by name: those beside it
    that it imports (``import common``), and the benchmark frame that tools
    elsewhere load from its file."""
    siblings = {p.stem: p for p in path.parent.glob('*.py')}
    found = {alias.asname or alias.name: siblings[alias.name]
             for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names if alias.name in siblings}
    if FRAME.name in path.read_text() and path != FRAME:
        found.setdefault('common', FRAME)
    return found


def test_every_from_import_in_the_tools_resolves():
    # Tools import lazily inside functions, often after a GPU measurement:
    # a name that moved would only fail at the end of a GPU run. Checked:
    # ``from X import name`` of mmdidb and of the modules beside a tool, and
    # ``common.name`` of the benchmark frame (or another module beside it).
    missing = []
    for path in sorted(Path(REPO_ROOT, 'tools').rglob('*.py')):
        siblings = {p.stem: p for p in path.parent.glob('*.py')}
        tree = ast.parse(path.read_text())
        modules = _sibling_modules(path, tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(
                    node.value, ast.Name) and node.value.id in modules:
                if node.attr not in _top_level_names(
                        modules[node.value.id]):
                    missing.append((path.name, node.value.id, node.attr))
            if not isinstance(node, ast.ImportFrom) or node.level:
                continue
            wanted = [a.name for a in node.names]
            if node.module in siblings:
                found = _top_level_names(siblings[node.module])
                missing += [(path.name, node.module, name)
                            for name in wanted if name not in found]
            elif node.module.split('.')[0] == 'mmdidb':
                module = importlib.import_module(node.module)
                for name in wanted:
                    if not hasattr(module, name) and importlib.util.find_spec(
                            f'{node.module}.{name}') is None:
                        missing.append((path.name, node.module, name))
    assert not missing


#: Imports each tool (as ``python TOOL --help`` would, its folder first on
#: ``sys.path``) and runs its ``__main__`` block with ``--help``, all in one
#: interpreter: the stack is imported once instead of once per tool. Writes
#: ``{path: [exit code or error, output]}`` as JSON to ``argv[1]``.
HELP_RUNNER = r"""
import contextlib, io, json, os, runpy, sys, traceback
out_file, paths = sys.argv[1], sys.argv[2:]
results = {}
for path in paths:
    is_script = "__name__ == '__main__'" in open(path).read()
    buffer = io.StringIO()
    sys.argv = [path, '--help']
    sys.path.insert(0, os.path.dirname(path))
    try:
        with contextlib.redirect_stdout(buffer), \
                contextlib.redirect_stderr(buffer):
            runpy.run_path(path, run_name='__main__' if is_script
                           else 'imported')
        code = 'returned' if is_script else 0
    except SystemExit as stop:
        code = stop.code
    except BaseException:
        code = traceback.format_exc()
    finally:
        sys.path.remove(os.path.dirname(path))
    results[path] = [code, buffer.getvalue() if is_script else 'module']
with open(out_file, 'w') as f:
    json.dump(results, f)
"""


def test_every_tool_imports_and_prints_its_help(tmp_path):
    tools = sorted(str(p) for p in Path(REPO_ROOT, 'tools').rglob('*.py'))
    out = tmp_path / 'help.json'
    # this checkout's mmdidb first, as tools/gpu_env.sh and the launch
    # scripts put it
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO_ROOT] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    result = subprocess.run([sys.executable, '-c', HELP_RUNNER, str(out),
                             *tools], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads(out.read_text())
    assert sorted(results) == tools
    failed = {}
    for path, (code, text) in results.items():
        name = os.path.basename(path)
        if text == 'module':
            ok = code == 0
        else:
            ok = code == 0 and f'usage: {name}' in text
        if not ok:
            failed[os.path.relpath(path, REPO_ROOT)] = (code, text[-1000:])
    assert not failed
