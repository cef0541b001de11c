"""Inference speed and memory: deploy-mode DIDB-ViT vs FP16 mmpretrain DeiT.

Needs a CUDA GPU (and CuPy for the packed kernels); without one it says so
and exits with status 0, having measured nothing.

Models, all the same size (the config's arch, or ``--model``):

- ``DeiT FP16``: mmpretrain's ``VisionTransformer`` with the same head, in
  half precision (fused scaled-dot-product attention);
- ``DIDB-ViT deploy, FP16``: DIDB-ViT after ``switch_to_deploy``, its
  full-precision parts (patch embedding, norms, softmax, head) in half
  precision; every binary product runs on packed bits (CuPy kernels);
- ``DIDB-ViT deploy, FP32``: the same with FP32 full-precision parts;
- ``DIDB-ViT training graph, FP16``: the simulated binary model (±1 values
  in float GEMMs), for reference;
- ``... + CUDA graph``: the same model with its backbone captured into a
  CUDA graph (``switch_to_deploy(model, cuda_graph=True)``, i.e.
  :func:`mmdidb.models.deploy.enable_cuda_graph`): no Python, CuPy-launch or
  allocation overhead per kernel. The FP16 baseline gets the same treatment,
  so the comparison stays fair; ``fused`` adds the fused binary linear
  kernels (``switch_to_deploy(model, fused=True)``). Before timing, the
  captured deployed model's logits are checked equal, bit for bit, to the
  eager deployed model's (``--cuda-graph off`` leaves these rows out). On
  an sm_90 GPU a last row runs the fused graph with every binary product on
  Hopper's wgmma kernels (``MMDIDB_OPS_BACKEND=wgmma``).

A time is the median over ``--repeats`` CUDA-event measurements of
``--iters`` back-to-back forward passes after warm-up; images/s is the batch
divided by it. Peak memory is ``torch.cuda.max_memory_allocated`` over one
forward pass, weights included. Before timing, the deployed FP32 model's
logits are compared with the training graph's (TF32 off).

Prints a markdown table and appends it, with the GPU, date and command, to
``docs/benchmarks.md`` under "## Inference (tools/benchmark/inference.py)".

Usage::

    python tools/benchmark/inference.py [CONFIG] [--model deit-small]
        [--quick] [--batches 1 64 256] [--no-append]
"""
import argparse
import contextlib
import copy
import datetime
import os
import sys

import torch

import common

HEADING = '## Inference (tools/benchmark/inference.py)'
#: Row label of the full-precision model every speed is compared with.
BASELINE = 'FP16 baseline'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?',
                        help='a DIDB-ViT classification config')
    parser.add_argument('--model', choices=common.ARCHS,
                        help='the paper\'s ImageNet classifier of this arch '
                        '(default deit-small when no config is given)')
    parser.add_argument('--quick', action='store_true',
                        help='batches 1 and 64, fewer repeats')
    parser.add_argument('--batches', type=int, nargs='+', default=None)
    parser.add_argument('--repeats', type=int, default=None)
    parser.add_argument('--iters', type=int, default=None)
    common.add_output_args(parser)
    parser.add_argument('--cuda-graph', choices=('on', 'off', 'only'),
                        default='on',
                        help='add CUDA-graph rows (on, default), none (off), '
                        'or time the CUDA-graph and FP16 rows only (only)')
    args = parser.parse_args(argv)
    if args.config and args.model:
        parser.error('give a CONFIG or --model, not both')
    if not args.config and not args.model:
        args.model = 'deit-small'
    common.gpu_timing_defaults(args)
    return args


def model_cfgs(args):
    """``(title, DIDB-ViT classifier cfg, FP DeiT classifier cfg, input)``."""
    if args.model:
        return (args.model, common.classifier_cfg(args.model, 'didb'),
                common.classifier_cfg(args.model, 'fp'), (3, 224, 224))
    from mmdidb.apis import load_config
    cfg = load_config(args.config)
    didb = copy.deepcopy(cfg.model)
    backbone = didb['backbone']
    if 'DIDBViT' not in backbone['type']:
        sys.exit(f'{args.config}: the backbone is {backbone["type"]}, not '
                 'DIDBViT')
    from mmdidb.models import DIDBViT
    arch = backbone.get('arch', 'deit-small')
    arch = DIDBViT.arch_zoo[arch] if isinstance(arch, str) else arch
    keep = ('img_size', 'patch_size', 'in_channels', 'out_type',
            'with_cls_token', 'qkv_bias', 'final_norm')
    fp = copy.deepcopy(didb)
    fp['backbone'] = dict(type='VisionTransformer', arch=dict(arch),
                          **{k: backbone[k] for k in keep if k in backbone})
    size = backbone.get('img_size', 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return (args.config, didb, fp,
            (backbone.get('in_channels', 3), ) + size)


def build(cfg, dtype, deploy=False, graph=False, fused=False):
    from mmengine.registry import MODELS, init_default_scope

    from mmdidb.models.deploy import enable_cuda_graph, switch_to_deploy
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg))
    if deploy:
        switch_to_deploy(model, fused=fused)
    model.eval()
    model = model.to(device='cuda', dtype=dtype)
    if graph:
        # strict: a capture that fails must fail the benchmark, not time
        # the eager fallback under a CUDA-graph label
        enable_cuda_graph(model, strict=True)
    return model


@torch.inference_mode()
def measure(model, shape, batch, dtype, args, autocast=False):
    """``(ms per batch, images/s, peak MiB)``, or None when out of memory.

    ``autocast`` runs the FP16 model under ``torch.autocast`` too, for
    what it builds in FP32 on the fly (mmpretrain's Swin adds an FP32
    window mask to FP16 logits).
    """
    x = torch.randn(batch, *shape, device='cuda', dtype=dtype)

    # no autocast weight cache: it cannot live inside a captured graph
    context = torch.autocast('cuda', dtype=dtype,
                             enabled=autocast and dtype == torch.float16,
                             cache_enabled=False)

    def forward():
        with context:
            return model(x, mode='tensor')

    try:
        forward()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        forward()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
        ms = common.cuda_median_ms(forward, args.iters, args.repeats)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None
    return ms, batch / ms * 1e3, peak


@torch.inference_mode()
def check_deploy(didb_cfg, shape):
    """Largest |logit| difference, deployed vs training graph, FP32."""
    torch.manual_seed(0)
    train = build(didb_cfg, torch.float32)
    deploy = copy.deepcopy(train)
    from mmdidb.models.deploy import switch_to_deploy
    switch_to_deploy(deploy)
    x = torch.randn(2, *shape, device='cuda')
    ref, out = train(x, mode='tensor'), deploy(x, mode='tensor')
    return (out - ref).abs().max().item(), ref.abs().max().item()


def wgmma_usable() -> bool:
    """Whether Hopper's wgmma b1 kernels run here (sm_90, nvcc, CuPy)."""
    if torch.cuda.get_device_capability() != (9, 0):
        return False
    from mmdidb.ops import wgmma
    reason = wgmma.unusable_reason(torch.device('cuda'))
    if reason is not None:
        print(f'wgmma rows skipped: {reason}')
    return reason is None


@contextlib.contextmanager
def ops_backend(name):
    """Set ``MMDIDB_OPS_BACKEND`` for the block (None: leave it)."""
    if name is None:
        yield
        return
    saved = os.environ.get('MMDIDB_OPS_BACKEND')
    os.environ['MMDIDB_OPS_BACKEND'] = name
    try:
        yield
    finally:
        if saved is None:
            del os.environ['MMDIDB_OPS_BACKEND']
        else:
            os.environ['MMDIDB_OPS_BACKEND'] = saved


@torch.inference_mode()
def check_graph(didb_cfg, shape, batches):
    """Whether the captured deployed models equal the eager one bit for bit.

    Returns:
        str: e.g. 'yes (FP16 plain and fused, batches 1, 64)', or what
        differed.
    """
    eager = build(didb_cfg, torch.float16, deploy=True)
    problems = []
    for fused in (False, True):
        graph = build(didb_cfg, torch.float16, deploy=True, graph=True,
                      fused=fused)
        for batch in batches:
            x = torch.randn(batch, *shape, device='cuda', dtype=torch.float16)
            graph(x, mode='tensor')  # capture
            x.copy_(torch.randn_like(x))
            ref = eager(x, mode='tensor')
            out = graph(x, mode='tensor')  # replay on new values
            if not torch.equal(out, ref):
                problems.append(f'{"fused" if fused else "plain"} batch '
                                f'{batch}: max diff '
                                f'{(out - ref).abs().max().item():.3g}')
            from mmdidb.models.deploy import graph_runner
            graph_runner(graph).reset()
        del graph
    del eager
    torch.cuda.empty_cache()
    if problems:
        return 'NO: ' + '; '.join(problems)
    return ('yes (FP16, plain and fused, batches '
            + ', '.join(map(str, batches)) + ')')


def run(args):
    title, didb_cfg, fp_cfg, shape = model_cfgs(args)
    # exact FP32 products for the check (cuDNN would use TF32 by default)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    diff, scale = check_deploy(didb_cfg, shape)
    print(f'check: deployed vs training-graph logits, FP32: max diff '
          f'{diff:.3g} (logits up to {scale:.3g})')
    graph_ok = None
    if args.cuda_graph != 'off':
        graph_ok = check_graph(didb_cfg, shape, args.batches)
        print(f'check: CUDA graph vs eager deployed logits identical: '
              f'{graph_ok}', flush=True)
    half, full = torch.float16, torch.float32
    baseline = f'{BASELINE} ({fp_cfg["backbone"]["type"]})'
    # (name, cfg, dtype, deploy, graph, fused)
    eager_rows = [(baseline, fp_cfg, half, False, False, False),
                  ('DIDB-ViT deploy, FP16', didb_cfg, half, True, False,
                   False),
                  ('DIDB-ViT deploy, FP32', didb_cfg, full, True, False,
                   False),
                  ('DIDB-ViT training graph, FP16', didb_cfg, half, False,
                   False, False)]
    graph_rows = [(baseline + ' + CUDA graph', fp_cfg, half, False, True,
                   False),
                  ('DIDB-ViT deploy, FP16 + CUDA graph', didb_cfg, half,
                   True, True, False),
                  ('DIDB-ViT deploy fused, FP16 + CUDA graph', didb_cfg,
                   half, True, True, True),
                  ('DIDB-ViT deploy fused, FP32 + CUDA graph', didb_cfg,
                   full, True, True, True)]
    if wgmma_usable():
        # Hopper: the same fused graph with every binary product on wgmma
        graph_rows.append(('DIDB-ViT deploy fused, FP16 + CUDA graph, wgmma',
                           didb_cfg, half, True, True, True))
    if args.cuda_graph == 'off':
        models = eager_rows
    elif args.cuda_graph == 'only':
        models = eager_rows[:1] + graph_rows
    else:
        models = eager_rows + graph_rows
    rows = []
    for name, cfg, dtype, deploy, graph, fused in models:
        products = 'wgmma' if name.endswith(', wgmma') else None
        with ops_backend(products):
            model = build(cfg, dtype, deploy, graph, fused)
        for batch in args.batches:
            try:
                with ops_backend(products):
                    result = measure(model, shape, batch, dtype, args,
                                     autocast=name.startswith(baseline))
            except Exception as err:  # noqa: BLE001  (a failed capture)
                if not graph:
                    raise
                text = ' '.join(str(err).split())[:200]
                print(f'{name}, batch {batch}: FAILED {type(err).__name__}: '
                      f'{text}', flush=True)
                result = 'failed'
            rows.append((name, batch, result))
            if result == 'failed':
                continue
            shown = 'out of memory' if result is None else (
                f'{result[0]:.2f} ms, {result[1]:,.0f} img/s, '
                f'{result[2]:,.0f} MiB')
            print(f'{name}, batch {batch}: {shown}', flush=True)
        del model
        torch.cuda.empty_cache()
    return title, shape, rows, (diff, scale), graph_ok


def markdown(rows) -> str:
    # the eager FP16 baseline (not its CUDA-graph row)
    base = {batch: r for name, batch, r in rows
            if name.startswith(BASELINE) and 'CUDA graph' not in name
            and r not in (None, 'failed')}
    lines = ['| model | batch | ms / batch | images/s | vs FP16 baseline | '
             'peak memory (MiB) |', '|---|---:|---:|---:|---:|---:|']
    for name, batch, result in rows:
        if result is None or result == 'failed':
            shown = 'OOM' if result is None else 'capture failed'
            lines.append(f'| {name} | {batch} | {shown} | | | |')
            continue
        ms, ips, peak = result
        speed = f'{ips / base[batch][1]:.2f}x' if batch in base else ''
        lines.append(f'| {name} | {batch} | {ms:.2f} | {ips:,.0f} | {speed} '
                     f'| {peak:,.0f} |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    problem = common.setup_problem('inference.py', openmmlab=True, cupy=True)
    if problem is not None:
        print(problem)
        return 0
    os.environ.setdefault('MMDIDB_OPS_STRICT', '1')
    title, shape, rows, (diff, scale), graph_ok = run(args)
    table = markdown(rows)
    props = torch.cuda.get_device_properties(0)
    now = datetime.datetime.now(datetime.timezone.utc)
    command = common.command_line('tools/benchmark/inference.py', argv)
    text = '\n'.join([
        f'### {title}, input {"x".join(map(str, shape))}, '
        f'{now:%Y-%m-%d %H:%M} UTC, {props.name}', '',
        f'- command: `{command}`',
        f'- {common.versions(cupy=True)}; median of {args.repeats} CUDA-event '
        f'measurements of {args.iters} forward passes after 3 warm-up '
        'passes; peak memory over one pass, weights included',
        f'- deployed vs training-graph logits (FP32, TF32 off): max '
        f'difference {diff:.3g}, logits up to {scale:.3g}'] + (
            [f'- CUDA graph vs eager deployed logits identical: {graph_ok}']
            if graph_ok is not None else []) + ['', table, ''])
    print()
    print(text)
    if not args.no_append:
        common.append_benchmark_entry(args.output, text, HEADING)
        print(f'appended to {args.output}')
    failed = any(r == 'failed' for *_, r in rows)
    return 1 if failed or (graph_ok or '').startswith('NO') else 0


if __name__ == '__main__':
    sys.exit(main())
