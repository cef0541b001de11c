"""GPU timing shared by the benchmark tools (torch alone, CUDA events)."""
import statistics

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
