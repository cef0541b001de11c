"""tools/benchmark/train_step_gpu.py: its CPU check (--tiny) and its errors.

The GPU numbers themselves come from tools/gpu_checks.sh; here the same
code runs on a tiny model on CPU, and the table's arithmetic is checked
against the numbers it prints.
"""
import os
import re
import subprocess
import sys

import pytest
import torch

from helpers import REPO_ROOT, load_tool

TOOL = 'tools/benchmark/train_step_gpu.py'
HEADING = '## Training step (tools/benchmark/train_step.py)'
ROW = re.compile(r'^\| (?P<label>[^|]+) \| (?P<mode>eager|compiled) \| '
                 r'(?P<ms>[0-9.]+) \| (?P<ratio>[0-9.]+)x \| '
                 r'(?P<fwd>[0-9.]+) \| (?P<bwd>[0-9.]+) \| '
                 r'(?P<opt>[0-9.]+) \|', re.M)


def _run(*args):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1',
               PYTHONPATH=REPO_ROOT)
    return subprocess.run([sys.executable, TOOL, *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True,
                          timeout=300)




def test_tiny_cpu_run_prints_a_consistent_table(tmp_path):
    out = tmp_path / 'benchmarks.md'
    # a section after the training-step one: the entry goes before it
    out.write_text(f'# Benchmarks\n\n{HEADING}\n\nold entry\n\n## Other\n\n'
                   'other text\n')
    result = _run('--device', 'cpu', '--tiny', '--warmup', '1', '--steps',
                  '3', '--output', str(out))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    rows = {m['label']: m for m in ROW.finditer(result.stdout)}
    assert sorted(rows) == ['DIDB-ViT DeiT-S', 'FP DeiT-S']
    assert {m['mode'] for m in rows.values()} == {'eager'}
    fp, didb = rows['FP DeiT-S'], rows['DIDB-ViT DeiT-S']
    assert fp['ratio'] == '1.00'
    # "vs FP" is the ratio of the two printed times, up to their rounding
    # (2 decimals each)
    a, b, r = float(didb['ms']), float(fp['ms']), float(didb['ratio'])
    assert (a - .005) / (b + .005) - .005 <= r <= (a + .005) / (b - .005) \
        + .005
    # the forward / backward / optimizer split adds up to the step
    for m in rows.values():
        parts = float(m['fwd']) + float(m['bwd']) + float(m['opt'])
        assert abs(parts - float(m['ms'])) <= 0.02, m.group(0)
        assert min(float(m['fwd']), float(m['bwd'])) > 0
    # precision: the FP ImageNet config has no AMP
    assert 'precision fp32 for both models (auto: the FP config\'s ' \
        'optim_wrapper is OptimWrapper, no AMP)' in result.stdout
    # appended inside the training-step section, after its old entry
    text = out.read_text()
    entry = text.index('UTC, CPU: DIDB-ViT DeiT-S vs FP DeiT-S (--tiny)')
    assert text.index('old entry') < entry < text.index('## Other')
    assert text.count(didb.group(0)) == 1


def test_summarise_splits_the_median_step_by_phase_totals():
    summary = load_tool(TOOL).summarise(
        dict(phases=[[1., 2., 3.], [2., 2., 2.], [10., 0., 0.]]))
    # steps 6, 6 and 10 ms: median 6; phase totals 13, 4, 5 of 22
    assert summary['ms'] == 6.
    assert summary['fwd'] == pytest.approx(6 * 13 / 22, rel=1e-12)
    assert summary['bwd'] == pytest.approx(6 * 4 / 22, rel=1e-12)
    assert summary['opt'] == pytest.approx(6 * 5 / 22, rel=1e-12)


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason='checks the error shown when CUDA is missing')
def test_device_cuda_without_cuda_is_a_one_line_error():
    result = _run('--device', 'cuda', '--no-append')
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and '--device cuda' in error[0] \
        and '--device cpu' in error[0], result.stderr
    assert 'ms / step' not in result.stdout
