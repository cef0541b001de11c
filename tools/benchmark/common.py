"""The frame the benchmark tools share.

- where results go and how they are written: :data:`BENCHMARKS`,
  :func:`add_output_args`, :func:`command_line`,
  :func:`append_benchmark_entry` (a new ``### `` entry per run) and
  :func:`write_benchmark_section` (a ``## `` section rewritten whole);
- the machine a run measured: :func:`machine`, :func:`cpu_cores`,
  :func:`versions`, :func:`rss_kib` and :func:`peak_rss_kib`;
- the guard that says why nothing can be measured here:
  :func:`setup_problem`;
- timing: :func:`cuda_median_ms` (CUDA events, with the defaults of its
  options in :func:`gpu_timing_defaults`) and :func:`interleaved_median_ms`
  (wall clock, entries interleaved);
- models by name: the paper's classifiers (:func:`classifier_cfg`,
  :data:`ARCHS`, :data:`VARIANTS`), the DeiT shapes of the GEMM benchmarks
  (:data:`TOKENS`, :data:`HEAD_DIM`, :data:`DEIT_WIDTHS`) and the variants
  of the Fashion-MNIST ablation (:data:`ABLATION_VARIANTS`).

The scripts beside it import it as ``common``: Python puts the folder of the
script it runs first on ``sys.path``, so ``python tools/benchmark/x.py``
finds it without any path handling. Tools in other folders
(``tools/deploy/checkpoint_sizes.py``, ``tools/analysis/get_ops.py``,
``tools/analysis/plot_ablation.py``) load it from its file. It imports
neither torch nor mmdidb when it is imported: a tool must start, and say
what it lacks, without them, and a measuring child process must not carry
imports it does not use (the ONNX Runtime workers of ``inference_cpu.py``
measure their resident memory).
"""
import copy
import math
import os
import os.path as osp
import platform
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The Markdown file the tools write their results to.
BENCHMARKS = REPO / 'docs' / 'benchmarks.md'
#: The section both training-step benchmarks (``train_step.py`` on the CPU,
#: ``train_step_gpu.py``) add their entries to.
TRAINING_STEP_HEADING = '## Training step (tools/benchmark/train_step.py)'


# ----------------------------------------------------------------- results
def add_output_args(parser) -> None:
    """Add ``--output`` (the results file) and ``--no-append`` to a parser."""
    parser.add_argument('--output', type=Path, default=BENCHMARKS,
                        help='markdown file the entry is appended to')
    parser.add_argument('--no-append', action='store_true',
                        help='print the table only')


def command_line(script: str, argv=None) -> str:
    """The command that ran a tool, as its entry records it.

    Args:
        script (str): The tool's path from the repository root, e.g.
            ``'tools/benchmark/bgemm.py'``.
        argv (list[str], optional): Its arguments. Defaults to
            ``sys.argv[1:]``.

    Returns:
        str: ``python SCRIPT ARGS``, each argument shell-quoted.
    """
    args = sys.argv[1:] if argv is None else argv
    return ' '.join(['python', script] + [shlex.quote(a) for a in args])


def _read_or_new(path) -> str:
    """The text of a benchmarks file, or a new one's title."""
    return open(path).read() if osp.exists(path) else '# Benchmarks\n'


def write_benchmark_section(path, text: str, section: str) -> None:
    """Replace (or append) one ``## `` section of a benchmarks file.

    Args:
        path (str | Path): The Markdown file, e.g. ``docs/benchmarks.md``;
            created with a ``# Benchmarks`` title if missing.
        text (str): The new section, starting with its ``section`` heading.
        section (str): The heading line's start that identifies the old
            section; everything from it to the next ``## `` heading goes.
    """
    old = _read_or_new(path)
    start = old.find(section)
    if start >= 0:
        end = old.find('\n## ', start + len(section))
        old = old[:start] + (old[end + 1:] if end >= 0 else '')
    with open(path, 'w') as f:
        f.write(old.rstrip('\n') + '\n\n' + text)


def append_benchmark_entry(path, text: str, heading: str) -> None:
    """Add one entry at the end of a ``## `` section of a benchmarks file.

    Unlike :func:`write_benchmark_section`, the section's earlier entries
    stay: every run of a benchmark adds its own ``### `` entry (command,
    machine, date, table) after them, before the next ``## `` section.

    Args:
        path (str | Path): The Markdown file, e.g. ``docs/benchmarks.md``;
            created with a ``# Benchmarks`` title if missing.
        text (str): The entry, usually starting with a ``### `` line.
        heading (str): The section's ``## `` heading line; appended at the
            end of the file when the file has no such section yet.
    """
    content = _read_or_new(path)
    if heading not in content:
        content = content.rstrip('\n') + f'\n\n{heading}\n'
    start = content.index(heading) + len(heading)
    nxt = content.find('\n## ', start)
    block = '\n' + text.rstrip('\n') + '\n'
    if nxt == -1:
        content = content.rstrip('\n') + '\n' + block
    else:
        content = content[:nxt].rstrip('\n') + '\n' + block + content[nxt:]
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write(content)


# ----------------------------------------------------------------- machine
def cpu_cores() -> str:
    """``'<CPU model>, <n> cores'``: /proc/cpuinfo's model name (else the
    platform's processor or machine type) and the core count."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return f'{cpu}, {os.cpu_count()} cores'


def versions(cupy: bool = False) -> str:
    """``'torch <version>, CUDA <version>'``, and CuPy's with ``cupy``."""
    import torch
    text = f'torch {torch.__version__}, CUDA {torch.version.cuda}'
    if cupy:
        import cupy as cp
        text += f', cupy {cp.__version__}'
    return text


def machine(device='cpu', threads=None) -> str:
    """One line that says where a benchmark ran.

    Args:
        device (str | torch.device): 'cpu', or the CUDA device measured.
        threads (int | str, optional): On the CPU, the torch thread count(s)
            of the run. Defaults to ``torch.get_num_threads()``.

    Returns:
        str: ``'<CPU model>, <n> cores, torch <version>, <threads> torch
        threads'``, or for a GPU ``'<GPU> (sm_<XY>), torch <version>, CUDA
        <version>'``.
    """
    import torch
    device = torch.device(device)
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        return f'{props.name} (sm_{props.major}{props.minor}), {versions()}'
    return (f'{cpu_cores()}, torch {torch.__version__}, '
            f'{threads or torch.get_num_threads()} torch threads')


def _status_kib(field: str):
    """A size line of /proc/self/status (``VmRSS``, ``VmHWM``) in KiB, or
    None where there is none."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_kib() -> int:
    """Current resident set size of this process, KiB (0 off Linux)."""
    return _status_kib('VmRSS') or 0


def peak_rss_kib() -> int:
    """Peak resident set size of this process (``VmHWM``), KiB."""
    peak = _status_kib('VmHWM')
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak


# ------------------------------------------------------------------- guard
def setup_problem(tool: str, cuda: bool = True, openmmlab: bool = False,
                  cupy: bool = False, hint=None):
    """Why a tool cannot measure on this machine, in one line, or None.

    Args:
        tool (str): How the message names the tool, e.g. ``'inference.py'``.
        cuda (bool): It needs a CUDA GPU. Defaults to True.
        openmmlab (bool): It builds models from configs, so it needs
            mmengine, mmcv-lite and mmpretrain. Defaults to False.
        cupy (bool): It runs mmdidb's packed CUDA kernels, so it needs CuPy
            with NVRTC. Defaults to False.
        hint (str, optional): What to do instead without a GPU, added to
            that message.

    Returns:
        str | None: The first missing requirement, in that order, with
        "nothing was measured"; None when all are there.
    """
    import torch
    problem = None
    if cuda and not torch.cuda.is_available():
        problem = (f'{tool} needs a CUDA GPU (torch.cuda.is_available() is '
                   'False)')
        if hint:
            problem += f'; {hint}'
    if problem is None and openmmlab:
        from mmdidb.compat import openmmlab_available
        if not openmmlab_available():
            problem = (f'{tool} needs mmengine, mmcv-lite and mmpretrain '
                       '(bash tools/install.sh; on the GPU machine carry '
                       'their wheels, see tools/gpu_checks.sh)')
    if problem is None and cuda and cupy:
        from mmdidb.ops import cuda_backend
        reason = cuda_backend.unusable_reason(torch.device('cuda'))
        if reason is not None:
            problem = (f'{tool} needs CuPy with NVRTC (pip install -r '
                       f'requirements/cuda.txt): {reason}')
    return None if problem is None else f'{problem}; nothing was measured.'


# ------------------------------------------------------------------ timing
def gpu_timing_defaults(args) -> None:
    """Fill the GPU timing options a command line left unset.

    ``--batches`` 1 64 256 and ``--repeats`` 10 CUDA-event measurements of
    ``--iters`` 10 calls; with ``--quick`` batches 1 64 and 5 of 5.
    """
    if args.batches is None:
        args.batches = [1, 64] if args.quick else [1, 64, 256]
    if args.repeats is None:
        args.repeats = 5 if args.quick else 10
    if args.iters is None:
        args.iters = 5 if args.quick else 10


def cuda_median_ms(fn, iters, repeats, warmup=3):
    """Median time of one call of ``fn`` in milliseconds (CUDA events).

    Args:
        fn: Callable launching GPU work.
        iters: Calls per measurement.
        repeats: Number of measurements.
        warmup: Untimed calls first.

    Returns:
        Median over the measurements of (elapsed / iters).
    """
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / iters)
    return statistics.median(times)


def interleaved_median_ms(calls, repeats, min_sample_s=0.1, iters=None,
                          settle_s=0.0, on_sample=None):
    """Median wall-clock time of one call of each callable, interleaved.

    Every repeat takes one sample of each entry in turn (``calls``'s
    order), so that a change in the load of a shared machine hits all of
    them alike: its ``setup`` (untimed: e.g. the thread count), a pause of
    ``settle_s`` seconds, one untimed call when the sample has several
    calls, then the timed calls. The pause lets the worker threads of the
    entry before go idle: runtimes whose threads spin-wait after a call
    (ONNX Runtime's, by default) would otherwise take cores from the next
    entry's first calls. Before the first repeat each entry runs once
    untimed (the warm-up), which also sets its number of calls per sample:
    ``iters``, or enough for ``min_sample_s`` seconds, at least one.

    Args:
        calls (dict): name -> ``fn`` or ``(setup, fn)``, both callables
            without arguments (``setup`` may be None).
        repeats (int): Samples per entry.
        min_sample_s (float): Shortest sample, in seconds, when ``iters``
            is not given.
        iters (int, optional): Calls per sample for every entry.
        settle_s (float): Pause before each sample (and the warm-up), in
            seconds.
        on_sample (callable, optional): Called as ``on_sample(repeat)``
            after each repeat (progress output).

    Returns:
        dict: name -> ``(median ms per call, calls per sample)``.
    """
    entries = {}
    for name, call in calls.items():
        setup, fn = call if isinstance(call, tuple) else (None, call)
        if setup is not None:
            setup()
        time.sleep(settle_s)
        start = time.perf_counter()
        fn()
        first = time.perf_counter() - start
        count = iters or max(1, math.ceil(min_sample_s / max(first, 1e-6)))
        entries[name] = (setup, fn, count)
    samples = {name: [] for name in entries}
    for repeat in range(repeats):
        for name, (setup, fn, count) in entries.items():
            if setup is not None:
                setup()
            time.sleep(settle_s)
            if count > 1:
                fn()
            start = time.perf_counter()
            for _ in range(count):
                fn()
            samples[name].append((time.perf_counter() - start) * 1e3 / count)
        if on_sample is not None:
            on_sample(repeat)
    return {name: (statistics.median(samples[name]), entries[name][2])
            for name in entries}


# ------------------------------------------------------------------ models
#: The paper's ImageNet backbones.
ARCHS = ('deit-tiny', 'deit-small', 'swin-tiny', 'binaryvit-small')
#: 'didb': the DIDB model; 'naive': its DIDB modules off; 'fp': full
#: precision.
VARIANTS = ('didb', 'naive', 'fp')

_EMBED_DIMS = {'deit-tiny': 192, 'deit-small': 384, 'swin-tiny': 768,
               'binaryvit-small': 512}
_FP_PYRAMID = dict(diba=False, hfsc=False, irprelu=False,
                   binary_weights=False, binary_acts=False,
                   act_cfg=dict(type='GELU'))

#: Tokens of a 224x224 DeiT input: 14x14 patches of 16 and the class token.
TOKENS = 197
#: Channels of one DeiT attention head.
HEAD_DIM = 64
#: Embedding widths of the DeiT models whose layer shapes the binary GEMM
#: benchmarks time.
DEIT_WIDTHS = {'DeiT-Tiny': 192, 'DeiT-Small': 384}


def classifier_cfg(arch: str,
                   variant: str = 'didb',
                   img_size: int = 224,
                   num_classes: int = 1000) -> dict:
    """An mmpretrain ``ImageClassifier`` config of the given arch and variant.

    The tools that take ``--model ARCH`` build these at 224x224 with 1000
    classes: 'deit-tiny' and 'deit-small' are DIDB-ViT (or the naive binary
    ViT) and mmpretrain's full-precision DeiT (``VisionTransformerClsHead``,
    patch 16); 'swin-tiny' is DIDBSwin and mmpretrain's
    ``SwinTransformer`` (global average pooling + ``LinearClsHead``);
    'binaryvit-small' is DIDBBinaryViT and the same pyramid in full
    precision (no mmpretrain counterpart).

    Args:
        arch (str): One of :data:`ARCHS`.
        variant (str): 'didb', 'naive' or 'fp'. Defaults to 'didb'.
        img_size (int): Input size. Defaults to 224.
        num_classes (int): Classes of the head. Defaults to 1000.

    Returns:
        dict: A config for ``mmpretrain.registry.MODELS.build``.

    Raises:
        ValueError: Unknown arch or variant.
    """
    if arch not in ARCHS:
        raise ValueError(f'arch must be one of {ARCHS}, got {arch!r}')
    if variant not in VARIANTS:
        raise ValueError(f'variant must be one of {VARIANTS}, got '
                         f'{variant!r}')
    naive = dict(diba=False, hfsc=False, irprelu=False) \
        if variant == 'naive' else {}
    neck = None
    head = 'LinearClsHead'
    if arch == 'swin-tiny':
        backbone = dict(type='SwinTransformer' if variant == 'fp' else
                        'DIDBSwin', arch='tiny', img_size=img_size, **naive)
        neck = dict(type='GlobalAveragePooling')
    elif arch == 'binaryvit-small':
        backbone = dict(type='DIDBBinaryViT', arch='small',
                        img_size=img_size, **naive,
                        **(_FP_PYRAMID if variant == 'fp' else {}))
    else:
        head = 'VisionTransformerClsHead'
        backbone = dict(type='VisionTransformer' if variant == 'fp' else
                        'DIDBViT', arch=arch, img_size=img_size,
                        patch_size=16, **naive)
    return copy.deepcopy(dict(
        type='ImageClassifier',
        backbone=backbone,
        neck=neck,
        head=dict(type=head, num_classes=num_classes,
                  in_channels=_EMBED_DIMS[arch])))


# ---------------------------------------------- the Fashion-MNIST ablation
#: The config of every ablation variant but the full-precision one: the
#: quick start's.
ABLATION_BASE = 'configs/didbvit/vit-mini_fashion-mnist.py'
_ABLATION_FP = 'configs/didbvit/vit-mini-fp_fashion-mnist.py'
_ALPHA_LR = 'optim_wrapper.paramwise_cfg.custom_keys.attn_binarizer.lr_mult'

#: DIBA's self term as the paper writes it. The quick-start config leaves
#: it out (docs/method.md, choice 22); every variant defined against the
#: paper's formula pins it, so that the recorded runs keep their meaning.
_PAPER = {'model.backbone.diba_self_term': 'paper'}
#: The quick-start default, pinned too: the variants stay what they were
#: measured as if the config's default moves.
_D_ONLY = {'model.backbone.diba_self_term': 'off'}

#: The variants of ``ablation_fashion_mnist.py`` (and the order
#: ``tools/analysis/plot_ablation.py`` draws them in): name -> (label,
#: config, cfg-options). First the modules of the model the quick start
#: trains (DIBA without its self term) taken away one at a time, then the
#: same with the paper's self term, DIBA's two parts (self term and D), and
#: the switches against training mutes (docs/method.md). Names are the keys
#: of the recorded runs: a variant keeps its name when the order or a label
#: changes.
ABLATION_VARIANTS = {
    'd_only': ('full DIDB, mini default (DIBA without self term)',
               ABLATION_BASE, dict(_D_ONLY)),
    'no_diba': ('without DIBA', ABLATION_BASE,
                {'model.backbone.diba': False}),
    'd_only_no_hfsc': ('without HFSC', ABLATION_BASE,
                       {**_D_ONLY, 'model.backbone.hfsc': False}),
    'd_only_no_irprelu': ('without IRPReLU', ABLATION_BASE,
                          {**_D_ONLY, 'model.backbone.irprelu': False}),
    'naive': ('naive binary', ABLATION_BASE,
              {'model.backbone.diba': False, 'model.backbone.hfsc': False,
               'model.backbone.irprelu': False}),
    'fp': ('full precision', _ABLATION_FP, {}),
    # the paper's DIBA formula
    'full': ('paper self term: full DIDB', ABLATION_BASE, dict(_PAPER)),
    'no_hfsc': ('paper self term: without HFSC', ABLATION_BASE,
                {**_PAPER, 'model.backbone.hfsc': False}),
    'no_irprelu': ('paper self term: without IRPReLU', ABLATION_BASE,
                   {**_PAPER, 'model.backbone.irprelu': False}),
    # DIBA = self term + D; without DIBA = neither
    'self_only': ('paper self term only, no D (theta=1)', ABLATION_BASE,
                  {**_PAPER, 'model.backbone.theta': 1}),
    # the switches, on the quick-start default
    'd_only_init': ('default, D scale starts at 0.1', ABLATION_BASE,
                    {**_D_ONLY, 'model.backbone.d_init_scale': 0.1}),
    'd_only_hfsc_sigmoid': ('default, sigmoid fusion weight', ABLATION_BASE,
                            {**_D_ONLY,
                             'model.backbone.hfsc_alpha_param': 'sigmoid'}),
    'd_only_alpha_lr0.1': ('default, alpha lr x0.1', ABLATION_BASE,
                           {**_D_ONLY, _ALPHA_LR: 0.1}),
    # ... and on the paper's formula
    'convex': ('convex self term', ABLATION_BASE,
               {'model.backbone.diba_self_term': 'convex'}),
    'd_init': ('paper self term, D scale starts at 0.1', ABLATION_BASE,
               {**_PAPER, 'model.backbone.d_init_scale': 0.1}),
    'no_last_d': ('paper self term, no D in the last block', ABLATION_BASE,
                  {**_PAPER, 'model.backbone.last_block_d': False}),
    'hfsc_sigmoid': ('paper self term, sigmoid fusion weight', ABLATION_BASE,
                     {**_PAPER, 'model.backbone.hfsc_alpha_param': 'sigmoid'}),
    'hfsc_ste': ('paper self term, clamp with STE fusion weight',
                 ABLATION_BASE,
                 {**_PAPER, 'model.backbone.hfsc_alpha_param': 'clamp_ste'}),
    'alpha_lr0.1': ('paper self term, alpha lr x0.1', ABLATION_BASE,
                    {**_PAPER, _ALPHA_LR: 0.1}),
}
