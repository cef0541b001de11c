"""Training-step time and memory on CPU: DIDB-ViT vs naive binary vs FP.

Two measurements, each model in its own subprocess (so that peak RSS,
``ru_maxrss``, belongs to that model alone):

- ``mini``: the quick-start classifiers (``vit-mini_fashion-mnist.py``,
  its naive binary and FP twins) at the config's batch size (256) on random
  28x28 images: time per training step (forward + backward + gradient
  clipping + AdamW, as the config trains), split into its phases;
- ``seg``: the DeiT-S UPerNet segmentation step at 512x512, batch 1
  (``deit-s_ade20k.py`` and ``deit-s-fp_ade20k.py``; the model only, random
  weights and input, no checkpoint): peak RSS of the process and time per
  step.

The models run in rounds, interleaved, and a time is the median of all the
measured steps of a model, so that the load of other work on a shared
machine hits every model alike. With ``--baseline-src DIR`` (a checkout of
another commit) every model also runs with ``mmdidb`` imported from ``DIR``,
in the same rounds: a before/after comparison in one run.

``--profile`` prints instead the torch.profiler breakdown (top operators by
self CPU time) of one quick-start DIDB-ViT training step.

Prints a markdown table and appends it, with the command, machine and date,
to ``docs/benchmarks.md`` under "## Training step (tools/benchmark/
train_step.py)".

Usage::

    python tools/benchmark/train_step.py [--only mini|seg] [--rounds 3]
        [--steps 20] [--seg-steps 2] [--baseline-src DIR] [--no-append]
    python tools/benchmark/train_step.py --profile [--baseline-src DIR]
"""
import argparse
import copy
import datetime
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common

REPO = common.REPO
HEADING = common.TRAINING_STEP_HEADING

#: (label, config) of the quick-start classifiers.
MINI = (('DIDB-ViT W1A1', 'configs/didbvit/vit-mini_fashion-mnist.py'),
        ('naive binary ViT', 'configs/didbvit/'
         'vit-mini-naive_fashion-mnist.py'),
        ('FP ViT', 'configs/didbvit/vit-mini-fp_fashion-mnist.py'))
#: (label, config) of the DeiT-S UPerNet segmenters.
SEG = (('DIDB-ViT W1A1 UPerNet', 'configs/didbvit/deit-s_ade20k.py'),
       ('FP DeiT-S UPerNet', 'configs/didbvit/deit-s-fp_ade20k.py'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', choices=('mini', 'seg'),
                        help='run one of the two measurements')
    parser.add_argument('--rounds', type=int, default=3,
                        help='interleaved rounds (one subprocess per model '
                        'and round)')
    parser.add_argument('--steps', type=int, default=20,
                        help='timed quick-start steps per round')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed quick-start steps before them')
    parser.add_argument('--seg-steps', type=int, default=2,
                        help='timed segmentation steps per round')
    parser.add_argument('--seg-warmup', type=int, default=1,
                        help='untimed segmentation steps before them')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch intra-op threads (default: torch\'s)')
    parser.add_argument('--baseline-src', type=Path, default=None,
                        help='a checkout whose mmdidb runs as "before"')
    parser.add_argument('--profile', action='store_true',
                        help='print the profiler breakdown of one DIDB step')
    parser.add_argument('--profile-rows', type=int, default=25)
    parser.add_argument('--json', type=Path, default=None,
                        help='also write the raw results here')
    common.add_output_args(parser)
    # internal: one model in this process
    parser.add_argument('--worker', nargs=2, metavar=('KIND', 'CONFIG'),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------- the worker
def _set_src(src=None):
    """Import mmdidb from ``src``, TRAIN_STEP_SRC (a baseline checkout) or
    the repo, before mmpretrain/mmseg: its compat fixes let them import."""
    src = str(src or os.environ.get('TRAIN_STEP_SRC', REPO))
    sys.path.insert(0, src)
    mmdidb = importlib.import_module('mmdidb')
    assert Path(mmdidb.__file__).resolve().is_relative_to(
        Path(src).resolve()), f'mmdidb imported from {mmdidb.__file__}'
    return Path(src)


def _to_plain_bn(cfg):
    """SyncBN -> BN: a single CPU process has no process group."""
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
        for value in cfg.values():
            _to_plain_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _to_plain_bn(value)
    return cfg


def build_mini(src, config):
    """Model, ``loss_fn`` and optimizer settings of a quick-start config."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    cfg = Config.fromfile(str(src / config))
    init_default_scope('mmpretrain')
    model = MODELS.build(copy.deepcopy(cfg.model))
    batch = cfg.train_dataloader.batch_size
    backbone = cfg.model.backbone
    shape = (batch, backbone.get('in_channels', 3), backbone.img_size,
             backbone.img_size)
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(shape, generator=g)
    labels = torch.randint(0, cfg.model.head.num_classes, (batch, ),
                           generator=g)
    samples = [DataSample().set_gt_label(int(label)) for label in labels]

    def loss_fn():
        losses = model(inputs, samples, mode='loss')
        return sum(v for k, v in losses.items() if 'loss' in k)

    return model, loss_fn, cfg.optim_wrapper


def build_seg(src, config):
    """Model and ``loss_fn`` of a segmentation config at its crop size."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(src / config))
    init_default_scope('mmseg')
    model_cfg = _to_plain_bn(copy.deepcopy(cfg.model.to_dict()))
    model_cfg['backbone']['init_cfg'] = None  # no checkpoint download
    model_cfg.pop('data_preprocessor', None)
    model = MODELS.build(model_cfg)
    h, w = cfg.crop_size
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn((1, 3, h, w), generator=g)
    label = torch.randint(0, model_cfg['decode_head']['num_classes'],
                          (1, h, w), generator=g)
    sample = SegDataSample(metainfo=dict(img_shape=(h, w), pad_shape=(h, w),
                                         ori_shape=(h, w)))
    sample.gt_sem_seg = PixelData(data=label)

    def loss_fn():
        losses = model.loss(inputs, [sample])
        return sum(v for k, v in losses.items() if 'loss' in k)

    return model, loss_fn, cfg.optim_wrapper


def run_worker(kind, config, args):
    """Train ``config`` for a few steps; print one JSON line of results."""
    import resource

    import torch
    src = _set_src()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    builder = build_mini if kind == 'mini' else build_seg
    model, loss_fn, optim_cfg = builder(src, config)
    model.train()
    if kind == 'seg':
        # batch 1: the pooled 1x1 map of UPerNet's PPM has one value per
        # channel, which BatchNorm refuses in training mode
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    opt = optim_cfg.optimizer
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt.lr,
                                  weight_decay=opt.get('weight_decay', 0.01))
    max_norm = (optim_cfg.get('clip_grad') or {}).get('max_norm')
    warmup, steps = (args.warmup, args.steps) if kind == 'mini' \
        else (args.seg_warmup, args.seg_steps)
    rss_before = common.rss_kib()
    phases = dict(forward=[], backward=[], optimizer=[], step=[], cpu=[])
    for i in range(warmup + steps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if max_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        t3 = time.perf_counter()
        c3 = time.process_time()
        if i >= warmup:
            phases['cpu'].append(c3 - c0)
            phases['forward'].append(t1 - t0)
            phases['backward'].append(t2 - t1)
            phases['optimizer'].append(t3 - t2)
            phases['step'].append(t3 - t0)
    print(json.dumps(dict(
        kind=kind, config=config, src=str(src),
        threads=torch.get_num_threads(), loss=loss.item(),
        rss_before_mib=rss_before / 1024,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **phases)))


# --------------------------------------------------------------- the driver
def run_subprocess(kind, config, src, args):
    env = dict(os.environ, TRAIN_STEP_SRC=str(src))
    cmd = [sys.executable, str(Path(__file__).resolve()), '--worker', kind,
           config, '--steps', str(args.steps), '--warmup', str(args.warmup),
           '--seg-steps', str(args.seg_steps), '--seg-warmup',
           str(args.seg_warmup)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f'{kind} {config} (mmdidb from {src}) failed:\n'
                 f'{proc.stderr[-4000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(args):
    sources = [('after', REPO)]
    if args.baseline_src:
        sources.insert(0, ('before', args.baseline_src.resolve()))
    jobs = []
    if args.only in (None, 'mini'):
        jobs += [('mini', label, cfg) for label, cfg in MINI]
    if args.only in (None, 'seg'):
        jobs += [('seg', label, cfg) for label, cfg in SEG]
    results = {}
    for r in range(args.rounds):
        for kind, label, cfg in jobs:
            for version, src in sources:
                out = run_subprocess(kind, cfg, src, args)
                entry = results.setdefault(
                    (kind, label, version),
                    dict(kind=kind, label=label, config=cfg, version=version,
                         step=[], forward=[], backward=[], optimizer=[],
                         cpu=[],
                         peak_rss_mib=[], rss_before_mib=[]))
                for key in ('step', 'forward', 'backward', 'optimizer',
                            'cpu'):
                    entry[key] += out[key]
                entry['peak_rss_mib'].append(out['peak_rss_mib'])
                entry['rss_before_mib'].append(out['rss_before_mib'])
                entry['threads'] = out['threads']
                print(f'round {r + 1}/{args.rounds}: {label} ({version}): '
                      f'{statistics.median(out["step"]) * 1e3:.0f} ms/step, '
                      f'peak RSS {out["peak_rss_mib"]:.0f} MiB', flush=True)
    return list(results.values())


def summarise(results):
    rows = []
    for e in results:
        rows.append(dict(
            e, ms=statistics.median(e['step']) * 1e3,
            fwd=statistics.median(e['forward']) * 1e3,
            bwd=statistics.median(e['backward']) * 1e3,
            opt=statistics.median(e['optimizer']) * 1e3,
            cpu=statistics.median(e['cpu']) * 1e3,
            peak=max(e['peak_rss_mib']),
            graph=max(p - b for p, b in zip(e['peak_rss_mib'],
                                             e['rss_before_mib']))))
    return rows


def table(rows):
    lines = []
    for kind in ('mini', 'seg'):
        part = [r for r in rows if r['kind'] == kind]
        if not part:
            continue
        fp = {r['version']: r for r in part if r['label'].startswith('FP')}
        if kind == 'mini':
            lines += ['', 'Quick-start classifiers, batch 256, 28x28 '
                      '(forward + backward + clip + AdamW):', '',
                      '| model | code | ms / step | vs FP | CPU ms / step | '
                      'vs FP | forward | backward | optimizer | '
                      '4 epochs (938 steps), s | peak RSS (MiB) |',
                      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
        else:
            lines += ['', 'DeiT-S UPerNet, 512x512, batch 1 (model only, '
                      'random weights and input):', '',
                      '| model | code | s / step | vs FP | CPU s / step | '
                      'vs FP | peak RSS (MiB) | vs FP | '
                      'RSS growth in training (MiB) | vs FP |',
                      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|']
        for r in part:
            ref = fp.get(r['version'])

            def vs(key):
                return f'{r[key] / ref[key]:.2f}x' if ref else ''

            if kind == 'mini':
                lines.append(
                    f'| {r["label"]} | {r["version"]} | {r["ms"]:.0f} | '
                    f'{vs("ms")} | {r["cpu"]:.0f} | {vs("cpu")} | '
                    f'{r["fwd"]:.0f} | {r["bwd"]:.0f} | {r["opt"]:.0f} | '
                    f'{r["ms"] * 938 / 1e3:.0f} | {r["peak"]:.0f} |')
            else:
                lines.append(
                    f'| {r["label"]} | {r["version"]} | {r["ms"] / 1e3:.1f} '
                    f'| {vs("ms")} | {r["cpu"] / 1e3:.1f} | {vs("cpu")} | '
                    f'{r["peak"]:.0f} | {vs("peak")} | {r["graph"]:.0f} | '
                    f'{vs("graph")} |')
    return '\n'.join(lines)


def profile(args, rows=25):
    """Top operators of one quick-start DIDB-ViT training step."""
    import torch
    from torch.profiler import ProfilerActivity
    src = _set_src(args.baseline_src)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, loss_fn, _ = build_mini(src, MINI[0][1])
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()

    for _ in range(3):
        step()
    with torch.profiler.profile(activities=[ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        step()
    print(f'mmdidb from {src}; {common.machine(threads=args.threads)}')
    print(prof.key_averages().table(sort_by='self_cpu_time_total',
                                    row_limit=rows))


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(*args.worker, args)
        return
    if args.profile:
        profile(args, args.profile_rows)
        return
    rows = summarise(measure(args))
    when = datetime.datetime.now(datetime.timezone.utc)
    command = common.command_line('tools/benchmark/train_step.py', argv)
    text = '\n'.join([
        f'### {when:%Y-%m-%d %H:%M} UTC, CPU',
        '',
        f'- command: `{command}`',
        f'- machine: {common.machine(threads=args.threads)}',
        f'- median over {args.rounds} interleaved rounds, one subprocess per '
        f'model and round ({args.steps} timed steps after {args.warmup} '
        f'warm-up steps each for the quick start, {args.seg_steps} after '
        f'{args.seg_warmup} for the segmenter); peak RSS is the largest '
        '`ru_maxrss` of the rounds, RSS growth the peak minus the RSS '
        'after building the model; the segmenters\' BatchNorm layers run '
        'in eval mode (batch 1)',
    ]) + '\n' + table(rows)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if not args.no_append:
        common.append_benchmark_entry(args.output, text, HEADING)
        print(f'\nappended to {args.output}')


if __name__ == '__main__':
    main()
