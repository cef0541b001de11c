"""The CPU benchmarks: tools/benchmark/inference_cpu.py and bgemm.py --device cpu.

Short runs on the quick-start model and the DeiT-S GEMM shapes check that the
tools run end to end, write their entry where asked, and that the tables
have the expected rows, columns and checks (not the speeds: they are
measured on a quiet machine, not in tests).
"""
import os
import subprocess
import sys

from helpers import REPO_ROOT, load_tool

INFERENCE = 'tools/benchmark/inference_cpu.py'
BGEMM = 'tools/benchmark/bgemm.py'
INFERENCE_HEADING = '## CPU inference (tools/benchmark/inference_cpu.py)'
BGEMM_HEADING = '## CPU binary GEMM (tools/benchmark/bgemm.py --device cpu)'


def _run(tool, *args, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=REPO_ROOT)
    return subprocess.run([sys.executable, tool, *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True,
                          timeout=timeout)


def _table(text, first_cell):
    """The cells of the markdown rows whose first cell is ``first_cell``."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if line.startswith('|') and cells[0] == first_cell:
            rows.append(cells)
    return rows


def _header(text, first_cell):
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if line.startswith('|') and cells[0] == first_cell:
            return cells
    raise AssertionError(f'no table header starting with {first_cell!r}')


def _num(cell):
    """A table number: thousands separators and the ``x`` of ratios off."""
    return float(cell.replace(',', '').rstrip('x'))


def test_inference_cpu_quick_run_on_the_mini_model(tmp_path):
    out = tmp_path / 'benchmarks.md'
    out.write_text(f'# Benchmarks\n\n{INFERENCE_HEADING}\n\nold entry\n\n'
                   '## Other\n\nother text\n')
    result = _run(INFERENCE, '--quick', '--models', 'mini', '--repeats', '2',
                  '--min-sample-s', '0.01', '--output', str(out))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    head = _header(result.stdout, 'model')
    assert head == ['model', 'engine', 'batch', 'threads', 'ms / batch',
                    'images/s', 'vs torch FP32', 'vs ORT int8',
                    'peak RSS (MiB)', 'above imports (MiB)', 'check']
    rows = _table(result.stdout, 'mini')
    # onnxruntime is a test requirement (requirements/tests.txt)
    engines = {'torch FP32', 'ORT FP32', 'ORT int8 (dynamic)'}
    seen = {}
    for cells in rows:
        row = dict(zip(head, cells))
        engine = row['engine']
        if engine.startswith('DIDB deploy ('):
            engine = 'DIDB deploy'
        seen[(engine, row['batch'], row['threads'])] = row
    expected = {(e, b, t) for e in engines | {'DIDB deploy'}
                for b in ('1', '8') for t in ('1', '2')}
    assert set(seen) == expected
    for (engine, batch, threads), row in seen.items():
        assert _num(row['ms / batch']) > 0
        assert _num(row['peak RSS (MiB)']) > \
            _num(row['above imports (MiB)']) > 0
        if engine == 'DIDB deploy':
            assert row['check'] == 'exact'
        elif engine == 'torch FP32':
            assert row['vs torch FP32'] == '1.00x'
        elif engine == 'ORT FP32':
            assert row['check'].startswith('max abs diff')
            assert 'MISMATCH' not in row['check']
        # "vs ORT int8" is the ratio of the printed times, up to their
        # rounding (2 decimals each)
        int8 = _num(seen[('ORT int8 (dynamic)', batch, threads)]
                    ['ms / batch'])
        ms, ratio = _num(row['ms / batch']), _num(row['vs ORT int8'])
        assert (int8 - .005) / (ms + .005) - .005 <= ratio <= \
            (int8 + .005) / max(ms - .005, 1e-9) + .005
    text = out.read_text()
    # the entry goes at the end of its section, before the next one
    assert text.index('old entry') < text.index('### mini, ') < \
        text.index('## Other')
    assert 'exact' in text.split('## Other')[0]


def test_inference_cpu_says_why_without_onnxruntime(monkeypatch):
    module = load_tool(INFERENCE)
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    reason = module.ort_problem()
    assert 'onnxruntime' in reason
    assert 'requirements/benchmark.txt' in reason


def test_bgemm_cpu_quick_run(tmp_path):
    from mmdidb.ops import cpu_bits
    out = tmp_path / 'benchmarks.md'
    result = _run(BGEMM, '--device', 'cpu', '--threads', '1', '--repeats',
                  '1', '--iters', '1', '--output', str(out))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    head = _header(result.stdout, 'model')
    assert head[:6] == ['model', 'layer', 'batch', 'matrices x M x K -> N',
                        'threads', 'path']
    assert head[-1] == 'exact'
    rows = [dict(zip(head, cells))
            for cells in _table(result.stdout, 'DeiT-Small')]
    isas = cpu_bits.ISAS[:cpu_bits.ISAS.index(cpu_bits.best_isa()) + 1]
    layers = ['qkv', 'proj', 'fc1', 'fc2', 'Q.K^T', 'mask.V']
    assert sorted((r['layer'], r['path']) for r in rows) == sorted(
        (layer, isa) for layer in layers for isa in isas)
    shapes = {r['layer']: r['matrices x M x K -> N'] for r in rows}
    assert shapes == {'qkv': '1 x 197 x 384 -> 1152',
                      'proj': '1 x 197 x 384 -> 384',
                      'fc1': '1 x 197 x 384 -> 1536',
                      'fc2': '1 x 197 x 1536 -> 384',
                      'Q.K^T': '6 x 197 x 64 -> 197',
                      'mask.V': '6 x 197 x 197 -> 64'}
    assert all(r['exact'] == 'yes' for r in rows)
    text = out.read_text()
    assert BGEMM_HEADING in text and 'clock' in text
