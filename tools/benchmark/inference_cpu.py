"""CPU inference speed and memory: deployed DIDB model vs torch FP32 and ONNX Runtime.

For each model (``--models``; the paper's ImageNet classifiers at 224x224
with 1000 classes, and the quick-start Fashion-MNIST model ``mini`` at
28x28), random weights, these engines run the same random input:

- ``DIDB deploy``: the DIDB model after ``switch_to_deploy`` (1-bit
  weights; every binary product in mmdidb's native CPU kernels, on the best
  instruction-set path of the CPU); the RSign shifts (``*.beta``) are drawn
  from N(0, 0.1) so that no binarizer is trivial;
- ``DIDB deploy, torch bit path`` (``--with-torch-path``, batch 1 and one
  thread only: it is tens of times slower): the same model with the native
  kernels off, the products as torch passes (``MMDIDB_CPU_KERNELS=0``);
- ``torch FP32``: mmpretrain's full-precision model of the same size (the
  FP twin; for BinaryViT-S the same pyramid in full precision);
- ``ORT FP32``: the FP twin exported to ONNX (``torch.onnx.export``, the
  TorchScript exporter, opset 17, or the dynamo exporter when that fails;
  one file per batch size) in ONNX Runtime's CPU provider;
- ``ORT int8``: the same file after ``onnxruntime.quantization.
  quantize_dynamic`` (QInt8 weights, activations quantised on the fly).

Each batch size (``--batches``) runs at each thread count (``--threads``;
``torch.set_num_threads``, ORT ``intra_op_num_threads`` with
``inter_op_num_threads=1``). All rows of a model are timed in one
interleaved run: every repeat takes one sample of each row in turn, and a
row's time is the median of its samples (each sample repeats the forward
pass for at least ``--min-sample-s`` seconds). Speed-ups divide the time of
torch FP32 (or ORT int8) by the row's time, at the same batch and threads.

Checks before timing: the deployed model's logits with the native kernels
(at every thread count) equal those of the torch bit path bit for bit
("exact"); ORT's logits are compared with torch FP32's (largest absolute
difference).

Peak RSS: each engine runs in a child process of its own (torch, mmpretrain
and mmdidb imported for the torch engines; numpy and onnxruntime only for
the ORT ones) at the largest thread count: it builds the model (for DIDB:
the training form, then the deploy switch) or the session, runs one
forward pass, gives the heap's free memory back to the OS (glibc
``malloc_trim``: the float weights the deploy switch dropped would stay
resident otherwise), resets the peak (``/proc/self/clear_refs``), runs
another pass and reads ``VmHWM``: the resident peak while serving, weights
included, without the transient of building. "above imports" subtracts the
RSS the child had before building.

Prints a markdown table and, unless ``--no-append``, appends it with the
command, machine and date to ``docs/benchmarks.md`` under "## CPU inference
(tools/benchmark/inference_cpu.py)". Needs ``onnxruntime`` and ``onnx``
(``pip install -r requirements/benchmark.txt``) for the ORT rows; without
them the other rows still run.

Usage::

    python tools/benchmark/inference_cpu.py [--models deit-small mini]
        [--batches 1 8] [--threads 1 2] [--with-torch-path] [--quick]
        [--no-append]
"""
import argparse
import contextlib
import copy
import datetime
import gc
import json
import logging
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import common

REPO = common.REPO
HEADING = '## CPU inference (tools/benchmark/inference_cpu.py)'
MODELS = common.ARCHS + ('mini', )
#: The quick-start model and its FP twin.
MINI = ('configs/didbvit/vit-mini_fashion-mnist.py',
        'configs/didbvit/vit-mini-fp_fashion-mnist.py')
#: engine key -> row label (DIDB's label gets the ISA path appended)
ENGINES = {
    'didb': 'DIDB deploy',
    'didb-torch': 'DIDB deploy, torch bit path',
    'fp32': 'torch FP32',
    'ort-fp32': 'ORT FP32',
    'ort-int8': 'ORT int8 (dynamic)',
}
#: the ONNX opset of the TorchScript exporter (the dynamo one needs 18+)
OPSET = 17
#: ORT FP32 logits further than this (relative to the largest logit) from
#: torch FP32's are flagged: both compute in float32, only the order of the
#: sums differs
ORT_FP32_RTOL = 1e-3


def parse_args(argv=None):
    """Command-line options.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The parsed namespace.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', choices=MODELS, default=None,
                        help='models to run (default: all; mini with '
                        '--quick)')
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--repeats', type=int, default=None,
                        help='samples per row, median taken (default 7, '
                        '3 with --quick)')
    parser.add_argument('--min-sample-s', type=float, default=None,
                        help='shortest sample in seconds (default 0.2, '
                        '0.05 with --quick)')
    parser.add_argument('--settle-s', type=float, default=0.05,
                        help='pause before each sample, so that the threads '
                        'of the row before (ONNX Runtime\'s spin after each '
                        'run) are idle (default 0.05)')
    parser.add_argument('--with-torch-path', action='store_true',
                        help='add the deployed model on the torch bit path '
                        '(smallest batch, fewest threads only)')
    parser.add_argument('--no-ort', action='store_true',
                        help='leave out the ONNX Runtime rows')
    parser.add_argument('--no-rss', action='store_true',
                        help='do not measure peak RSS (no child processes)')
    parser.add_argument('--quick', action='store_true',
                        help='sanity run: the mini model (unless --models), '
                        'fewer and shorter samples')
    parser.add_argument('--workdir', type=Path, default=None,
                        help='where the ONNX files go (default: a temporary '
                        'directory, removed at the end)')
    common.add_output_args(parser)
    # internal: the peak RSS of one engine in this process
    parser.add_argument('--rss-worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = ['mini'] if args.quick else list(MODELS)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    if args.min_sample_s is None:
        args.min_sample_s = 0.05 if args.quick else 0.2
    args.batches = sorted(set(args.batches))
    args.threads = sorted(set(args.threads))
    if min(args.batches) < 1 or min(args.threads) < 1:
        parser.error('batches and threads must be positive')
    return args


# ------------------------------------------------------------------ models
def model_cfgs(name):
    """``(DIDB model cfg, FP twin cfg, input shape)`` of a model name."""
    if name == 'mini':
        from mmdidb.apis import load_config
        didb, fp = (load_config(str(REPO / path)).model for path in MINI)
        size = didb.backbone.img_size
        return (didb.to_dict(), fp.to_dict(),
                (didb.backbone.in_channels, size, size))
    return (common.classifier_cfg(name, 'didb'),
            common.classifier_cfg(name, 'fp'), (3, 224, 224))


def build(cfg, deploy):
    """Build a classifier with random weights, in eval mode.

    Args:
        cfg (dict): The model dict.
        deploy (bool): Draw the RSign shifts from N(0, 0.1) and switch the
            model to deploy mode.

    Returns:
        nn.Module: The model.
    """
    import torch
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from mmdidb.models.deploy import switch_to_deploy
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg))
    if deploy:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith('.beta'):
                    param.normal_(0.0, 0.1)
        switch_to_deploy(model)
    return model.eval()


@contextlib.contextmanager
def torch_bit_path():
    """Run the binary products as torch passes inside the block.

    With the native library unloaded, :mod:`mmdidb.ops` takes the torch
    reference path for CPU tensors, exactly as with ``MMDIDB_CPU_KERNELS=0``
    (the one warning it gives is silenced here).
    """
    from mmdidb.ops import cpu_bits
    cpu_bits.available()  # load it first, so that it can be put back
    saved = cpu_bits._state['lib']
    cpu_bits._state['lib'] = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        cpu_bits._state['lib'] = saved


def check_exact(model, shape, threads):
    """Whether the native kernels give the torch bit path's logits.

    Args:
        model: The deployed model.
        shape: Input shape without the batch.
        threads: Thread counts to run the native kernels at.

    Returns:
        bool: Equal bit for bit at every thread count (batch 2).
    """
    import torch
    torch.manual_seed(1)
    x = torch.randn(2, *shape)
    with torch.inference_mode():
        native = []
        for count in threads:
            torch.set_num_threads(count)
            native.append(model(x, mode='tensor'))
        with torch_bit_path():
            reference = model(x, mode='tensor')
    return all(torch.equal(out, reference) for out in native)


# -------------------------------------------------------------------- ORT
def ort_problem():
    """Why the ONNX Runtime rows cannot run here, or None."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as err:
        return (f'onnxruntime is not importable ({err}); install it with '
                '`pip install -r requirements/benchmark.txt`')
    return None


def logits_module(model):
    """``model`` as an ``nn.Module`` whose forward returns its logits
    (``model(x, mode='tensor')``), for the ONNX exporters."""
    from torch import nn

    class Logits(nn.Module):

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x, mode='tensor')

    # eval: the TorchScript exporter puts the wrapper back in its own mode
    # afterwards, which would switch the model to training
    return Logits(model).eval()


def export_onnx(model, shape, batch, path):
    """Export ``model(x, mode='tensor')`` at a fixed batch size.

    Args:
        model: The FP model (eval mode).
        shape: Input shape without the batch.
        batch: Batch size of the file.
        path (Path): The ``.onnx`` file to write.

    Returns:
        str: The exporter that succeeded ('TorchScript' or 'dynamo').

    Raises:
        RuntimeError: Both exporters failed (their errors in the message).
    """
    import torch
    wrapper = logits_module(model)
    x = torch.randn(batch, *shape)
    errors = []
    for dynamo, opset in ((False, OPSET), (True, max(OPSET, 18))):
        try:
            with warnings.catch_warnings(), \
                    contextlib.redirect_stdout(sys.stderr):
                warnings.simplefilter('ignore')
                torch.onnx.export(wrapper, (x, ), str(path), dynamo=dynamo,
                                  opset_version=opset,
                                  input_names=['input'],
                                  output_names=['logits'])
            return 'dynamo' if dynamo else 'TorchScript'
        except Exception as err:  # noqa: BLE001  (try the other exporter)
            text = ' '.join(str(err).split())[:300]
            errors.append(f'{"dynamo" if dynamo else "TorchScript"}: '
                          f'{type(err).__name__}: {text}')
    raise RuntimeError('ONNX export failed: ' + '; '.join(errors))


def quantize_int8(src, dst):
    """ORT dynamic quantisation of ``src`` (QInt8 weights) into ``dst``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    root = logging.getLogger()
    level = root.level
    # it logs a warning per tensor it leaves in float
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def ort_session(path, threads):
    """An ONNX Runtime CPU session of ``path`` on ``threads`` threads."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options,
                                providers=['CPUExecutionProvider'])


def ort_feed(session, x):
    """The input dict of ``session.run`` for the array ``x``."""
    return {session.get_inputs()[0].name: x}


def prepare_ort(name, fp_model, shape, batches, workdir):
    """Export and quantise the FP twin at each batch size.

    Args:
        name: Model name (file names).
        fp_model: The FP twin.
        shape: Input shape without the batch.
        batches: Batch sizes.
        workdir (Path): Where the files go.

    Returns:
        ``(files, notes)``: ``files[(engine, batch)] = path`` for the
        engines that could be prepared, and notes (the exporter used, or
        why an engine is missing).
    """
    files, notes, exporters = {}, [], set()
    for batch in batches:
        fp32 = workdir / f'{name}_b{batch}_fp32.onnx'
        try:
            exporters.add(export_onnx(fp_model, shape, batch, fp32))
        except RuntimeError as err:
            notes.append(f'{name}: no ORT rows at batch {batch}: {err}')
            continue
        files[('ort-fp32', batch)] = fp32
        int8 = workdir / f'{name}_b{batch}_int8.onnx'
        try:
            quantize_int8(fp32, int8)
        except Exception as err:  # noqa: BLE001  (keep the FP32 rows)
            notes.append(f'{name}: no ORT int8 row at batch {batch}: '
                         f'{type(err).__name__}: {err}')
            continue
        files[('ort-int8', batch)] = int8
    if exporters:
        notes.append(f'{name}: exported with the '
                     f'{" and ".join(sorted(exporters))} exporter')
    return files, notes


# -------------------------------------------------------------------- RSS
def _reset_hwm():
    """Reset ``VmHWM`` to the current RSS; False when the kernel refuses."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _trim_heap():
    """Give the heap's free memory back to the OS (glibc ``malloc_trim``).

    Building a DIDB model allocates its training form (float weights),
    which the deploy switch frees; glibc keeps most of that memory mapped,
    so without a trim it would count as resident forever.

    Returns:
        bool: Whether the C library has ``malloc_trim``.
    """
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def rss_worker(spec):
    """Peak RSS of one engine in this process; prints it as JSON.

    Args:
        spec (dict): ``model``, ``engine``, ``batches``, ``threads`` and,
            for the ORT engines, ``files`` (batch -> ONNX file).
    """
    engine, threads = spec['engine'], spec['threads']
    if engine.startswith('ort'):
        import numpy as np
        import onnxruntime  # noqa: F401
        imports = common.rss_kib()
        peaks, reset = {}, True
        for batch in spec['batches']:
            session = ort_session(spec['files'][str(batch)], threads)
            feed = ort_feed(session, np.random.default_rng(0).standard_normal(
                session.get_inputs()[0].shape).astype(np.float32))
            session.run(None, feed)
            _trim_heap()
            reset &= _reset_hwm()
            session.run(None, feed)
            peaks[batch] = common.peak_rss_kib()
            del session
    else:
        import torch

        import mmdidb  # noqa: F401  (its compat fixes before mmpretrain)
        torch.set_num_threads(threads)
        imports = common.rss_kib()
        didb, fp, shape = model_cfgs(spec['model'])
        model = build(didb if engine == 'didb' else fp, engine == 'didb')
        gc.collect()
        _trim_heap()
        peaks, reset = {}, True
        with torch.inference_mode():
            for batch in spec['batches']:
                x = torch.randn(batch, *shape)
                model(x, mode='tensor')
                _trim_heap()
                reset &= _reset_hwm()
                model(x, mode='tensor')
                peaks[batch] = common.peak_rss_kib()
    print(json.dumps(dict(imports=imports, peaks=peaks, reset=reset)))


def measure_rss(name, engines, batches, threads, files):
    """Run :func:`rss_worker` in a child process per engine.

    Returns:
        dict: ``(engine, batch) -> (peak MiB, above imports MiB, reset)``;
        an engine whose child failed is left out (and said so).
    """
    result = {}
    for engine in engines:
        spec = dict(model=name, engine=engine, threads=threads,
                    batches=[b for b in batches
                             if not engine.startswith('ort')
                             or (engine, b) in files],
                    files={str(b): str(files[(engine, b)])
                           for b in batches if (engine, b) in files})
        if not spec['batches']:
            continue
        proc = subprocess.run(
            [sys.executable, __file__, '--rss-worker', json.dumps(spec)],
            cwd=REPO, capture_output=True, text=True)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            print(f'{name} {engine}: the RSS child failed '
                  f'(status {proc.returncode}): {proc.stderr[-2000:]}',
                  flush=True)
            continue
        out = json.loads(lines[-1])
        for batch, peak in out['peaks'].items():
            result[(engine, int(batch))] = (
                peak / 1024, (peak - out['imports']) / 1024, out['reset'])
    return result


# ---------------------------------------------------------------- timing
def time_model(name, args, workdir, ort_reason):
    """Check and time every engine of one model, then measure its RSS.

    Returns:
        ``(rows, notes, exact)``: rows are dicts (engine, batch, threads,
        ms, check, rss), notes a list of strings, exact whether the native
        kernels matched the torch bit path.
    """
    import numpy as np
    import torch

    from mmdidb.ops import cpu_bits
    didb_cfg, fp_cfg, shape = model_cfgs(name)
    didb = build(didb_cfg, deploy=True)
    fp = build(fp_cfg, deploy=False)
    native = cpu_bits.available()
    exact = check_exact(didb, shape, args.threads) if native else None
    print(f'{name}: native kernels vs torch bit path: '
          f'{"exact" if exact else "DIFFERENT" if native else "n/a"}',
          flush=True)
    notes = []
    files = {}
    if ort_reason is None:
        files, notes = prepare_ort(name, fp, shape, args.batches, workdir)
    inputs = {b: torch.randn(b, *shape, generator=torch.Generator()
                             .manual_seed(b)) for b in args.batches}
    checks = {}
    with torch.inference_mode():
        for batch, x in inputs.items():
            ref = fp(x, mode='tensor').numpy()
            scale = float(np.abs(ref).max())
            for engine in ('ort-fp32', 'ort-int8'):
                if (engine, batch) not in files:
                    continue
                session = ort_session(files[(engine, batch)], 1)
                out = session.run(None, ort_feed(session, x.numpy()))[0]
                diff = float(np.abs(out - ref).max())
                flag = ('' if engine == 'ort-int8'
                        or diff <= ORT_FP32_RTOL * max(scale, 1.0)
                        else ' **MISMATCH**')
                checks[(engine, batch)] = f'max abs diff {diff:.2g}{flag}'
    engines = ['didb'] + (['didb-torch'] if args.with_torch_path else []) \
        + ['fp32', 'ort-fp32', 'ort-int8']
    calls, sessions = {}, []
    for batch in args.batches:
        x = inputs[batch]
        for threads in args.threads:
            def setup(count=threads):
                torch.set_num_threads(count)

            for engine in engines:
                key = (engine, batch, threads)
                if engine == 'didb':
                    calls[key] = (setup, lambda x=x, m=didb: m(x, mode='tensor'))
                elif engine == 'didb-torch':
                    if batch != args.batches[0] or \
                            threads != args.threads[0]:
                        continue

                    def slow(x=x, m=didb):
                        with torch_bit_path():
                            return m(x, mode='tensor')

                    calls[key] = (setup, slow)
                elif engine == 'fp32':
                    calls[key] = (setup, lambda x=x, m=fp: m(x, mode='tensor'))
                elif (engine, batch) in files:
                    session = ort_session(files[(engine, batch)], threads)
                    sessions.append(session)
                    feed = ort_feed(session, x.numpy())
                    calls[key] = (setup, lambda s=session, f=feed:
                                  s.run(None, f))

    def progress(repeat):
        print(f'{name}: repeat {repeat + 1}/{args.repeats} done', flush=True)

    with torch.inference_mode():
        times = common.interleaved_median_ms(
            calls, args.repeats, min_sample_s=args.min_sample_s,
            settle_s=args.settle_s, on_sample=progress)
    del calls, sessions, didb, fp
    gc.collect()
    rss = {}
    if not args.no_rss:
        rss = measure_rss(name, [e for e in engines if e != 'didb-torch'],
                          args.batches, max(args.threads), files)
    rows = []
    for (engine, batch, threads), (ms, _) in times.items():
        check = checks.get((engine, batch), '')
        if engine == 'didb-torch':
            check = 'reference of "exact"'
        elif engine == 'didb':
            check = ('exact' if exact else '**DIFFERENT**') \
                if native else 'native kernels unavailable'
        elif engine == 'fp32':
            check = 'reference'
        rows.append(dict(model=name, engine=engine, batch=batch,
                         threads=threads, ms=ms, check=check,
                         rss=rss.get((engine, batch))))
        print(f'{name} {ENGINES[engine]} batch {batch} threads {threads}: '
              f'{ms:.2f} ms', flush=True)
    return rows, notes, exact


# ----------------------------------------------------------------- report
def markdown(rows, isa):
    """The table: one line per (model, batch, threads, engine).

    Args:
        rows: Row dicts of :func:`time_model`.
        isa: The native kernels' instruction-set path (for the label).

    Returns:
        str: The markdown table.
    """
    order = list(ENGINES)
    rows = sorted(rows, key=lambda r: (MODELS.index(r['model']), r['batch'],
                                       r['threads'], order.index(r['engine'])))
    ref = {(r['model'], r['batch'], r['threads'], r['engine']): r['ms']
           for r in rows}
    head = ['model', 'engine', 'batch', 'threads', 'ms / batch', 'images/s',
            'vs torch FP32', 'vs ORT int8', 'peak RSS (MiB)',
            'above imports (MiB)', 'check']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|']
    for r in rows:
        label = ENGINES[r['engine']]
        if r['engine'] == 'didb':
            label += f' ({isa})'

        def speedup(engine, r=r):
            base = ref.get((r['model'], r['batch'], r['threads'], engine))
            return f'{base / r["ms"]:.2f}x' if base else ''

        rss = r['rss']
        lines.append('| ' + ' | '.join([
            r['model'], label, str(r['batch']), str(r['threads']),
            f'{r["ms"]:,.2f}', f'{r["batch"] / r["ms"] * 1e3:,.1f}',
            speedup('fp32'), speedup('ort-int8'),
            f'{rss[0]:,.0f}' if rss else '',
            f'{rss[1]:,.0f}' if rss else '', r['check']]) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    """Entry point.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit status: 1 when the native kernels were not exact.
    """
    args = parse_args(argv)
    if args.rss_worker:
        rss_worker(json.loads(args.rss_worker))
        return 0
    import torch

    import mmdidb  # noqa: F401  (its compat fixes before mmpretrain)
    from mmdidb.ops import cpu_bits
    ort_reason = 'left out (--no-ort)' if args.no_ort else ort_problem()
    if ort_reason is not None:
        print(f'ONNX Runtime rows skipped: {ort_reason}', flush=True)
    isa = cpu_bits.resolve_isa() if cpu_bits.available() else \
        'unavailable: torch bit path'
    saved_threads = torch.get_num_threads()
    rows, notes, exact = [], [], True
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix='mmdidb_onnx_')))
        workdir.mkdir(parents=True, exist_ok=True)
        for name in args.models:
            model_rows, model_notes, model_exact = time_model(
                name, args, workdir, ort_reason)
            rows += model_rows
            notes += model_notes
            exact &= model_exact is not False
    torch.set_num_threads(saved_threads)
    table = markdown(rows, isa)
    text = entry(args, argv, isa, ort_reason, notes, rows, table)
    print()
    print(text)
    if not args.no_append:
        common.append_benchmark_entry(args.output, text, HEADING)
        print(f'appended to {args.output}')
    return 0 if exact else 1


def plural(count, word):
    """``'1 thread'``, ``'2 threads'``."""
    return f'{count} {word}{"" if count == 1 else "s"}'


def entry(args, argv, isa, ort_reason, notes, rows, table):
    """The ``### `` entry: date, command, machine, method, notes, table."""
    now = datetime.datetime.now(datetime.timezone.utc)
    command = common.command_line('tools/benchmark/inference_cpu.py', argv)
    threads = '/'.join(map(str, args.threads))
    if ort_reason is None:
        import onnxruntime
        ort_text = f'onnxruntime {onnxruntime.__version__}'
    else:
        ort_text = f'no ONNX Runtime rows: {ort_reason}'
    lines = [
        f'### {", ".join(args.models)}, {now:%Y-%m-%d %H:%M} UTC, CPU', '',
        f'- command: `{command}`',
        f'- machine: {common.machine(threads=threads)}; native kernels: {isa}; '
        f'{ort_text}',
        f'- median of {plural(args.repeats, "sample")} per row, all rows '
        'of a model interleaved (a sample: a pause of '
        f'{args.settle_s:g} s, so that the threads of the row before are '
        f'idle, then forward passes for at least {args.min_sample_s:g} s, '
        'after an untimed one when there are several); random weights and '
        'input; ORT: CPU provider, default '
        'graph optimisations, intra-op threads = threads, one inter-op '
        'thread; speed-up = '
        'time of torch FP32 (or ORT int8) / time of the row, same batch '
        'and threads; "exact": the deployed model\'s logits with the native '
        'kernels equal the torch bit path\'s bit for bit; ORT rows: largest '
        '|logit difference| from torch FP32',
    ]
    if not args.no_rss:
        lines.append(
            '- peak RSS: one child process per engine '
            f'({plural(max(args.threads), "thread")}), resident peak over '
            'one forward pass after a warm-up pass and a `malloc_trim`, '
            'weights included, the peak of building excluded; "above '
            'imports" subtracts the RSS after importing the engine (torch, '
            'mmpretrain and mmdidb, or onnxruntime)')
    if any(r['rss'] and not r['rss'][2] for r in rows):
        lines.append('- the kernel refused to reset the peak RSS here: the '
                     'peaks include building the model')
    lines += [f'- {note}' for note in notes]
    return '\n'.join(lines + ['', table, ''])


if __name__ == '__main__':
    sys.exit(main())
