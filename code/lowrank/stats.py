"""Statistics over seeds and images: summaries, paired tests, intervals, bootstraps, correlations.

Every network is trained on 8 seeds; seed s has the same initialisation and data order in every
condition, so two conditions are compared seed by seed (`paired`), and a verdict is read off the
interval of the difference (`direction`). Tests and intervals come from scipy.stats.

from lowrank.stats import direction, mean_std, paired
mean_std([7, 8, 9])          # '8.0 ± 1.0' (mean ± sample standard deviation)
r = paired(acc_a, acc_b)     # {'diff', 'low', 'high', 'p', 'n', 'level'}, the t interval at 95%
direction(r)                 # 'lower', 'higher' or 'we cannot tell'
"""

import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.optimize
import scipy.stats

from lowrank.checks import check, is_real

LEVEL = 0.95  # the confidence level of every interval and the post's tests
EXACT_MAX = 20  # paired: the exact sign-flip test up to 2**20 sign patterns, sampled above


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


def mean_ci(values: Sequence[float], digits: int = 1, scale: float = 1.0) -> str:
    """'8.2 [7.9, 8.6]': the mean over seeds and its t interval at LEVEL (mean_band); one
    value: just the value."""
    v = scale * np.asarray(values, dtype=float)
    mean, low, high = (float(a[0]) for a in mean_band(v[:, None]))
    if len(v) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


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


# ---- checks shared by the functions below ----------------------------------------------------


def _check_level(level: float, name: str = "level") -> None:
    """None; raises unless level is a number strictly between 0 and 1."""
    ok = is_real(level) and 0 < level < 1
    check(ok, name, "a number strictly between 0 and 1", repr(level))


def _vector(values, name: str, min_len: int) -> np.ndarray:
    """values as a 1-D float array; raises unless it is 1-D, finite and at least min_len long."""
    v = np.asarray(values, dtype=float)
    ok = v.ndim == 1 and len(v) >= min_len and bool(np.isfinite(v).all())
    allowed = f"a 1-D list of at least {min_len} finite numbers"
    check(ok, name, allowed, f"shape {v.shape}" if v.ndim != 1 else repr(values)[:80])
    return v


def _same_length(a: np.ndarray, b: np.ndarray, name: str = "a, b") -> None:
    """None; raises unless a and b have the same length."""
    check(len(a) == len(b), name, "of equal length", f"lengths {len(a)} and {len(b)}")


def _mean_diff(a, b, axis=-1):
    """mean(a) − mean(b) along axis (the statistic of both permutation tests)."""
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


# ---- two conditions over seeds ---------------------------------------------------------------


def paired(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> dict:
    """Compare two conditions seed by seed (a[i] and b[i] share seed i).

    Returns {diff: mean of a − b, low, high: the t interval of the mean difference at `level`
    (both diff when every difference is equal), p: two-sided sign-flip permutation p of the mean
    difference, exact up to EXACT_MAX pairs (1.0 when every difference is 0), n: pairs, level}.
    """
    a, b = _vector(a, "a", 2), _vector(b, "b", 2)
    _same_length(a, b)
    _check_level(level)
    d = a - b
    diff = float(d.mean())
    if np.ptp(d) == 0:
        low = high = diff
    else:
        low, high = scipy.stats.ttest_rel(a, b).confidence_interval(level)
    p = 1.0 if not d.any() else _sign_flip_p(a, b)
    return {
        "diff": diff,
        "low": float(low),
        "high": float(high),
        "p": p,
        "n": len(d),
        "level": level,
    }


def _sign_flip_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided permutation p of mean(a − b), swapping within pairs: exact (all 2**n patterns)
    up to n = EXACT_MAX, else 99,999 patterns drawn with a fixed generator."""
    n_resamples = np.inf if len(a) <= EXACT_MAX else 99_999
    result = scipy.stats.permutation_test(
        (a, b),
        _mean_diff,
        permutation_type="samples",
        n_resamples=n_resamples,
        vectorized=True,
        rng=np.random.default_rng(0),
    )
    return float(result.pvalue)


def unpaired(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> dict:
    """Compare two independent groups (no pairing by seed).

    Returns {diff: mean(a) − mean(b), low, high: Welch's t interval at `level` (both diff when
    both groups are constant), p: two-sided permutation p of the difference of means from 9,999
    relabellings drawn with a fixed generator (1.0 when every value is equal),
    n: (len(a), len(b)), level}.
    """
    a, b = _vector(a, "a", 2), _vector(b, "b", 2)
    _check_level(level)
    diff = float(a.mean() - b.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        low = high = diff
    else:
        test = scipy.stats.ttest_ind(a, b, equal_var=False)
        low, high = test.confidence_interval(level)
    p = 1.0 if np.ptp(np.concatenate([a, b])) == 0 else _relabel_p(a, b)
    return {
        "diff": diff,
        "low": float(low),
        "high": float(high),
        "p": p,
        "n": (len(a), len(b)),
        "level": level,
    }


def _relabel_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided permutation p of mean(a) − mean(b) from 9,999 relabellings (fixed generator)."""
    result = scipy.stats.permutation_test(
        (a, b),
        _mean_diff,
        permutation_type="independent",
        n_resamples=9999,
        vectorized=True,
        rng=np.random.default_rng(0),
    )
    return float(result.pvalue)


def direction(
    result: dict, below: str = "lower", above: str = "higher", neither: str = "we cannot tell"
) -> str:
    """The verdict of an interval: `below` when high < 0, `above` when low > 0, else `neither`
    (an interval with nan ends is `neither`)."""
    ok = isinstance(result, dict) and "low" in result and "high" in result
    check(ok, "result", "a dict with keys 'low' and 'high'", repr(result)[:80])
    if result["high"] < 0:
        return below
    if result["low"] > 0:
        return above
    return neither


# ---- two networks over the same images -------------------------------------------------------


def _booleans(values, name: str) -> np.ndarray:
    """values as a 1-D bool array; raises unless it is non-empty and holds only 0/1 values."""
    v = np.asarray(values)
    ok = v.ndim == 1 and v.size > 0 and np.isin(v, (0, 1)).all()
    check(ok, name, "a non-empty 1-D boolean array", f"shape {v.shape}, dtype {v.dtype}")
    return v.astype(bool)


def mcnemar(correct_a, correct_b) -> dict:
    """Exact McNemar test of two networks on the same images (correct_x[i]: x gets image i right).

    Returns {diff: accuracy of a − accuracy of b, p: two-sided binomial p of n10 among the
    n10 + n01 images where they disagree (1.0 when they never do), n10: a right and b wrong,
    n01: a wrong and b right, n: images}.
    """
    a, b = _booleans(correct_a, "correct_a"), _booleans(correct_b, "correct_b")
    _same_length(a, b, "correct_a, correct_b")
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if n10 + n01 == 0 else float(scipy.stats.binomtest(n10, n10 + n01, 0.5).pvalue)
    diff = float(a.mean() - b.mean())
    return {"diff": diff, "p": p, "n10": n10, "n01": n01, "n": len(a)}


# ---- bootstraps ------------------------------------------------------------------------------


def _check_resamples(n_resamples: int) -> None:
    """None; raises unless n_resamples is an integer >= 1."""
    ok = isinstance(n_resamples, (int, np.integer)) and not isinstance(n_resamples, bool)
    check(ok and n_resamples >= 1, "n_resamples", "an integer >= 1", repr(n_resamples))


def _check_seed_arrays(correct) -> list[np.ndarray]:
    """correct as a list of 2-D arrays with one row count; raises otherwise."""
    arrays = [np.asarray(c) for c in correct] if isinstance(correct, (list, tuple)) else []
    ok = len(arrays) >= 1 and all(c.ndim == 2 and c.shape[1] >= 1 for c in arrays)
    ok = ok and len({c.shape[0] for c in arrays}) == 1
    allowed = "a non-empty list of 2-D arrays (conditions × images) with equal row counts"
    check(ok, "correct", allowed, f"shapes {[c.shape for c in arrays]}"[:80])
    return arrays


def two_level_bootstrap(
    correct: Sequence[np.ndarray],
    statistic: Callable[[list[np.ndarray]], float | np.ndarray],
    n_resamples: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """Resample seeds with replacement, then images with replacement within each drawn seed.

    correct[s] is a conditions × images array for seed s (seeds may differ in image count); all
    rows of a drawn seed share its image indices. Returns the draws of statistic(list of the
    resampled arrays), stacked: shape (n_resamples,) or (n_resamples, k) for a statistic of k
    values; the same `seed` gives the same draws.
    """
    arrays = _check_seed_arrays(correct)
    _check_resamples(n_resamples)
    rng = np.random.default_rng(seed)
    n_seeds = len(arrays)
    draws = []
    for _ in range(n_resamples):
        picked = rng.integers(0, n_seeds, n_seeds)
        resampled = [_resample_columns(arrays[s], rng) for s in picked]
        draws.append(np.asarray(statistic(resampled), dtype=float))
    return np.stack(draws)


def _resample_columns(array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """array with its columns (images) drawn with replacement, as many as it has."""
    n_images = array.shape[1]
    return array[:, rng.integers(0, n_images, n_images)]


def percentile_interval(draws, level: float = LEVEL) -> tuple:
    """(low, high): the (1 − level)/2 and (1 + level)/2 quantiles of draws along axis 0 (floats
    for 1-D draws, arrays otherwise)."""
    d = np.asarray(draws, dtype=float)
    check(d.ndim >= 1 and len(d) >= 1, "draws", "a non-empty array", f"shape {d.shape}")
    _check_level(level)
    low, high = np.quantile(d, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return (float(low), float(high)) if d.ndim == 1 else (low, high)


def clustered_bootstrap(
    x,
    y,
    clusters,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = LEVEL,
) -> dict:
    """Bootstrap statistic(x, y) by drawing whole clusters (e.g. experiments) with replacement.

    Returns {estimate: statistic on the data, low, high: the percentile interval at `level` of
    the draws that are not nan (both nan when fewer than half the draws are numbers)}.
    """
    x, y = _vector(x, "x", 2), _vector(y, "y", 2)
    _same_length(x, y, "x, y")
    labels = np.asarray(clusters)
    check(labels.ndim == 1, "clusters", "a 1-D list of labels", f"shape {labels.shape}")
    _same_length(x, labels, "x, clusters")
    _check_resamples(n_resamples)
    _check_level(level)
    members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    check(len(members) >= 2, "clusters", "at least 2 distinct labels", len(members))
    draws = _cluster_draws(x, y, members, statistic, n_resamples, seed)
    estimate = float(statistic(x, y))
    if len(draws) < n_resamples / 2:
        return {"estimate": estimate, "low": math.nan, "high": math.nan}
    low, high = percentile_interval(draws, level)
    return {"estimate": estimate, "low": low, "high": high}


def clustered_correlations(
    measures: dict[str, Sequence[float]],
    y,
    clusters,
    covariates=None,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, dict]:
    """{label: clustered_bootstrap of the Spearman correlation of measures[label] with y}; with
    covariates (n values, or n × k), of the partial Spearman correlation controlling for them
    (each resample draws whole clusters, covariates with their runs)."""
    out = {}
    for label, x in measures.items():
        if covariates is None:
            out[label] = clustered_bootstrap(x, y, clusters, spearman, n_resamples, seed, level)
            continue
        x, z = _vector(x, "measures", 3), np.asarray(covariates, dtype=float)

        def statistic(i, y_i, x=x, z=z):  # i: the resampled runs' indices
            return partial_spearman(x[i.astype(int)], y_i, z[i.astype(int)])

        runs = np.arange(len(x))
        out[label] = clustered_bootstrap(runs, y, clusters, statistic, n_resamples, seed, level)
    return out


def _cluster_draws(x, y, members, statistic, n_resamples: int, seed: int) -> np.ndarray:
    """The statistic's values on n_resamples cluster resamples, nan ones left out."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        idx = np.concatenate([members[c] for c in rng.integers(0, len(members), len(members))])
        draws.append(float(statistic(x[idx], y[idx])))
    draws = np.asarray(draws)
    return draws[~np.isnan(draws)]


# ---- curves over seeds, power ----------------------------------------------------------------


def mean_band(curves, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) per point of seeds × points curves: the mean over seeds and its t
    interval at `level` (sample SD / sqrt(n), n − 1 degrees of freedom); one seed: low = high =
    mean."""
    c = np.asarray(curves, dtype=float)
    ok = c.ndim == 2 and c.size > 0 and bool(np.isfinite(c).all())
    check(ok, "curves", "a non-empty finite 2-D array (seeds × points)", f"shape {c.shape}")
    _check_level(level)
    mean, n = c.mean(axis=0), len(c)
    if n == 1:
        return mean, mean.copy(), mean.copy()
    half = scipy.stats.t.ppf((1 + level) / 2, n - 1) * c.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_power(effect: float, sd: float, n: int, level: float = LEVEL) -> float:
    """The probability that a two-sided paired t-test at `level` on n pairs rejects, when the
    differences have mean `effect` and SD `sd` (noncentral t, n − 1 degrees of freedom)."""
    df = n - 1
    crit = scipy.stats.t.ppf((1 + level) / 2, df)
    nc = effect * math.sqrt(n) / sd
    # P(T < −crit) as P(T' > crit) with T' of noncentrality −nc: nct.cdf's far tail is nan
    return float(scipy.stats.nct.sf(crit, df, nc) + scipy.stats.nct.sf(crit, df, -nc))


def min_detectable(sd: float, n: int, level: float = LEVEL, power: float = 0.8) -> float:
    """The smallest true mean paired difference that a two-sided paired t-test at `level` on n
    pairs detects with probability `power`, given the SD of the differences (in its units)."""
    check(isinstance(n, (int, np.integer)) and n >= 2, "n", "an integer >= 2", repr(n))
    ok = is_real(sd) and sd > 0
    check(ok, "sd", "a finite number > 0", repr(sd))
    _check_level(level)
    _check_level(power, "power")
    check(power > 1 - level, "power", f"above 1 − level = {1 - level:g}", repr(power))
    high = sd
    while paired_power(high, sd, n, level) < power:
        high *= 2
    return float(scipy.optimize.brentq(lambda e: paired_power(e, sd, n, level) - power, 0.0, high))


# ---- correlations and fits -------------------------------------------------------------------


def _residual(values: np.ndarray, design: np.ndarray) -> np.ndarray:
    """values minus their least-squares fit on the columns of design."""
    coef = np.linalg.lstsq(design, values, rcond=None)[0]
    return values - design @ coef


def partial_spearman(x, y, covariates) -> float:
    """Spearman correlation of x and y controlling for covariates (n values, or n × k): the
    Pearson correlation of the ranks of x and of y after each is regressed on the covariates'
    ranks and an intercept; nan when a residual is constant."""
    x, y = _vector(x, "x", 3), _vector(y, "y", 3)
    _same_length(x, y, "x, y")
    z = np.asarray(covariates, dtype=float)
    z = z[:, None] if z.ndim == 1 else z
    ok = z.ndim == 2 and len(z) == len(x) and len(x) >= z.shape[1] + 3
    ok = ok and bool(np.isfinite(z).all())
    check(ok, "covariates", "finite, n values or n × k with n >= k + 3", f"shape {z.shape}")
    design = np.column_stack([np.ones(len(x)), scipy.stats.rankdata(z, axis=0)])
    rx = _residual(scipy.stats.rankdata(x), design)
    ry = _residual(scipy.stats.rankdata(y), design)
    tol = 1e-9 * len(x)
    if np.ptp(rx) <= tol or np.ptp(ry) <= tol:
        return math.nan
    return float(scipy.stats.pearsonr(rx, ry).statistic)


def linear_fit(x, y, level: float = LEVEL) -> dict:
    """Least-squares line y = intercept + slope · x (scipy.stats.linregress).

    Returns {slope, slope_low, slope_high, intercept, intercept_low, intercept_high}: the
    estimates and their t intervals at `level` (standard errors, n − 2 degrees of freedom).
    """
    x, y = _vector(x, "x", 3), _vector(y, "y", 3)
    _same_length(x, y, "x, y")
    check(np.ptp(x) > 0, "x", "not constant", repr(x.tolist())[:80])
    _check_level(level)
    fit = scipy.stats.linregress(x, y)
    q = scipy.stats.t.ppf((1 + level) / 2, len(x) - 2)
    return {
        "slope": float(fit.slope),
        "slope_low": float(fit.slope - q * fit.stderr),
        "slope_high": float(fit.slope + q * fit.stderr),
        "intercept": float(fit.intercept),
        "intercept_low": float(fit.intercept - q * fit.intercept_stderr),
        "intercept_high": float(fit.intercept + q * fit.intercept_stderr),
        "level": level,
    }
