"""Training-step time and memory on the GPU: DIDB-ViT vs FP DeiT.

The target: a training step (forward + backward + optimizer)
of DIDB-ViT DeiT-S on the GPU takes at most 2x the FP DeiT-S step at the
same batch, in the precision the FP model trains in.

Both classifiers are built from their ImageNet configs (``--model
deit-small``: ``configs/didbvit/deit-s_in1k.py`` and its FP twin
``configs/didbvit/deit-s-fp_in1k.py``) with random weights, and
trained for ``--warmup`` untimed then ``--steps`` timed steps on one random
batch (``--batch``, 224x224 images, random labels). A step is what the
configs train:

- forward: ``zero_grad``, backbone, head and the head's loss (cross-entropy
  for DIDB-ViT, label smoothing for FP DeiT; the data pipeline, Mixup/CutMix
  and the distillation teacher's forward are not part of it);
- backward (through a ``GradScaler`` under FP16 autocast);
- optimizer: gradient clipping where the config's ``optim_wrapper`` clips
  (FP DeiT: max norm 5) and its AdamW, with the config's parameter groups
  (``paramwise_cfg``).

Precision (``--amp``): ``auto`` takes the FP config's: ``AmpOptimWrapper``
means autocast to its ``dtype`` (FP16 with a ``GradScaler``, or BF16), a
plain ``OptimWrapper`` FP32 (TF32 as torch's defaults set it; the entry
records them). Both models run in that precision. ``fp16``, ``bf16`` and
``off`` force one.

Times are CUDA events recorded at the phase boundaries of every step (no
synchronisation inside a step) and read once the steps are done; a time is
the median over the timed steps. The forward / backward / optimizer columns
split the median step in proportion to each phase's total over the timed
steps, so they add up to it. Peak memory is
``torch.cuda.max_memory_allocated`` over the timed steps (weights, gradients,
AdamW state and activations).

``--compile on`` adds a ``torch.compile`` row per model, ``only`` times the
compiled models alone. The compilation is regional: each transformer block
(``backbone.layers[i]``) is compiled in place, and as the blocks share their
code torch compiles one and reuses it for the others, which keeps the cold
compile short (the GPU check has two minutes for all of this); patch
embedding, head, loss and optimizer stay eager. The compile column gives the
compile time (first compiled step minus a median step) and dynamo's count of
graphs and graph breaks (more than one graph per block type means the block
was split, with eager Python between the pieces). Rows print as they
finish; a SIGTERM (``timeout``) stops the run and the rows done so far are
still reported and appended.

CPU check (CI): ``--device cpu --tiny`` runs the same code on a tiny
version of both models (2 layers, 32 dims, 2 heads, 32x32 images, patch 8,
10 classes, batch 8 unless ``--batch`` says otherwise) in a few seconds,
timed with ``time.perf_counter``; peak memory is then not measured.

Prints a markdown table and appends it, with the command, machine and date,
to ``docs/benchmarks.md`` under "## Training step
(tools/benchmark/train_step.py)".

Usage::

    python tools/benchmark/train_step_gpu.py [--model deit-small]
        [--batch 64] [--amp auto|fp16|bf16|off] [--compile off|on|only]
        [--warmup 3] [--steps 10] [--no-append]
    python tools/benchmark/train_step_gpu.py --device cpu --tiny --no-append
"""
import argparse
import copy
import datetime
import gc
import signal
import statistics
import sys
import time

import torch
from torch import nn

import common

HEADING = common.TRAINING_STEP_HEADING

#: model -> ((label, config) of DIDB-ViT, (label, config) of the FP twin).
PAIRS = {
    'deit-small': (('DIDB-ViT DeiT-S', 'configs/didbvit/'
                    'deit-s_in1k.py'),
                   ('FP DeiT-S', 'configs/didbvit/deit-s-fp_in1k.py')),
    'deit-tiny': (('DIDB-ViT DeiT-T', 'configs/didbvit/'
                   'deit-t_in1k.py'),
                  ('FP DeiT-T', 'configs/didbvit/deit-t-fp_in1k.py')),
}
#: ``--tiny``: the backbone arch, input size, patch size and classes.
TINY = dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                      feedforward_channels=64),
            img_size=32, patch_size=8, num_classes=10)
AMP_DTYPES = {'fp16': 'float16', 'bf16': 'bfloat16'}


class Stopped(BaseException):
    """Raised by the SIGTERM handler: report the rows done so far. A
    BaseException, like KeyboardInterrupt, so that no ``except Exception``
    on the way (dynamo's fallbacks) swallows it."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=('cuda', 'cpu'), default='cuda')
    parser.add_argument('--model', choices=tuple(PAIRS), default='deit-small')
    parser.add_argument('--batch', type=int, default=None,
                        help='images per step (default 64; 8 with --tiny)')
    parser.add_argument('--amp', choices=('auto', 'fp16', 'bf16', 'off'),
                        default='auto',
                        help='autocast dtype of both models (auto: the FP '
                        'config\'s optim_wrapper)')
    parser.add_argument('--compile', nargs='?', const='on', default='off',
                        choices=('off', 'on', 'only'),
                        help='torch.compile rows: none (off), next to eager '
                        '(on, also a bare --compile) or alone (only)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed steps first (the first compiles)')
    parser.add_argument('--steps', type=int, default=10,
                        help='timed steps per model')
    parser.add_argument('--tiny', action='store_true',
                        help='2-layer 32-dim models on 32x32 images (quick '
                        'CPU check of the script)')
    common.add_output_args(parser)
    args = parser.parse_args(argv)
    if args.batch is None:
        args.batch = 8 if args.tiny else 64
    if args.warmup < 1 or args.steps < 1 or args.batch < 1:
        parser.error('--warmup, --steps and --batch must be at least 1')
    return args


def load_cfg(config, tiny):
    """The config, with the ``--tiny`` model when asked for."""
    from mmdidb.apis import load_config
    cfg = load_config(str(common.REPO / config))
    if tiny:
        backbone = cfg.model.backbone
        backbone.arch = dict(TINY['arch'])
        backbone.img_size = TINY['img_size']
        backbone.patch_size = TINY['patch_size']
        cfg.model.head.in_channels = TINY['arch']['embed_dims']
        cfg.model.head.num_classes = TINY['num_classes']
    return cfg


def resolve_precision(amp, fp_cfg):
    """``(name, autocast dtype or None, why)`` of ``--amp``."""
    if amp == 'auto':
        wrapper = fp_cfg.optim_wrapper
        kind = wrapper.get('type', 'OptimWrapper')
        if 'Amp' not in kind:
            return 'fp32', None, (f'auto: the FP config\'s optim_wrapper is '
                                  f'{kind}, no AMP')
        dtype = wrapper.get('dtype') or 'float16'
        name = {v: k for k, v in AMP_DTYPES.items()}.get(str(dtype), 'fp16')
        return name, getattr(torch, AMP_DTYPES[name]), (
            f'auto: the FP config\'s optim_wrapper is {kind}, dtype {dtype}')
    if amp == 'off':
        return 'fp32', None, '--amp off'
    return amp, getattr(torch, AMP_DTYPES[amp]), f'--amp {amp}'


class _Logits(nn.Module):
    """Backbone (and neck) then head on a tensor: the classifier's own loss
    path takes DataSample lists, which the step does not need."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, images):
        return self.classifier.head(self.classifier.extract_feat(images))


def compile_blocks(model):
    """``torch.compile`` each transformer block in place (regional
    compilation): the blocks share one code object, so torch compiles one
    block and reuses it for the others (parameters are graph inputs) instead
    of tracing the whole network; patch embedding, head and loss stay
    eager."""
    blocks = getattr(model.backbone, 'layers', None)
    if not isinstance(blocks, nn.ModuleList) or not len(blocks):
        raise ValueError(f'--compile: {type(model.backbone).__name__} has no '
                         'backbone.layers ModuleList of blocks to compile')
    for block in blocks:
        block.compile()


def build(cfg, device):
    """Classifier, its optimizer and its clip settings, on ``device``."""
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    # build_optim_wrapper logs every parameter group at INFO
    if not MMLogger.check_instance_created('train_step_gpu'):
        MMLogger.get_instance('train_step_gpu', log_level='WARNING')
    torch.manual_seed(0)
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    model_cfg.pop('train_cfg', None)  # Mixup/CutMix: data preprocessing
    model = MODELS.build(model_cfg).to(device)
    model.train()
    # the config's AdamW and parameter groups; precision and clipping are
    # applied by hand below, the same way for both models
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper.to_dict())
    clip = wrapper_cfg.pop('clip_grad', None)
    for key in ('type', 'dtype', 'loss_scale'):
        wrapper_cfg.pop(key, None)
    wrapper = build_optim_wrapper(model, dict(type='OptimWrapper',
                                              **wrapper_cfg))
    return model, wrapper.optimizer, clip


class _PhaseTimer:
    """Marks at the phase boundaries of a step: CUDA events on a GPU (read
    after the steps), ``time.perf_counter`` on a CPU."""

    def __init__(self, device):
        self.cuda = device.type == 'cuda'
        self.steps = []

    def mark(self, marks):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            marks.append(event)
        else:
            marks.append(time.perf_counter())

    def phases_ms(self):
        """Per step: [forward, backward, optimizer] in ms."""
        if self.cuda:
            torch.cuda.synchronize()
            return [[a.elapsed_time(b) for a, b in zip(m, m[1:])]
                    for m in self.steps]
        return [[(b - a) * 1e3 for a, b in zip(m, m[1:])]
                for m in self.steps]


def train(model, optimizer, clip, net, images, labels, dtype, args):
    """Time the steps of one model: a dict of the row's raw numbers."""
    device = images.device
    scaler = torch.amp.GradScaler(device.type) \
        if dtype == torch.float16 else None
    params = [p for p in model.parameters() if p.requires_grad]
    loss_module = model.head.loss_module
    timer = _PhaseTimer(device)
    # mmengine's clip_grad: type 'norm' (default) or 'value'
    clip = dict(clip or {})
    clip_fn = torch.nn.utils.clip_grad_value_ \
        if clip.pop('type', 'norm') == 'value' else \
        torch.nn.utils.clip_grad_norm_

    def step(marks):
        timer.mark(marks)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32,
                            enabled=dtype is not None):
            logits = net(images)
            loss = loss_module(logits, labels, avg_factor=len(labels))
        timer.mark(marks)
        (scaler.scale(loss) if scaler else loss).backward()
        timer.mark(marks)
        if scaler:
            scaler.unscale_(optimizer)
        if clip:
            clip_fn(params, **clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        timer.mark(marks)
        return loss

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    sync()
    t0 = time.perf_counter()
    first_loss = step([]).item()  # .item() waits for the step
    first_s = time.perf_counter() - t0
    for _ in range(args.warmup - 1):
        step([])
    sync()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.steps):
        marks = []
        loss = step(marks)
        timer.steps.append(marks)
    phases = timer.phases_ms()
    peak = (torch.cuda.max_memory_allocated() / 2**20
            if device.type == 'cuda' else None)
    return dict(phases=phases, first_s=first_s, peak_mib=peak,
                first_loss=first_loss, loss=loss.item())


def summarise(raw):
    """Median ms per step and its forward/backward/optimizer split."""
    steps = [sum(p) for p in raw['phases']]
    ms = statistics.median(steps)
    totals = [sum(p[i] for p in raw['phases']) for i in range(3)]
    split = [ms * t / sum(totals) for t in totals]
    return dict(ms=ms, fwd=split[0], bwd=split[1], opt=split[2])


def measure(args, device, on_row=print):
    """Rows ``(label, mode, result)``: result a dict, or a string saying
    why the row has no numbers."""
    from torch._dynamo.utils import counters
    (didb_label, didb_config), (fp_label, fp_config) = PAIRS[args.model]
    cfgs = {didb_label: load_cfg(didb_config, args.tiny),
            fp_label: load_cfg(fp_config, args.tiny)}
    precision = resolve_precision(args.amp, cfgs[fp_label])
    size = cfgs[fp_label].model.backbone.get('img_size', 224)
    classes = cfgs[fp_label].model.head.num_classes
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, size, size, generator=g).to(device)
    labels = torch.randint(0, classes, (args.batch, ), generator=g).to(device)
    # eager first; compiled DIDB-ViT before compiled FP: if the run is cut
    # short, the rows that matter most are in
    jobs = []
    if args.compile != 'only':
        jobs += [(fp_label, 'eager'), (didb_label, 'eager')]
    if args.compile != 'off':
        jobs += [(didb_label, 'compiled'), (fp_label, 'compiled')]
    rows = []
    for i, (label, mode) in enumerate(jobs):
        try:
            model, optimizer, clip = build(cfgs[label], device)
            net = _Logits(model)
            if mode == 'compiled':
                compile_blocks(model)
                counters.clear()
            raw = train(model, optimizer, clip, net, images, labels,
                        precision[1], args)
            result = dict(raw, **summarise(raw))
            if mode == 'compiled':
                result['compile_s'] = max(
                    raw['first_s'] - result['ms'] / 1e3, 0.0)
                # more than one graph per block, or breaks: dynamo split
                # the block (eager Python between the pieces)
                result['graphs'] = counters['stats']['unique_graphs']
                result['breaks'] = sum(counters['graph_break'].values())
        except Stopped:
            rows += [(lab, mod, 'not run: stopped (SIGTERM)')
                     for lab, mod in jobs[i:]]
            on_row(f'stopped by SIGTERM before {label} ({mode}) finished')
            break
        except torch.cuda.OutOfMemoryError:
            result = 'out of memory'
        rows.append((label, mode, result))
        on_row(f'{label} ({mode}): ' + (result if isinstance(result, str)
                                        else row_text(result)))
        model = optimizer = net = None
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return rows, precision


def _compile_text(r):
    return (f'{r["compile_s"]:.1f} s ({r["graphs"]} graphs, '
            f'{r["breaks"]} graph breaks)')


def row_text(r):
    peak = '' if r['peak_mib'] is None else f', peak {r["peak_mib"]:,.0f} MiB'
    compile_s = f', compile {_compile_text(r)}' if 'compile_s' in r else ''
    return (f'{r["ms"]:.2f} ms/step (forward {r["fwd"]:.2f}, backward '
            f'{r["bwd"]:.2f}, optimizer {r["opt"]:.2f}){peak}{compile_s}; '
            f'loss {r["first_loss"]:.4f} at the first step, '
            f'{r["loss"]:.4f} at the last')


def markdown(rows, fp_label):
    """The table; "vs FP" divides by the FP row of the same mode."""
    fp = {mode: r for label, mode, r in rows
          if label == fp_label and isinstance(r, dict)}
    lines = ['| model | mode | ms / step | vs FP | forward | backward | '
             'optimizer | peak memory (MiB) | vs FP | compile |',
             '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for label, mode, r in rows:
        if not isinstance(r, dict):
            lines.append(f'| {label} | {mode} | {r} | | | | | | | |')
            continue
        ref = fp.get(mode)
        speed = f'{r["ms"] / ref["ms"]:.2f}x' if ref else ''
        if r['peak_mib'] is None:
            peak = memory = ''
        else:
            peak = f'{r["peak_mib"]:,.0f}'
            memory = f'{r["peak_mib"] / ref["peak_mib"]:.2f}x' if ref else ''
        compile_s = _compile_text(r) if 'compile_s' in r else ''
        lines.append(f'| {label} | {mode} | {r["ms"]:.2f} | {speed} | '
                     f'{r["fwd"]:.2f} | {r["bwd"]:.2f} | {r["opt"]:.2f} | '
                     f'{peak} | {memory} | {compile_s} |')
    return '\n'.join(lines)


def machine(device):
    """The machine line; on a GPU with the TF32 settings FP32 ran under."""
    if device.type != 'cuda':
        return common.machine()
    return (f'{common.machine(device)}, TF32 matmul '
            f'{torch.backends.cuda.matmul.allow_tf32}, cuDNN '
            f'{torch.backends.cudnn.allow_tf32}')


def _stop(signum, frame):
    raise Stopped()


def main(argv=None):
    args = parse_args(argv)
    problem = common.setup_problem(
        f'train_step_gpu.py --device {args.device}',
        cuda=args.device == 'cuda', openmmlab=True,
        hint='run it on a GPU machine, or pass --device cpu --tiny for a '
        'quick CPU check')
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    device = torch.device(args.device)
    signal.signal(signal.SIGTERM, _stop)
    rows, (precision, _, why) = measure(args, device,
                                        on_row=lambda s: print(s, flush=True))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    (didb_label, _), (fp_label, _) = PAIRS[args.model]
    when = datetime.datetime.now(datetime.timezone.utc)
    command = common.command_line('tools/benchmark/train_step_gpu.py', argv)
    size = TINY['img_size'] if args.tiny else 224
    text = '\n'.join([
        f'### {when:%Y-%m-%d %H:%M} UTC, {device.type.upper()}: '
        f'{didb_label} vs {fp_label}'
        f'{" (--tiny)" if args.tiny else ""}, batch {args.batch}, '
        f'{precision}',
        '',
        f'- command: `{command}`',
        f'- machine: {machine(device)}',
        f'- precision {precision} for both models ({why}); '
        f'{size}x{size} random images; median of {args.steps} timed steps '
        f'after {args.warmup} warm-up steps '
        f'({"CUDA events" if device.type == "cuda" else "perf_counter"}); '
        'the forward / backward / optimizer columns split the median step '
        'in proportion to the phase totals; "vs FP" divides by the FP row '
        'of the same mode; compile = first compiled step minus a median '
        'step, each transformer block compiled on its own (regional)',
        '',
        markdown(rows, fp_label),
        ''])
    print()
    print(text)
    if not args.no_append:
        common.append_benchmark_entry(args.output, text, HEADING)
        print(f'appended to {args.output}')
    return 0 if all(isinstance(r, dict) for *_, r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
