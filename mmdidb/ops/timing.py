"""Timing shared by the benchmark tools (torch alone).

- :func:`cuda_median_ms`: GPU work, timed with CUDA events;
- :func:`interleaved_median_ms`: CPU work, wall clock, the callables
  alternating within each repeat so that a change in the load of a shared
  machine hits all of them alike.
"""
import math
import statistics
import time

import torch


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
    order): its ``setup`` (untimed: e.g. the thread count), a pause of
    ``settle_s`` seconds, one untimed call when the sample has several
    calls, then ``iters`` timed calls. The pause lets the worker threads of
    the entry before go idle: runtimes whose threads spin-wait after a call
    (ONNX Runtime's, by default) would otherwise take cores from the next
    entry's first calls. Before
    the first repeat each entry runs once untimed (the warm-up), which also
    sets its number of calls per sample: enough for ``min_sample_s``
    seconds, at least one.

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
