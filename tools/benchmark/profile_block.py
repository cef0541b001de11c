"""Where the time of one deployed DIDB-ViT block goes (torch.profiler + events).

Builds a deployed DeiT-S (or DeiT-T) DIDB-ViT, takes its first encoder
layer and a batch of tokens, and measures one block call:

- wall time per call with CUDA events: eager, eager with the fused binary
  linear kernels, and both replayed from a CUDA graph;
- a ``torch.profiler`` breakdown of the eager call: GPU kernel time (CuPy
  kernels vs torch kernels) and launch count against CPU time spent in the
  CuPy launch wrapper (the torch/CuPy hand-over), in torch's allocation ops,
  in other torch ops, in the CUDA runtime/driver API, and the rest (Python,
  argument checks).

Prints a markdown table and writes it (``--out``), and appends it to
``docs/benchmarks.md`` under "## Deployed block profile". Needs a CUDA GPU,
CuPy and the OpenMMLab packages; without them it says so and exits 0.

Usage::

    python tools/benchmark/profile_block.py [--model deit-small]
        [--batch 64] [--dtype fp16] [--out DIR] [--no-append]
"""
import argparse
import contextlib
import copy
import datetime
import json
import sys
import time
from pathlib import Path

import torch

import common

HEADING = '## Deployed block profile (tools/benchmark/profile_block.py)'
DTYPES = {'fp16': torch.float16, 'fp32': torch.float32}
#: CPU-side API calls that launch or synchronise (CUDA runtime and driver)
API_PREFIXES = ('cuda', 'cu')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', choices=('deit-tiny', 'deit-small'),
                        default='deit-small')
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp16')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', type=Path, default=None,
                        help='folder for profile_block.md / .json')
    common.add_output_args(parser)
    return parser.parse_args(argv)


def build_block(args):
    """``(block, fused block, tokens, hw_shape)`` of a deployed model."""
    from mmengine.registry import MODELS, init_default_scope

    from mmdidb.models.deploy import switch_to_deploy
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(common.classifier_cfg(args.model, 'didb'))
    fused = copy.deepcopy(model)
    switch_to_deploy(model, fused=False)
    switch_to_deploy(fused, fused=True)
    dtype = DTYPES[args.dtype]
    block = model.backbone.layers[0].eval().to('cuda', dtype)
    fused_block = fused.backbone.layers[0].eval().to('cuda', dtype)
    grid = model.backbone.patch_resolution
    tokens = grid[0] * grid[1] + model.backbone.num_extra_tokens
    x = torch.randn(args.batch, tokens, model.backbone.embed_dims,
                    device='cuda', dtype=dtype)
    return block, fused_block, x, tuple(grid)


@contextlib.contextmanager
def labelled_launches():
    """Label every CuPy launch with a profiler range."""
    from mmdidb.ops import cuda_backend
    real = cuda_backend._launch

    def launch(*args, **kwargs):
        with torch.profiler.record_function('mmdidb::cupy_launch'):
            return real(*args, **kwargs)

    cuda_backend._launch = launch
    try:
        yield
    finally:
        cuda_backend._launch = real


def profile(block, x, hw, calls):
    """Per-call breakdown of the eager block from ``torch.profiler``."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity
    with torch.inference_mode():
        for _ in range(3):
            block(x, hw)
        torch.cuda.synchronize()
        with labelled_launches(), torch.profiler.profile(
                activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            start = time.perf_counter()
            for _ in range(calls):
                with torch.profiler.record_function('mmdidb::block'):
                    block(x, hw)
            cpu_issue = time.perf_counter() - start
            torch.cuda.synchronize()
    events = prof.key_averages()
    gpu_ours = gpu_torch = 0.0
    cpu = dict(block=0.0, launch=0.0, alloc=0.0, aten=0.0, api=0.0)
    for event in events:
        device_us = getattr(event, 'self_device_time_total', None)
        if device_us is None:
            device_us = event.self_cuda_time_total
        if device_us and event.device_type == DeviceType.CUDA:
            if event.key.startswith('mmdidb_'):
                gpu_ours += device_us
            else:
                gpu_torch += device_us
        if event.device_type != DeviceType.CPU:
            continue
        if event.key == 'mmdidb::block':
            cpu['block'] += event.cpu_time_total
        elif event.key == 'mmdidb::cupy_launch':
            cpu['launch'] += event.self_cpu_time_total
        elif event.key in ('aten::empty', 'aten::empty_strided',
                           'aten::empty_like', 'aten::zeros',
                           'aten::new_empty'):
            cpu['alloc'] += event.self_cpu_time_total
        elif event.key.startswith('aten::'):
            cpu['aten'] += event.self_cpu_time_total
        elif event.key.startswith(API_PREFIXES):
            cpu['api'] += event.self_cpu_time_total
    kernels = sum(1 for e in prof.events()
                  if e.device_type == DeviceType.CUDA)
    per = 1e-3 / calls  # us in total -> ms per call
    result = {
        'gpu kernel time': (gpu_ours + gpu_torch) * per,
        'gpu: CuPy kernels (mmdidb_*)': gpu_ours * per,
        'gpu: torch kernels': gpu_torch * per,
        'kernels per call': kernels / calls,
        'cpu: whole block call': cpu['block'] * per,
        'cpu: CuPy launch wrapper (torch->CuPy hand-over, self)':
            cpu['launch'] * per,
        'cpu: torch allocation ops': cpu['alloc'] * per,
        'cpu: other torch ops (self)': cpu['aten'] * per,
        'cpu: CUDA runtime / driver API': cpu['api'] * per,
        'cpu issue time, profiled (perf_counter)': cpu_issue * 1e3 / calls,
    }
    result['cpu: Python, checks and the rest'] = max(
        0.0, result['cpu: whole block call'] - sum(
            cpu[k] for k in ('launch', 'alloc', 'aten', 'api')) * per)
    table = prof.key_averages().table(sort_by='self_cpu_time_total',
                                      row_limit=25)
    return result, table


def wall_times(block, fused_block, x, hw, args):
    """CUDA-event ms per call: eager / fused, each without and with a graph."""
    from mmdidb.models.deploy import CUDAGraphRunner
    out = {}
    with torch.inference_mode():
        for name, module in (('eager', block), ('fused', fused_block)):
            out[name] = common.cuda_median_ms(lambda m=module: m(x, hw),
                                              args.iters, args.repeats)
            runner = CUDAGraphRunner(module.forward, module=module,
                                     strict=True, clone_outputs=False)
            out[name + ' + CUDA graph'] = common.cuda_median_ms(
                lambda r=runner: r(x, hw), args.iters, args.repeats)
            ref = module(x, hw)
            out[name + ' graph equals eager'] = bool(
                torch.equal(runner(x, hw), ref))
        out['fused equals eager'] = bool(torch.equal(fused_block(x, hw),
                                                     block(x, hw)))
    return out


def markdown(args, walls, breakdown):
    lines = ['| block call | ms |', '|---|---:|']
    for key in ('eager', 'fused', 'eager + CUDA graph',
                'fused + CUDA graph'):
        lines.append(f'| {key} | {walls[key]:.3f} |')
    lines += ['', '| eager call, torch.profiler | per call |', '|---|---:|']
    for key, value in breakdown.items():
        unit = '' if key == 'kernels per call' else ' ms'
        shown = f'{value:.0f}' if not unit else f'{value:.3f}'
        lines.append(f'| {key} | {shown}{unit} |')
    checks = (f"- bit for bit: graph == eager {walls['eager graph equals eager']}, "
              f"fused graph == fused {walls['fused graph equals eager']}, "
              f"fused == eager {walls['fused equals eager']}")
    return '\n'.join(lines), checks


def problem():
    """Why nothing can be measured here (one line), or None."""
    return common.setup_problem('profile_block.py', openmmlab=True,
                                cupy=True)


def main(argv=None):
    args = parse_args(argv)
    reason = problem()
    if reason:
        print(reason)
        return 0
    block, fused_block, x, hw = build_block(args)
    walls = wall_times(block, fused_block, x, hw, args)
    breakdown, table = profile(block, x, hw, calls=10)
    body, checks = markdown(args, walls, breakdown)
    props = torch.cuda.get_device_properties(0)
    now = datetime.datetime.now(datetime.timezone.utc)
    command = common.command_line('tools/benchmark/profile_block.py', argv)
    text = '\n'.join([
        f'### {args.model}, layer 0, batch {args.batch}, {args.dtype}, '
        f'{now:%Y-%m-%d %H:%M} UTC, {props.name}', '',
        f'- command: `{command}`',
        f'- {common.versions()}; wall times: median of {args.repeats} '
        'CUDA-event measurements of '
        f'{args.iters} calls; breakdown: torch.profiler over 10 eager calls '
        '(profiling slows the CPU side; the CPU rows are self times, the '
        'GPU rows kernel times)', checks, '', body, ''])
    print(text)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / 'profile_block.md').write_text(
            text + '\n```\n' + table + '\n```\n')
        (args.out / 'profile_block.json').write_text(json.dumps(
            dict(walls=walls, breakdown=breakdown), indent=1))
    if not args.no_append:
        common.append_benchmark_entry(args.output, text, HEADING)
        print(f'appended to {args.output}')
    ok = all(v for k, v in walls.items() if 'equals' in k)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
