"""Where the CPU time of a deployed DIDB model goes (torch.profiler).

Builds a deployed classifier of the paper's archs (random weights, random
RSign shifts so that no binarizer is trivial) and profiles one forward pass
twice in the same run: with the native C kernels of ``mmdidb.ops`` (the
default) and with every product and packing on the pure-torch path (what
``MMDIDB_CPU_KERNELS=0`` gives). Each time is split into:

- binary products: the integer GEMMs (XNOR/AND-popcount), with the packing
  of the linear layers' inputs when it is fused into them (``sign_linear``);
- packing: the other activation packing (Q, K, the attention mask, V);
- float leftovers, by kind: LayerNorm, IRPReLU, RSign (the ±1 V that D(V)
  and the self term need), softmax and the elastic binarizer, HFSC's Haar
  split, D(V)'s depthwise convolution and the patch embedding, other
  element-wise arithmetic, reductions, data movement (copies, cat,
  reshapes) and allocation;
- Python and dispatch: wall time minus everything above; it includes the
  profiler's own cost per op, so the shares are those of a profiled run:
  the unprofiled medians at the bottom of the table are the real times.

The whole model and its first encoder layer are timed (median of
``--repeats`` calls after a warm-up). Prints a markdown table and appends it
to ``docs/benchmarks.md`` under "## CPU profile of the deployed model"
unless ``--no-append``.

Usage::

    python tools/benchmark/profile_cpu.py [--model deit-small] [--batch 1]
        [--threads 1] [--no-append]
"""
import argparse
import contextlib
import datetime
import time
from collections import defaultdict

import torch

import common

HEADING = '## CPU profile of the deployed model (tools/benchmark/profile_cpu.py)'

#: (category, substrings of torch.profiler event names), first match wins
OP_CATEGORIES = (
    ('LayerNorm', ('layer_norm', )),
    ('IRPReLU', ('_ShiftedPReLU', 'prelu')),
    ('RSign (±1 values)', ('_ShiftedApproxSign', )),
    ('softmax + elastic binarizer', ('softmax', '_ElasticBinarize', 'aten::ge',
                                     'aten::mul_')),
    ("Haar split", ('avg_pool2d', )),
    ('convolutions (D(V), patch embedding)', ('convolution', )),
    ('element-wise arithmetic', ('aten::add', 'aten::mul', 'aten::sub',
                                 'aten::div', 'aten::clamp', 'aten::neg',
                                 'aten::where')),
    ('reductions', ('aten::sum', 'aten::mean')),
    ('data movement', ('copy', 'cat', 'clone', 'contiguous', 'expand',
                       'permute', 'transpose', 'reshape', 'view', 'slice',
                       'select', 'unsqueeze', 'flatten', 'as_strided',
                       'detach', 'chunk', 'split', 'unflatten', 'index')),
    ('allocation', ('empty', 'zeros', 'ones', 'full', 'new_')),
    ('linear (full-precision head)', ('linear', 'addmm', 'mm')),
)
PRODUCTS = 'binary products'
PACKING = 'packing'
PYTHON = 'Python and dispatch'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='deit-small',
                        choices=common.ARCHS)
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    common.add_output_args(parser)
    return parser.parse_args(argv)


def build(arch: str):
    """A deployed classifier with non-trivial RSign shifts, in eval mode."""
    from mmpretrain.registry import MODELS

    import mmdidb  # noqa: F401  (registers the modules)
    from mmdidb.models.deploy import switch_to_deploy
    torch.manual_seed(0)
    model = MODELS.build(common.classifier_cfg(arch)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('beta'):
                param.normal_(0, 0.1)
    switch_to_deploy(model)
    return model


@contextlib.contextmanager
def labelled_kernels(native: bool):
    """Wrap the product and packing entry points in profiler ranges.

    Args:
        native (bool): Run the C kernels (True) or force the torch path.

    Yields:
        None; inside, ``mmdidb::<kind>`` ranges mark the binary work.
    """
    from mmdidb.ops import cpu_bits, packing, products
    saved = []

    def wrap(module, name, label):
        real = getattr(module, name)

        def labelled(*args, **kwargs):
            with torch.profiler.record_function(label):
                return real(*args, **kwargs)

        saved.append((module, name, real))
        setattr(module, name, labelled)

    if native:
        wrap(cpu_bits, 'bgemm', f'mmdidb::{PRODUCTS}')
        wrap(cpu_bits, 'sign_linear', f'mmdidb::{PRODUCTS}')
        wrap(cpu_bits, 'pack_rows', f'mmdidb::{PACKING}')
        wrap(cpu_bits, 'pack_cols', f'mmdidb::{PACKING}')
    else:
        saved.append((cpu_bits, '_state', dict(cpu_bits._state)))
        cpu_bits._state['lib'] = None
        wrap(products, 'bmm_pm1_torch', f'mmdidb::{PRODUCTS}')
        wrap(products, 'bmm_mask_pm1_torch', f'mmdidb::{PRODUCTS}')
        wrap(packing, '_bits_to_words', f'mmdidb::{PACKING}')
    try:
        yield
    finally:
        for module, name, real in reversed(saved):
            if name == '_state':
                module._state.clear()
                module._state.update(real)
            else:
                setattr(module, name, real)


def categorise(name: str) -> str:
    for category, keys in OP_CATEGORIES:
        if any(key in name for key in keys):
            return category
    return 'other torch ops'


def _inside_label(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith('mmdidb::'):
            return True
        parent = parent.cpu_parent
    return False


def profile_once(model, x) -> dict:
    """Milliseconds per category for one forward pass."""
    from torch.profiler import ProfilerActivity, profile
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(x, mode='tensor')
    wall = (time.perf_counter() - start) * 1e3
    times = defaultdict(float)
    for event in prof.events():
        if event.name.startswith('mmdidb::'):
            if not _inside_label(event):
                times[event.name[len('mmdidb::'):]] += \
                    event.cpu_time_total / 1e3
        elif not _inside_label(event):
            times[categorise(event.name)] += event.self_cpu_time_total / 1e3
    times[PYTHON] = max(0.0, wall - sum(times.values()))
    times['total (profiled)'] = wall
    return times


def median_ms(fn, repeats: int) -> float:
    """Median wall time of one call of ``fn`` in ms, after a warm-up call."""
    return common.interleaved_median_ms({'call': fn}, repeats,
                                        iters=1)['call'][0]


def run(args) -> tuple:
    torch.set_num_threads(args.threads)
    model = build(args.model)
    x = torch.randn(args.batch, 3, 224, 224)
    results, timings = {}, {}
    with torch.no_grad():
        for native in (True, False):
            key = 'native C kernels' if native else 'torch path'
            with labelled_kernels(native):
                model(x, mode='tensor')  # warm-up: build, caches
                results[key] = profile_once(model, x)
                repeats = args.repeats if native else 1
                timings[key] = (
                    median_ms(lambda: model(x, mode='tensor'), repeats),
                    median_ms(lambda: block_call(model, x), repeats))
    return results, timings


def block_call(model, x):
    """One call of the first encoder layer on its real input."""
    backbone = model.backbone
    layer = backbone.layers[0] if hasattr(backbone, 'layers') else \
        backbone.stages[0].blocks[0]
    inputs = getattr(block_call, 'inputs', None)
    if inputs is None or inputs[0].shape[0] != x.shape[0]:
        captured = []
        handle = layer.register_forward_pre_hook(
            lambda mod, a, kw=None: captured.append(a), with_kwargs=False)
        model(x, mode='tensor')
        handle.remove()
        inputs = captured[0]
        block_call.inputs = inputs
    return layer(*inputs)


def markdown(results: dict, timings: dict) -> str:
    columns = list(results)
    order = [PRODUCTS, PACKING] + [c for c, _ in OP_CATEGORIES] + [
        'other torch ops', PYTHON]
    lines = ['| where | ' + ' | '.join(f'{c} (ms)' for c in columns)
             + ' | share, native |',
             '|---|' + '---:|' * (len(columns) + 1)]
    native = results[columns[0]]
    total = native['total (profiled)']
    for row in order:
        if not any(results[c].get(row, 0.0) >= 0.05 for c in columns):
            continue
        cells = ' | '.join(f'{results[c].get(row, 0.0):.1f}' for c in columns)
        lines.append(f'| {row} | {cells} | '
                     f'{100 * native.get(row, 0.0) / total:.0f} % |')
    cells = ' | '.join(f'{results[c]["total (profiled)"]:.1f}'
                       for c in columns)
    lines.append(f'| **total, profiled** | {cells} | 100 % |')
    cells = ' | '.join(f'{timings[c][0]:.1f}' for c in columns)
    lines.append(f'| whole model, not profiled (median) | {cells} | |')
    cells = ' | '.join(f'{timings[c][1]:.2f}' for c in columns)
    lines.append(f'| first encoder layer alone (median) | {cells} | |')
    return '\n'.join(lines)


def machine() -> str:
    """The machine line, with the C kernels' instruction-set path."""
    from mmdidb.ops import cpu_bits
    return (f'{common.cpu_cores()}, C kernels: {cpu_bits.best_isa()}, '
            f'torch {torch.__version__}')


def main(argv=None):
    args = parse_args(argv)
    results, timings = run(args)
    table = markdown(results, timings)
    title = (f'### {args.model}, batch {args.batch}, {args.threads} '
             f'thread(s), {datetime.date.today()}')
    command = common.command_line('tools/benchmark/profile_cpu.py', argv)
    entry = '\n'.join([
        title, '', f'Command: `{command}`; machine: {machine()}.', '', table])
    print(entry)
    if not args.no_append:
        common.append_benchmark_entry(args.output, entry, HEADING)
    return entry


if __name__ == '__main__':
    main()
