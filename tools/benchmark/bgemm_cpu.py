"""The CPU part of ``tools/benchmark/bgemm.py`` (``--device cpu``).

A module of that tool, not a script: ``bgemm.py`` parses the command line
and calls :func:`main`.

The binary products of mmdidb's native CPU kernels against torch FP32 at
the shapes of one DeiT-Small image (``--batches 1``; 197 tokens, 6 heads):
the four linear layers (M = batch * 197 rows: 384 -> 1152, 384 -> 384,
384 -> 1536 and 1536 -> 384) and the two attention products per head
(Q.K^T: 197 x 197 with K = head_dim = 64; mask.V: 197 x 64 with K = 197),
at each thread count (``--threads``) and on each instruction-set path the
CPU runs (``--isas``: avx512, avx2, portable).

Columns:

- FP32: torch's float product at the same thread count (``F.linear(x, w,
  b)`` for the linears, ``torch.matmul`` for attention);
- binary: the integer product alone, operands pre-packed (``bmm_pm1``,
  ``bmm_mask_pm1``);
- binary + packing: what a deployed layer runs, from float activations:
  ``bmm_pm1_scaled(pack_shifted_signs(x, shift), w_packed, k, scale,
  bias)`` for the linears (RSign, packing, GEMM, scale and bias; the weights
  packed once, offline), ``bmm_pm1`` of the two shifted-sign packings for
  Q.K^T, ``bmm_mask_pm1(pack_mask(a), pack_signs(v, dim=-2))`` for mask.V;
- MAC/cycle per core: multiply-accumulates (1-bit for the binary columns)
  per clock cycle and thread, at the clock /proc/cpuinfo reports ("cpu
  MHz"), against the estimated limits of one core (see ``LIMITS``).

Every entry is timed in one interleaved run (each repeat takes one sample
of every entry in turn; median of the samples), and every binary result is
checked, bit for bit, against mmdidb's torch reference path ("exact").
"""
import datetime
import os
import sys

import torch
import torch.nn.functional as F

import common
from common import DEIT_WIDTHS, HEAD_DIM, TOKENS

HEADING = '## CPU binary GEMM (tools/benchmark/bgemm.py --device cpu)'
#: Estimated binary MAC per cycle and core of each path, and their source.
LIMITS = {'avx2': 128, 'portable': 85}
LIMITS_TEXT = ('estimated limits of one Zen 3 core (LLVM\'s Znver3 '
               'scheduling model): avx2 nibble-lookup popcount ~128 binary '
               'MAC/cycle, scalar XOR+POPCNT ~85 (the portable path, when '
               'the compiler emits POPCNT), FP32 FMA 16 MAC/cycle; none '
               'estimated for avx512')


def cpu_mhz():
    """The clock /proc/cpuinfo reports ("cpu MHz"), or None."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('cpu MHz'):
                    return float(line.split(':', 1)[1])
    except (OSError, ValueError):
        pass
    return None


def linear_case(d, k_mult, n_mult, batch):
    """Operands and callables of one linear layer.

    Args:
        d: Embedding width of the model.
        k_mult: K = k_mult * d.
        n_mult: N = n_mult * d.
        batch: Images (M = batch * 197).

    Returns:
        ``(shape dict, {column: callable}, exact)``: ``exact()`` compares
        both binary columns, on the path selected, with the torch reference
        path.
    """
    from mmdidb.ops import bmm_pm1, bmm_pm1_scaled, pack_shifted_signs, pack_signs
    gen = torch.Generator().manual_seed(d * k_mult + n_mult)
    m, k, n = batch * TOKENS, k_mult * d, n_mult * d
    x = torch.randn(m, k, generator=gen)
    w = torch.randn(n, k, generator=gen)
    bias = torch.randn(n, generator=gen)
    shift = torch.randn(k, generator=gen) * 0.1
    scale = torch.rand(n, generator=gen)
    wp = pack_signs(w)  # the weights are packed once, offline
    xp = pack_signs(x + shift)

    def layer(backend=None):
        return bmm_pm1_scaled(pack_shifted_signs(x, shift, backend=backend),
                              wp, k, scale, bias, backend=backend)

    calls = {'fp32': lambda: F.linear(x, w, bias),
             'binary': lambda: bmm_pm1(xp, wp, k),
             'binary+pack': layer}
    reference = (bmm_pm1(xp, wp, k, backend='torch'), layer('torch'))

    def exact():
        return (torch.equal(bmm_pm1(xp, wp, k), reference[0])
                and torch.equal(layer(), reference[1]))

    return dict(count=1, M=m, K=k, N=n), calls, exact


def attention_cases(heads, batch):
    """Operands and callables of Q.K^T and mask.V.

    Args:
        heads: Attention heads.
        batch: Images.

    Returns:
        Two ``(name, shape dict, {column: callable}, exact)`` tuples.
    """
    from mmdidb.ops import (
        bmm_mask_pm1,
        bmm_pm1,
        pack_mask,
        pack_shifted_signs,
        pack_signs,
    )
    gen = torch.Generator().manual_seed(heads * 1000 + batch)
    count = batch * heads
    q = torch.randn(count, TOKENS, HEAD_DIM, generator=gen)
    k = torch.randn(count, TOKENS, HEAD_DIM, generator=gen)
    v = torch.randn(count, TOKENS, HEAD_DIM, generator=gen)
    q_shift = torch.randn(HEAD_DIM, generator=gen) * 0.1
    k_shift = torch.randn(HEAD_DIM, generator=gen) * 0.1
    a = (torch.rand(count, TOKENS, TOKENS, generator=gen) < 0.3).float()
    qp, kp = pack_signs(q + q_shift), pack_signs(k + k_shift)
    ap, vp = pack_mask(a), pack_signs(v, dim=-2)

    def qk(backend=None):
        return bmm_pm1(pack_shifted_signs(q, q_shift, backend=backend),
                       pack_shifted_signs(k, k_shift, backend=backend),
                       HEAD_DIM, backend=backend)

    def av(backend=None):
        return bmm_mask_pm1(pack_mask(a, backend=backend),
                            pack_signs(v, dim=-2, backend=backend), TOKENS,
                            backend=backend)

    qk_calls = {'fp32': lambda: torch.matmul(q, k.transpose(-1, -2)),
                'binary': lambda: bmm_pm1(qp, kp, HEAD_DIM),
                'binary+pack': qk}
    av_calls = {'fp32': lambda: torch.matmul(a, v),
                'binary': lambda: bmm_mask_pm1(ap, vp, TOKENS),
                'binary+pack': av}
    qk_ref = (bmm_pm1(qp, kp, HEAD_DIM, backend='torch'), qk('torch'))
    av_ref = (bmm_mask_pm1(ap, vp, TOKENS, backend='torch'), av('torch'))

    def qk_exact():
        return (torch.equal(bmm_pm1(qp, kp, HEAD_DIM), qk_ref[0])
                and torch.equal(qk(), qk_ref[1]))

    def av_exact():
        return (torch.equal(bmm_mask_pm1(ap, vp, TOKENS), av_ref[0])
                and torch.equal(av(), av_ref[1]))

    return [('Q.K^T', dict(count=count, M=TOKENS, K=HEAD_DIM, N=TOKENS),
             qk_calls, qk_exact),
            ('mask.V', dict(count=count, M=TOKENS, K=TOKENS, N=HEAD_DIM),
             av_calls, av_exact)]


def set_isa(isa):
    """Select the native kernels' path for the calls that follow."""
    from mmdidb.ops.cpu_bits import ENV_ISA
    os.environ[ENV_ISA] = isa


def available_isas(wanted=None):
    """The paths to time: ``wanted`` (checked) or every one the CPU runs."""
    from mmdidb.ops import cpu_bits
    if not cpu_bits.available():
        sys.exit('bgemm.py --device cpu needs the native kernels (a C '
                 'compiler to build mmdidb/ops/csrc/cpu_bits.c, and '
                 'MMDIDB_CPU_KERNELS not 0); nothing was measured.')
    best = cpu_bits.ISAS.index(cpu_bits.best_isa())
    runs = [isa for isa in reversed(cpu_bits.ISAS[:best + 1])]
    if wanted:
        missing = [isa for isa in wanted if isa not in runs]
        if missing:
            sys.exit(f'this CPU cannot run {missing} (it runs {runs})')
        runs = [isa for isa in runs if isa in wanted]
    return runs


def measure(args, isas):
    """Time every case at every thread count, on every path.

    Args:
        args: Parsed options of bgemm.py.
        isas: Paths to time.

    Returns:
        list[dict]: One row per (model, layer, batch, threads, path).
    """
    rows = []
    for model in args.models:
        d = DEIT_WIDTHS[model]
        for batch in args.batches:
            cases = []
            for name, k_mult, n_mult in (('qkv', 1, 3), ('proj', 1, 1),
                                         ('fc1', 1, 4), ('fc2', 4, 1)):
                cases.append((name, ) + linear_case(d, k_mult, n_mult, batch))
            cases += attention_cases(d // HEAD_DIM, batch)
            for name, shape, calls, exact in cases:
                ok = {}
                for isa in isas:
                    set_isa(isa)
                    ok[isa] = exact()
                entries = {}
                for threads in args.threads:
                    for isa in [None] + isas:
                        def setup(threads=threads, isa=isa):
                            torch.set_num_threads(threads)
                            if isa is not None:
                                set_isa(isa)

                        columns = ['fp32'] if isa is None else [
                            'binary', 'binary+pack']
                        for column in columns:
                            entries[(threads, isa, column)] = (
                                setup, calls[column])
                times = common.interleaved_median_ms(
                    entries, args.repeats, min_sample_s=args.min_sample_s,
                    iters=args.iters)
                for threads in args.threads:
                    for isa in isas:
                        row = dict(model=model, layer=name, batch=batch,
                                   threads=threads, isa=isa, exact=ok[isa],
                                   fp32=times[(threads, None, 'fp32')][0],
                                   **shape)
                        for column in ('binary', 'binary+pack'):
                            row[column] = times[(threads, isa, column)][0]
                        rows.append(row)
                        print(f'{model} b={batch} {name:6s} t={threads} '
                              f'{isa:8s} fp32={row["fp32"]:.4f} '
                              f'binary={row["binary"]:.4f} '
                              f'+pack={row["binary+pack"]:.4f} ms '
                              f'exact={ok[isa]}', flush=True)
    return rows


def markdown(rows, mhz):
    """The table, one line per (layer, threads, path).

    Args:
        rows: Rows of :func:`measure`.
        mhz: Clock for the MAC/cycle columns (None: left empty).

    Returns:
        str: The markdown table.
    """
    head = ['model', 'layer', 'batch', 'matrices x M x K -> N', 'threads',
            'path', 'FP32 ms', 'binary ms', 'binary + packing ms',
            'vs FP32 (binary)', 'vs FP32 (with packing)',
            'FP32 MAC/cycle/core', 'binary MAC/cycle/core', 'of the limit',
            'exact']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|---|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|'
             '---:|---|']
    for r in rows:
        macs = r['count'] * r['M'] * r['K'] * r['N']

        def per_cycle(ms, r=r):
            if not mhz:
                return None
            return macs / (ms * 1e-3) / (mhz * 1e6) / r['threads']

        fp32, binary = per_cycle(r['fp32']), per_cycle(r['binary'])
        limit = LIMITS.get(r['isa'])
        lines.append('| ' + ' | '.join([
            r['model'], r['layer'], str(r['batch']),
            f'{r["count"]} x {r["M"]} x {r["K"]} -> {r["N"]}',
            str(r['threads']), r['isa'], f'{r["fp32"]:.4f}',
            f'{r["binary"]:.4f}', f'{r["binary+pack"]:.4f}',
            f'{r["fp32"] / r["binary"]:.2f}x',
            f'{r["fp32"] / r["binary+pack"]:.2f}x',
            '' if fp32 is None else f'{fp32:.1f}',
            '' if binary is None else f'{binary:.0f}',
            f'{binary / limit:.0%}' if binary is not None and limit else '',
            'yes' if r['exact'] else '**NO**']) + ' |')
    return '\n'.join(lines)


def main(args, argv=None):
    """Run the CPU benchmark of bgemm.py.

    Args:
        args: Parsed options of bgemm.py (``--device cpu``).
        argv: The arguments given (for the command line in the entry).

    Returns:
        Exit status: 1 when a binary result was not exact.
    """
    from mmdidb.ops.cpu_bits import ENV_ISA
    isas = available_isas(args.isas)
    saved_isa, saved_threads = os.environ.get(ENV_ISA), torch.get_num_threads()
    try:
        rows = measure(args, isas)
    finally:
        torch.set_num_threads(saved_threads)
        if saved_isa is None:
            os.environ.pop(ENV_ISA, None)
        else:
            os.environ[ENV_ISA] = saved_isa
    mhz = cpu_mhz()
    table = markdown(rows, mhz)
    now = datetime.datetime.now(datetime.timezone.utc)
    command = common.command_line('tools/benchmark/bgemm.py', argv)
    clock = (f'{mhz:,.0f} MHz ("cpu MHz" of /proc/cpuinfo; the MAC/cycle '
             'columns use it)' if mhz else 'unknown (no MAC/cycle columns)')
    text = '\n'.join([
        f'### {", ".join(args.models)}, batch '
        f'{", ".join(map(str, args.batches))}, {now:%Y-%m-%d %H:%M} UTC, CPU',
        '',
        f'- command: `{command}`',
        f'- machine: '
        f'{common.machine(threads="/".join(map(str, args.threads)))}'
        f'; clock {clock}; paths timed: {", ".join(isas)}',
        f'- median of {args.repeats} sample(s) per entry, all entries of a '
        'layer interleaved (a sample: '
        + (f'{args.iters} call(s)' if args.iters else
           f'calls for at least {args.min_sample_s:g} s')
        + ', after an untimed one when there are several), ms per call; '
        'FP32 is torch (F.linear '
        'with bias, torch.matmul); "binary" the integer product of '
        'pre-packed operands, "binary + packing" the deployed layer from '
        'float activations (shifted-sign packing, product and, for the '
        'linears, per-channel scale and bias; weights pre-packed); "exact": '
        'both binary columns equal the torch reference path bit for bit',
        f'- MAC/cycle/core: M*N*K per call / time / clock / threads; '
        f'{LIMITS_TEXT}',
        '', table, ''])
    print()
    print(text)
    if not args.no_append:
        common.append_benchmark_entry(args.output, text, HEADING)
        print(f'appended to {args.output}')
    return 0 if all(r['exact'] for r in rows) else 1
