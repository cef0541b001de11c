"""Benchmark the binary GEMM kernels of mmdidb.ops against cuBLAS.

Shapes are those of DeiT-Tiny (d=192, 3 heads) and DeiT-Small (d=384,
6 heads) at 197 tokens: the four linear layers (K x N = d x 3d, d x d,
d x 4d, 4d x d, M = batch * 197 rows, weights pre-packed) and the two
attention products per head (Q.K^T: 197 x 197 with K = head_dim = 64;
mask.V: 197 x 64 with K = 197), batched over batch * heads.

Each product is timed as torch FP32 and FP16 (cuBLAS; TF32 off), and as
``bmm_pm1`` / ``bmm_mask_pm1`` on the tensor-core (``mma``) and CUDA-core
(``popc``) paths, without and with the cost of packing the activations.
A time is the median over ``--repeats`` CUDA-event measurements of
``--iters`` back-to-back calls after a warm-up; it is the cost of a Python
call (validation and launch included), so tiny shapes are launch-bound for
every column. Each binary result is also checked against the float product
of the +-1 tensors ("exact").

Prints a markdown table and appends it, with the GPU, date and command, to
``docs/benchmarks.md`` under "## Binary GEMM (tools/benchmark/bgemm.py)".

``--device cpu`` times mmdidb's native CPU kernels against torch FP32
instead, at the DeiT-Small batch-1 shapes, per thread count and
instruction-set path, with the binary MACs per cycle they reach (see
``bgemm_cpu.py``); its entry goes under "## CPU binary GEMM
(tools/benchmark/bgemm.py --device cpu)".

Usage: ``python tools/benchmark/bgemm.py [--quick] [--no-append]``,
``python tools/benchmark/bgemm.py --device cpu [--threads 1 2] [--quick]
[--no-append]``.
"""
import argparse
import datetime
import os
import sys

import torch
import torch.nn.functional as F

import bgemm_cpu
import common
from common import DEIT_WIDTHS, HEAD_DIM, TOKENS

HEADING = '## Binary GEMM (tools/benchmark/bgemm.py)'


def parse_args(argv=None):
    """Command-line options.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The parsed namespace.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=('cuda', 'cpu'), default='cuda',
                        help='cpu: the native CPU kernels against torch FP32 '
                        '(default cuda)')
    parser.add_argument('--quick', action='store_true',
                        help='batches 1 and 64, fewer repeats (~1 minute); '
                        'on the CPU: fewer and shorter samples')
    parser.add_argument('--batches', type=int, nargs='+', default=None,
                        help='batch sizes (default 1 64 256; 1 on the CPU)')
    parser.add_argument('--models', nargs='+', choices=sorted(DEIT_WIDTHS),
                        default=None,
                        help='default: both on the GPU, DeiT-Small on the '
                        'CPU')
    parser.add_argument('--repeats', type=int, default=None,
                        help='timed measurements per entry (median taken)')
    parser.add_argument('--iters', type=int, default=None,
                        help='calls per measurement (on the CPU: default '
                        'enough for --min-sample-s)')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2],
                        help='CPU: thread counts (default 1 2)')
    parser.add_argument('--isas', nargs='+',
                        choices=('avx512', 'avx2', 'portable'), default=None,
                        help='CPU: instruction-set paths (default: every one '
                        'the CPU runs)')
    parser.add_argument('--min-sample-s', type=float, default=None,
                        help='CPU: shortest sample in seconds (default 0.1, '
                        '0.02 with --quick)')
    common.add_output_args(parser)
    parser.add_argument('--hopper', choices=('auto', 'on', 'off', 'only'),
                        default='auto',
                        help='the mma.sync b1 vs wgmma b1 vs cuBLAS FP16 '
                        'microbenchmark (kernel times, CUDA-graph replays): '
                        'auto = on sm_90 GPUs; only = nothing else')
    args = parser.parse_args(argv)
    if args.device == 'cpu':
        if args.models is None:
            args.models = ['DeiT-Small']
        if args.batches is None:
            args.batches = [1]
        if args.repeats is None:
            args.repeats = 3 if args.quick else 7
        if args.min_sample_s is None:
            args.min_sample_s = 0.02 if args.quick else 0.1
        return args
    if args.models is None:
        args.models = list(DEIT_WIDTHS)
    common.gpu_timing_defaults(args)
    return args


def pm1(x):
    """+-1 tensor of the packing convention (sign(0) = +1)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def linear_case(d, k_mult, n_mult, batch, paths):
    """Build the callables of one linear-layer shape.

    Args:
        d: Embedding width of the model.
        k_mult: K = k_mult * d.
        n_mult: N = n_mult * d.
        batch: Images per batch (M = batch * 197).
        paths: Binary kernel paths to time.

    Returns:
        ``(shape dict, {column: callable}, exact: bool)``.
    """
    from mmdidb.ops import bmm_pm1, bmm_pm1_scaled, pack_shifted_signs, pack_signs
    m, k, n = batch * TOKENS, k_mult * d, n_mult * d
    x32 = torch.randn(m, k, device='cuda')
    w32 = torch.randn(n, k, device='cuda')
    x16, w16 = x32.half(), w32.half()
    wp = pack_signs(w32)  # weights are packed once, offline
    xp = pack_signs(x32)
    beta = torch.randn(k, device='cuda') * 0.1
    scale = torch.rand(n, device='cuda')
    bias = torch.randn(n, device='cuda')

    def layer():
        # the deployed BinaryLinear unfused: RSign, pack, GEMM, scale, bias
        bits = pack_signs(((x32 + beta) >= 0).float() * 2 - 1)
        return bmm_pm1(bits, wp, k).float() * scale + bias

    def layer_fused():
        return bmm_pm1_scaled(pack_shifted_signs(x32, beta), wp, k, scale,
                              bias)

    calls = {
        'fp32': lambda: F.linear(x32, w32),
        'fp16': lambda: F.linear(x16, w16),
        'pack': lambda: pack_signs(x32),
        'layer': layer,
        'layer fused': layer_fused,
    }
    exact = F.linear(pm1(x32), pm1(w32)).to(torch.int32)
    ok = True
    for path in paths:
        calls[path] = lambda p=path: bmm_pm1(xp, wp, k, backend=p)
        calls[path + '+pack'] = (
            lambda p=path: bmm_pm1(pack_signs(x32), wp, k, backend=p))
        ok &= torch.equal(bmm_pm1(xp, wp, k, backend=path), exact)
    ok &= torch.equal(layer(), layer_fused())
    shape = {'batch': batch, 'count': 1, 'M': m, 'K': k, 'N': n}
    return shape, calls, ok


def attention_cases(heads, batch, paths):
    """Build the callables of Q.K^T and mask.V for one model and batch.

    Args:
        heads: Number of attention heads.
        batch: Images per batch.
        paths: Binary kernel paths to time.

    Returns:
        Two ``(name, shape dict, {column: callable}, exact)`` tuples.
    """
    from mmdidb.ops import bmm_mask_pm1, bmm_pm1, pack_mask, pack_signs
    count = batch * heads
    q32 = torch.randn(count, TOKENS, HEAD_DIM, device='cuda')
    k32 = torch.randn(count, TOKENS, HEAD_DIM, device='cuda')
    v32 = torch.randn(count, TOKENS, HEAD_DIM, device='cuda')
    a32 = (torch.rand(count, TOKENS, TOKENS, device='cuda') < 0.3).float()
    q16, k16, v16, a16 = q32.half(), k32.half(), v32.half(), a32.half()
    qp, kp = pack_signs(q32), pack_signs(k32)
    ap, vp = pack_mask(a32), pack_signs(v32, dim=-2)

    qk = {
        'fp32': lambda: torch.matmul(q32, k32.transpose(-1, -2)),
        'fp16': lambda: torch.matmul(q16, k16.transpose(-1, -2)),
        'pack': lambda: (pack_signs(q32), pack_signs(k32)),
    }
    av = {
        'fp32': lambda: torch.matmul(a32, v32),
        'fp16': lambda: torch.matmul(a16, v16),
        'pack': lambda: (pack_mask(a32), pack_signs(v32, dim=-2)),
    }
    qk_exact = torch.matmul(pm1(q32), pm1(k32).transpose(-1, -2)).int()
    av_exact = torch.matmul(a32, pm1(v32)).int()
    qk_ok = av_ok = True
    for path in paths:
        qk[path] = lambda p=path: bmm_pm1(qp, kp, HEAD_DIM, backend=p)
        qk[path + '+pack'] = lambda p=path: bmm_pm1(
            pack_signs(q32), pack_signs(k32), HEAD_DIM, backend=p)
        av[path] = lambda p=path: bmm_mask_pm1(ap, vp, TOKENS, backend=p)
        av[path + '+pack'] = lambda p=path: bmm_mask_pm1(
            pack_mask(a32), pack_signs(v32, dim=-2), TOKENS, backend=p)
        qk_ok &= torch.equal(bmm_pm1(qp, kp, HEAD_DIM, backend=path),
                             qk_exact)
        av_ok &= torch.equal(bmm_mask_pm1(ap, vp, TOKENS, backend=path),
                             av_exact)
    qk_shape = {'batch': batch, 'count': count, 'M': TOKENS, 'K': HEAD_DIM,
                'N': TOKENS}
    av_shape = {'batch': batch, 'count': count, 'M': TOKENS, 'K': TOKENS,
                'N': HEAD_DIM}
    return [('Q.K^T', qk_shape, qk, qk_ok), ('mask.V', av_shape, av, av_ok)]


def run(args, paths):
    """Measure every case.

    Args:
        args: Parsed options.
        paths: Binary kernel paths to time.

    Returns:
        List of result rows (dicts).
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for model in args.models:
        d = DEIT_WIDTHS[model]
        heads = d // HEAD_DIM
        for batch in args.batches:
            cases = []
            for name, k_mult, n_mult in (('qkv', 1, 3), ('proj', 1, 1),
                                         ('fc1', 1, 4), ('fc2', 4, 1)):
                shape, calls, ok = linear_case(d, k_mult, n_mult, batch, paths)
                cases.append((name, shape, calls, ok))
            cases += attention_cases(heads, batch, paths)
            for name, shape, calls, ok in cases:
                row = dict(model=model, layer=name, exact=ok, **shape)
                for column, fn in calls.items():
                    row[column] = common.cuda_median_ms(fn, args.iters,
                                                        args.repeats)
                rows.append(row)
                print(f'{model:10s} b={batch:<4d} {name:7s} ' + ' '.join(
                    f'{c}={row[c]:.4f}' for c in calls), flush=True)
                del calls
            del cases
            torch.cuda.empty_cache()
    return rows


HOPPER_HEADING = ('### Hopper 1-bit tensor cores: mma.sync vs wgmma '
                  '(tools/benchmark/bgemm.py --hopper)')
#: (name, M, K, N): DeiT-S layers at batch 64 and 256, and a large square
HOPPER_SHAPES = (('DeiT-S fc1, batch 64', 12608, 384, 1536),
                 ('DeiT-S fc2, batch 64', 12608, 1536, 384),
                 ('DeiT-S fc1, batch 256', 50432, 384, 1536),
                 ('square 8192', 8192, 8192, 8192))


def graph_ms(fn, iters, repeats):
    """Kernel time of ``fn`` in ms: ``iters`` calls captured in one CUDA
    graph, replayed ``repeats`` times (median), so no Python or launch
    overhead is counted."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    with torch.cuda.graph(graph):
        for _ in range(iters):
            fn()
    return common.cuda_median_ms(graph.replay, 1, repeats, warmup=1) / iters


def wgmma_layout_probe():
    """Which descriptor offsets make one 64x128x256 tile exact.

    Returns:
        dict: ``'LBO=128,SBO=256'`` (the layout bmm_wgmma.cu documents) and
        the swapped offsets -> True when exact.
    """
    from mmdidb.ops import pack_signs, wgmma
    torch.manual_seed(0)
    x = torch.randn(64, 256, device='cuda')
    w = torch.randn(128, 256, device='cuda')
    exact = (pm1(x) @ pm1(w).T).to(torch.int32)
    result = {}
    for lbo, sbo in ((wgmma.LBO, wgmma.SBO), (wgmma.SBO, wgmma.LBO)):
        out = wgmma.bmm_pm1_wgmma(pack_signs(x), pack_signs(w), 256,
                                  lbo=lbo, sbo=sbo)
        torch.cuda.synchronize()
        result[f'LBO={lbo},SBO={sbo}'] = bool(torch.equal(out, exact))
    return result


def hopper_benchmark(args):
    """mma.sync b1 vs wgmma b1 vs cuBLAS FP16 kernel times.

    FP16 and mma are measured first for every shape, then the wgmma layout
    probe and the wgmma column: a fault in the new kernel (a sticky CUDA
    error) cannot lose the other numbers, which are printed as they come.

    Returns:
        ``(rows, probe, reason)``: rows of dicts, the layout probe, and why
        wgmma could not run (None when it ran).
    """
    from mmdidb.ops import bmm_pm1, pack_signs, wgmma
    rows, operands = [], []
    for name, m, k, n in HOPPER_SHAPES:
        gen = torch.Generator(device='cuda').manual_seed(m + k + n)
        x = torch.randn(m, k, device='cuda', generator=gen)
        w = torch.randn(n, k, device='cuda', generator=gen)
        xp, wp = pack_signs(x), pack_signs(w)
        x16, w16 = x.half(), w.half()
        row = dict(name=name, M=m, K=k, N=n, exact=True)
        if m * n * k <= 12608 * 1536 * 1536:  # FP16 output exact below 2048
            row['exact'] = bool(torch.equal(
                bmm_pm1(xp, wp, k, backend='mma'),
                F.linear(pm1(x16), pm1(w16)).float().to(torch.int32)))
        iters = 5 if m * n * k > 1e11 else 20
        row['fp16'] = graph_ms(lambda: F.linear(x16, w16), iters,
                               args.repeats)
        row['mma'] = graph_ms(lambda: bmm_pm1(xp, wp, k, backend='mma'),
                              iters, args.repeats)
        print(f"hopper {name}: fp16={row['fp16']:.4f} ms "
              f"mma={row['mma']:.4f} ms exact={row['exact']}", flush=True)
        rows.append(row)
        operands.append((xp, wp, k, iters))
    reason = wgmma.unusable_reason(torch.device('cuda'))
    probe = {}
    if reason is None:
        probe = wgmma_layout_probe()
        print(f'hopper wgmma layout probe: {probe}', flush=True)
        for row, (xp, wp, k, iters) in zip(rows, operands):
            ref = bmm_pm1(xp, wp, k, backend='mma')
            row['exact'] &= bool(torch.equal(wgmma.bmm_pm1_wgmma(xp, wp, k),
                                              ref))
            row['wgmma'] = graph_ms(
                lambda a=xp, b=wp, kk=k: wgmma.bmm_pm1_wgmma(a, b, kk),
                iters, args.repeats)
            print(f"hopper {row['name']}: wgmma={row['wgmma']:.4f} ms "
                  f"exact={row['exact']}", flush=True)
    else:
        print(f'hopper: wgmma unusable: {reason}', flush=True)
    torch.cuda.empty_cache()
    return rows, probe, reason


def hopper_markdown(rows, probe, reason):
    """The microbenchmark's table and its notes."""
    lines = []
    if reason is not None:
        lines.append(f'- wgmma did not run: {reason}')
    if probe:
        lines.append('- descriptor layout probe (one 64x128x256 tile exact?): '
                     + ', '.join(f'{k}: {"yes" if v else "NO"}'
                                 for k, v in probe.items()))
    head = ['shape', 'M', 'K', 'N', 'fp16 ms', 'mma ms', 'wgmma ms',
            'fp16 TFLOPS', 'mma TOPS', 'wgmma TOPS', 'wgmma vs mma',
            'wgmma vs fp16', 'exact']
    lines += ['', '| ' + ' | '.join(head) + ' |',
              '|' + '|'.join(['---'] * len(head)) + '|']
    for row in rows:
        ops = 2.0 * row['M'] * row['N'] * row['K']

        def rate(col):
            return f'{ops / (row[col] * 1e-3) / 1e12:,.0f}' if col in row \
                else ''

        has = 'wgmma' in row
        lines.append('| ' + ' | '.join([
            row['name'], str(row['M']), str(row['K']), str(row['N']),
            f"{row['fp16']:.4f}", f"{row['mma']:.4f}",
            f"{row['wgmma']:.4f}" if has else '',
            rate('fp16'), rate('mma'), rate('wgmma'),
            f"{row['mma'] / row['wgmma']:.2f}x" if has else '',
            f"{row['fp16'] / row['wgmma']:.2f}x" if has else '',
            'yes' if row['exact'] else '**NO**']) + ' |')
    return '\n'.join(lines)


def markdown(rows, paths):
    """Render the rows as a markdown table.

    Args:
        rows: Result rows from :func:`run`.
        paths: Binary kernel paths that were timed.

    Returns:
        The table text.
    """
    columns = ['fp32', 'fp16', 'pack']
    for path in paths:
        columns += [path, path + '+pack']
    columns += ['layer', 'layer fused']
    best = paths[0]
    head = (['model', 'layer', 'batch', 'matrices', 'M', 'K', 'N'] +
            [f'{c} ms' for c in columns] +
            [f'{best}+pack vs fp16', f'{best} TOPS (1-bit)', 'exact'])
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '|'.join(['---'] * len(head)) + '|']
    for row in rows:
        ops = 2.0 * row['count'] * row['M'] * row['N'] * row['K']
        cells = [row['model'], row['layer'], str(row['batch']),
                 str(row['count']), str(row['M']), str(row['K']),
                 str(row['N'])]
        cells += [f'{row[c]:.4f}' if c in row else '' for c in columns]
        cells.append(f"{row['fp16'] / row[best + '+pack']:.2f}x")
        cells.append(f"{ops / (row[best] * 1e-3) / 1e12:.1f}")
        cells.append('yes' if row['exact'] else '**NO**')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def append_report(path, table, args, paths, title=None):
    """Append the table with its context under the benchmark heading.

    Args:
        path: Markdown file (created if missing).
        table: Table text.
        args: Parsed options.
        paths: Binary kernel paths that were timed.
        title: Subheading of the Hopper microbenchmark (its own notes).
    """
    props = torch.cuda.get_device_properties(0)
    command = common.command_line('tools/benchmark/bgemm.py')
    now = datetime.datetime.now(datetime.timezone.utc)
    if title:
        notes = (f'- kernel time per call: median over {args.repeats} '
                 'replays of a CUDA graph of 5-20 back-to-back calls (no '
                 'Python or launch overhead); operands pre-packed; FP16 is '
                 'cuBLAS (F.linear), mma the mma.sync m16n8k256 b1 kernel, '
                 'wgmma the sm_90a m64n128k256 b1 kernel; 1-bit TOPS count '
                 '2*M*N*K; "exact": wgmma equals mma, and mma equals the FP16 '
                 'product of the +-1 values')
    else:
        notes = (f'- median of {args.repeats} CUDA-event measurements of '
                 f'{args.iters} back-to-back calls after 3 warm-up calls, in '
                 'ms per call (Python call included); FP32 without TF32; '
                 '"+pack" adds packing the activations (weights pre-packed); '
                 '"pack" is the packing alone; "layer" is a whole deployed '
                 'binary linear layer (RSign shift, pack, GEMM, scale, bias) '
                 'as separate ops, "layer fused" the same with the fused '
                 'kernels (pack_shifted_signs + bmm_pm1_scaled), checked '
                 'equal bit for bit')
    block = [
        f'### {now:%Y-%m-%d %H:%M} UTC, {props.name} '
        f'(sm_{props.major}{props.minor}, {props.multi_processor_count} SMs)'
        + (f' - {title[4:]}' if title else ''),
        '',
        f'- command: `{command}`',
        f'- {common.versions(cupy=True)}; paths timed: {", ".join(paths)}',
        notes,
        '',
        table,
        '',
    ]
    common.append_benchmark_entry(path, '\n'.join(block), HEADING)
    print(f'appended to {path}')


def main(argv=None):
    """Entry point.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit status: 1 when a binary result was not exact.
    """
    args = parse_args(argv)
    if args.device == 'cpu':
        return bgemm_cpu.main(args, argv)
    problem = common.setup_problem('bgemm.py', cupy=True)
    if problem is not None:
        sys.exit(problem)
    major, minor = torch.cuda.get_device_capability()
    paths = ['mma', 'popc'] if major >= 8 else ['popc']
    os.environ.setdefault('MMDIDB_OPS_STRICT', '1')
    hopper = args.hopper in ('on', 'only') or (
        args.hopper == 'auto' and (major, minor) == (9, 0))
    ok = True
    if hopper:
        if major < 8:
            sys.exit('--hopper needs an sm_80+ GPU (the mma.sync b1 path)')
        h_rows, probe, reason = hopper_benchmark(args)
        h_table = hopper_markdown(h_rows, probe, reason)
        print()
        print(h_table)
        ok &= all(row['exact'] for row in h_rows) and all(probe.values())
        if not args.no_append:
            append_report(args.output, h_table, args, paths,
                          title=HOPPER_HEADING)
    if args.hopper != 'only':
        rows = run(args, paths)
        table = markdown(rows, paths)
        print()
        print(table)
        ok &= all(row['exact'] for row in rows)
        if not args.no_append:
            append_report(args.output, table, args, paths)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
