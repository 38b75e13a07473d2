"""Statistics over seeds: summaries, intervals and correlations, in one place.

from lowrank.stats import mean_std, seed_summary, spearman
mean_std([7, 8, 9])          # '8.0 ± 1.0' (mean ± sample standard deviation)
"""

import math
from collections.abc import Sequence

import numpy as np
import scipy.stats

from lowrank.checks import check


def seed_summary(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, n) over seeds; the deviation of one seed is 0."""
    v = np.asarray(values, dtype=float)
    check(
        v.ndim == 1 and len(v) > 0 and np.isfinite(v).all(),
        "values",
        "a non-empty list of finite numbers",
        repr(values)[:80],
    )
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def mean_std(values: Sequence[float], digits: int = 1, scale: float = 1.0) -> str:
    """'8.2 ± 0.4' (mean ± sample standard deviation over seeds); one seed: just the value."""
    mean, std, n = seed_summary([scale * v for v in values])
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (scipy.stats.spearmanr; ties get their mean rank); nan when
    either is constant."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    check(
        a.shape == b.shape and a.ndim == 1 and len(a) >= 3,
        "a, b",
        "two lists of equal length >= 3",
        f"lengths {len(a)} and {len(b)}",
    )
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(scipy.stats.spearmanr(a, b).statistic)


def sd_interval(values: Sequence[float]) -> tuple[float, float]:
    """mean ± one sample standard deviation (the mean alone for one value)."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, mean
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return mean - std, mean + std


def separated(a: Sequence[float], b: Sequence[float]) -> int:
    """-1 if a's ±1 SD interval lies wholly below b's, 1 if wholly above, 0 if they overlap.

    A description of the spread, not a test: with 3 seeds no test could see such a gap.
    """
    (lo_a, hi_a), (lo_b, hi_b) = sd_interval(a), sd_interval(b)
    return -1 if hi_a < lo_b else 1 if lo_a > hi_b else 0
