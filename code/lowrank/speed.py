"""Wall-clock timing of the dense layer against its rank-r factorisation.

from lowrank.speed import layer_seconds, time_break_even
layer_seconds(1000, 1000, rank=50, batch=64)     # median seconds of one forward pass

Timings belong to a processor: the post caches them keyed by `processor()` and measures them
again on another.
"""

import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from lowrank.model import LowRankLinear


def processor() -> str:
    """The processor's model name (Linux: /proc/cpuinfo's "model name"), else what the
    platform module says."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def median_seconds(f: Callable[[], object], repeats: int = 50, warmup: int = 3) -> float:
    """Median wall time of f() over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def layer_seconds(
    m: int, n: int, rank: int | None, batch: int, repeats: int = 50, seed: int = 0
) -> float:
    """Median seconds of one forward pass of a dense n -> m layer (rank None) or its rank-r
    factorisation."""
    torch.manual_seed(seed)
    layer = nn.Linear(n, m) if rank is None else LowRankLinear.init(m, n, rank)
    x = torch.randn(batch, n)
    return median_seconds(lambda: layer(x), repeats)


def time_break_even(ranks: list[int], dense: float, factorised: list[float]) -> int | None:
    """The largest rank in `ranks` (ascending) up to which every factorisation beats the dense
    time."""
    best = None
    for r, t in zip(ranks, factorised):
        if t >= dense:
            break
        best = r
    return best
