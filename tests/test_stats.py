import math

import numpy as np
import pytest
import scipy.stats

from lowrank.stats import (
    LEVEL,
    clustered_bootstrap,
    clustered_correlations,
    direction,
    linear_fit,
    mcnemar,
    mean_band,
    mean_std,
    min_detectable,
    paired,
    paired_power,
    partial_spearman,
    percentile_interval,
    seed_summary,
    spearman,
    two_level_bootstrap,
    unpaired,
)


def test_spearman_agrees_with_scipy_including_ties():
    a = [3, 1, 4, 1, 5, 9, 2, 6]
    b = [2, 7, 1, 8, 2, 8, 1, 8]
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a, b).statistic)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_seed_summary_and_its_text():
    mean, std, n = seed_summary([7, 8, 9])
    assert (mean, std, n) == (8.0, 1.0, 3)
    assert seed_summary([5]) == (5.0, 0.0, 1)
    assert mean_std([7, 8, 9]) == "8.0 ± 1.0" and mean_std([0.98], digits=2, scale=100) == "98.00"
    with pytest.raises(ValueError, match="^values must be a non-empty list of finite numbers"):
        seed_summary([])


def test_the_sd_rule_is_gone():
    import lowrank.stats

    assert not hasattr(lowrank.stats, "separated") and not hasattr(lowrank.stats, "sd_interval")
    assert LEVEL == 0.95


# ---- paired ----------------------------------------------------------------------------------


def test_paired_exact_cases():
    # differences 1, 2, 3: mean 2, sd 1, t interval 2 ± t(0.975, 2) / sqrt(3); of the 8 sign
    # patterns only +++ and --- reach |mean| 2, so p = 2/8
    r = paired([2, 4, 6], [1, 2, 3])
    half = scipy.stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert r["diff"] == pytest.approx(2.0) and r["n"] == 3 and r["level"] == 0.95
    assert (r["low"], r["high"]) == pytest.approx((2 - half, 2 + half))
    assert r["p"] == pytest.approx(0.25)
    # 8 seeds all in one direction: the smallest exact two-sided p, 2/2**8
    assert paired(np.arange(8) + 1.0, np.zeros(8))["p"] == pytest.approx(2 / 256)


def test_paired_equal_differences_give_a_point():
    r = paired([3, 4, 5], [1, 2, 3])
    assert r["diff"] == r["low"] == r["high"] == 2.0 and r["p"] == 0.25
    r = paired([1, 2, 3], [1, 2, 3])
    assert r["diff"] == r["low"] == r["high"] == 0.0 and r["p"] == 1.0


def test_paired_is_antisymmetric():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=8), rng.normal(size=8)
    ab, ba = paired(a, b), paired(b, a)
    assert ab["diff"] == pytest.approx(-ba["diff"]) and ab["p"] == pytest.approx(ba["p"])
    assert (ab["low"], ab["high"]) == pytest.approx((-ba["high"], -ba["low"]))


def test_paired_interval_covers_the_true_difference_at_its_level():
    # a seed effect shared by both conditions (large) plus noise: pairing removes the seed
    rng = np.random.default_rng(2)
    hits, hits_90 = 0, 0
    for _ in range(400):
        seed_effect = rng.normal(0, 5, 8)
        a = seed_effect + 0.3 + rng.normal(0, 1, 8)
        b = seed_effect + rng.normal(0, 1, 8)
        r, r90 = paired(a, b), paired(a, b, level=0.9)
        hits += r["low"] <= 0.3 <= r["high"]
        hits_90 += r90["low"] <= 0.3 <= r90["high"]
    assert 0.92 <= hits / 400 <= 0.98 and 0.86 <= hits_90 / 400 <= 0.94


def test_paired_rejects_bad_input():
    with pytest.raises(ValueError, match="^a, b must be of equal length, got lengths 3 and 2$"):
        paired([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="^a must be a 1-D list of at least 2 finite numbers"):
        paired([1], [2])
    with pytest.raises(ValueError, match="^b must be a 1-D list of at least 2 finite numbers"):
        paired([1, 2], [2, math.nan])
    with pytest.raises(ValueError, match="^level must be a number strictly between 0 and 1"):
        paired([1, 2], [2, 3], level=95)


# ---- unpaired --------------------------------------------------------------------------------


def test_unpaired_is_welch_and_a_permutation_test():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 9.0]
    r = unpaired(a, b)
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)  # Welch–Satterthwaite
    half = scipy.stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert r["diff"] == pytest.approx(2.5 - 5.0) and r["n"] == (4, 3)
    assert (r["low"], r["high"]) == pytest.approx((-2.5 - half, -2.5 + half))
    assert r == unpaired(a, b)  # a fixed generator: the same p every time
    # groups far apart: no relabelling reaches the observed difference, p = 2/(9999 + 1)
    assert unpaired(np.arange(8.0), np.arange(8.0) + 100)["p"] == pytest.approx(2e-4)


def test_unpaired_symmetry_and_constant_groups():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=8), rng.normal(0.5, 2, size=6)
    ab, ba = unpaired(a, b), unpaired(b, a)
    assert ab["diff"] == pytest.approx(-ba["diff"])
    assert (ab["low"], ab["high"]) == pytest.approx((-ba["high"], -ba["low"]))
    assert abs(ab["p"] - ba["p"]) < 0.03  # the same test on 9,999 other relabellings
    r = unpaired([2, 2, 2], [1, 1])
    assert r["diff"] == r["low"] == r["high"] == 1.0
    assert unpaired([1, 1], [1, 1, 1])["p"] == 1.0


def test_unpaired_interval_covers_with_unequal_spreads():
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(80):  # few: each call also runs 9,999 relabellings (~70 ms)
        r = unpaired(rng.normal(1, 0.5, 8), rng.normal(0, 3, 8))
        hits += r["low"] <= 1 <= r["high"]
    assert 0.88 <= hits / 80 <= 1.0  # a 68% interval would cover ~54 of 80


def test_unpaired_rejects_bad_input():
    with pytest.raises(ValueError, match="^b must be a 1-D list of at least 2 finite numbers"):
        unpaired([1, 2], [[1, 2]])
    with pytest.raises(ValueError, match="^level must be a number strictly between 0 and 1"):
        unpaired([1, 2], [1, 2], level=1.0)


# ---- direction -------------------------------------------------------------------------------


def test_direction_reads_the_interval():
    assert direction({"low": -2, "high": -0.1}) == "lower"
    assert direction({"low": 0.1, "high": 2}) == "higher"
    assert direction({"low": -1, "high": 1}) == "we cannot tell"
    assert direction({"low": 0.0, "high": 1}) == "we cannot tell"  # touching 0 is not clear
    assert direction({"low": math.nan, "high": math.nan}) == "we cannot tell"
    words = {"below": "worse", "above": "better", "neither": "tied"}
    assert direction(paired([2, 3, 4, 5], [1, 1, 2, 2]), **words) == "better"
    with pytest.raises(ValueError, match="^result must be a dict with keys 'low' and 'high'"):
        direction({"diff": 1.0})


# ---- McNemar ---------------------------------------------------------------------------------


def test_mcnemar_exact_cases():
    a = np.array([1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
    b = np.array([1, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    r = mcnemar(a, b)  # n10 = 5, n01 = 1: p = 2 · P(Bin(6, ½) <= 1) = 2 · 7/64
    assert (r["n10"], r["n01"], r["n"]) == (5, 1, 8)
    assert r["p"] == pytest.approx(14 / 64) and r["diff"] == pytest.approx(0.75 - 0.25)
    assert mcnemar(a, a)["p"] == 1.0 and mcnemar(a, a)["diff"] == 0.0
    ba = mcnemar(b, a)
    assert ba["p"] == pytest.approx(r["p"]) and ba["diff"] == pytest.approx(-r["diff"])
    assert mcnemar([1, 1, 1, 1, 1], [0, 0, 0, 0, 0])["p"] == pytest.approx(2 / 32)


def test_mcnemar_rejects_bad_input():
    with pytest.raises(ValueError, match="^correct_b must be a non-empty 1-D boolean array"):
        mcnemar([True, False], [0.5, 1])
    with pytest.raises(ValueError, match="^correct_a, correct_b must be of equal length"):
        mcnemar([True, False], [True])


# ---- bootstraps ------------------------------------------------------------------------------


def mean_of_rows(arrays):
    return np.concatenate(arrays, axis=1).mean(axis=1)


def test_two_level_bootstrap_shapes_and_determinism():
    rng = np.random.default_rng(5)
    correct = [rng.random((3, n)) < 0.9 for n in (50, 60, 70)]
    draws = two_level_bootstrap(correct, mean_of_rows, n_resamples=100, seed=1)
    assert draws.shape == (100, 3)
    assert np.array_equal(draws, two_level_bootstrap(correct, mean_of_rows, 100, seed=1))
    assert not np.array_equal(draws, two_level_bootstrap(correct, mean_of_rows, 100, seed=2))
    one = two_level_bootstrap(correct, lambda arrays: float(mean_of_rows(arrays)[0]), 100)
    assert one.shape == (100,)


def test_two_level_bootstrap_keeps_seeds_whole_and_rows_aligned():
    # seed s holds only the value s, and its two rows are equal image by image
    seen = []

    def statistic(arrays):
        for arr in arrays:
            assert arr.shape[1] == {0: 4, 1: 5, 2: 6}[int(arr[0, 0])]  # its own image count
            assert np.ptp(arr[0]) == 0 and np.array_equal(arr[0], arr[1] - 10)
        seen.append(sorted(int(arr[0, 0]) for arr in arrays))
        return 0.0

    correct = [np.array([[s] * n, [s + 10] * n]) for s, n in enumerate((4, 5, 6))]
    two_level_bootstrap(correct, statistic, n_resamples=200)
    assert all(len(s) == 3 for s in seen) and any(len(set(s)) < 3 for s in seen)


def test_two_level_bootstrap_variances_of_each_level():
    # seeds only: images constant within a seed, so the draws are means of resampled seeds,
    # with the plug-in variance var(v) / S
    v = np.array([0.90, 0.92, 0.95, 0.97])
    correct = [np.full((1, 100), x) for x in v]
    draws = two_level_bootstrap(correct, lambda a: np.mean([x.mean() for x in a]), 2000)
    assert draws.var() == pytest.approx(v.var() / 4, rel=0.1)
    # images only: every seed the same array, so each drawn seed adds p(1 − p)/n
    images = (np.arange(1000) % 10 != 0)[None, :]  # p = 0.9
    draws = two_level_bootstrap([images] * 4, lambda a: np.mean([x.mean() for x in a]), 2000)
    assert draws.var() == pytest.approx(0.09 / 4000, rel=0.1)


def test_percentile_interval():
    draws = np.arange(1001.0)
    assert percentile_interval(draws) == pytest.approx((25.0, 975.0))
    assert percentile_interval(draws, level=0.5) == pytest.approx((250.0, 750.0))
    low, high = percentile_interval(np.column_stack([draws, -draws]))
    assert low == pytest.approx([25, -975]) and high == pytest.approx([975, -25])
    with pytest.raises(ValueError, match="^level must be a number strictly between 0 and 1"):
        percentile_interval(draws, level=0)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="^correct must be a non-empty list of 2-D arrays"):
        two_level_bootstrap([np.zeros((2, 3)), np.zeros((3, 3))], mean_of_rows)
    with pytest.raises(ValueError, match="^n_resamples must be an integer >= 1, got 0$"):
        two_level_bootstrap([np.zeros((2, 3))], mean_of_rows, n_resamples=0)


def pearson(x, y):
    return np.corrcoef(x, y)[0, 1] if np.ptp(x) > 0 and np.ptp(y) > 0 else math.nan


def test_clustered_bootstrap_resamples_whole_clusters():
    # y = x within every cluster plus an offset per cluster: each draw is a union of clusters
    x = np.tile([0.0, 1.0, 2.0], 5)
    y = x + np.repeat([0.0, 10, 20, 30, 40], 3)
    clusters = np.repeat(list("abcde"), 3)

    def slope(xs, ys):
        n = len(xs)
        assert n % 3 == 0  # clusters come whole
        return np.polyfit(xs, ys, 1)[0]

    r = clustered_bootstrap(x, y, clusters, slope, n_resamples=200)
    assert r["estimate"] == pytest.approx(1.0)
    r = clustered_bootstrap(x, y, clusters, pearson, n_resamples=200, seed=3)
    assert r == clustered_bootstrap(x, y, clusters, pearson, n_resamples=200, seed=3)
    assert r["low"] <= r["estimate"] <= r["high"]


def test_clustered_bootstrap_drops_nan_draws():
    # two clusters, one constant in x: a quarter of the draws take it twice and are nan
    x, y = np.array([1.0, 1.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    clusters = [0, 0, 0, 1, 1]
    r = clustered_bootstrap(x, y, clusters, pearson, n_resamples=400)
    assert not math.isnan(r["low"])
    # a statistic that is a number only when all 5 clusters are drawn (5!/5**5, about 4%)
    x = np.arange(5.0)

    def all_drawn(xs, ys):
        return xs.mean() if len(np.unique(xs)) == 5 else math.nan

    r = clustered_bootstrap(x, x, x, all_drawn, n_resamples=400)
    assert math.isnan(r["low"]) and math.isnan(r["high"]) and r["estimate"] == 2.0
    with pytest.raises(ValueError, match="^clusters must be at least 2 distinct labels"):
        clustered_bootstrap(x, x, [0] * 5, pearson)


# ---- curves and power ------------------------------------------------------------------------


def test_mean_band_exact_and_one_seed():
    mean, low, high = mean_band([[1.0, 2.0], [3.0, 4.0]])  # sd sqrt(2), se 1, 1 df
    q = scipy.stats.t.ppf(0.975, 1)
    assert mean == pytest.approx([2, 3])
    assert low == pytest.approx([2 - q, 3 - q]) and high == pytest.approx([2 + q, 3 + q])
    mean, low, high = mean_band([[1.0, 5.0]])
    assert np.array_equal(mean, low) and np.array_equal(mean, high)
    with pytest.raises(ValueError, match="^curves must be a non-empty finite 2-D array"):
        mean_band([1.0, 2.0])


def test_mean_band_covers_the_true_curve():
    rng = np.random.default_rng(6)
    truth = np.array([0.5, 0.8, 0.9])
    curves = truth + rng.normal(0, 0.05, size=(2000, 8, 3))
    bands = [mean_band(c) for c in curves]
    covered = np.array([(lo <= truth) & (truth <= hi) for _, lo, hi in bands])
    assert np.all((covered.mean(axis=0) > 0.93) & (covered.mean(axis=0) < 0.97))


def test_min_detectable_has_the_asked_power():
    for n, power in ((8, 0.8), (3, 0.5), (30, 0.9)):
        effect = min_detectable(2.0, n, power=power)
        assert paired_power(effect, 2.0, n) == pytest.approx(power, abs=1e-8)
    # a simulation of paired t-tests at that effect rejects at the asked rate
    effect = min_detectable(1.0, 8)
    d = np.random.default_rng(7).normal(effect, 1.0, size=(20000, 8))
    rejected = scipy.stats.ttest_1samp(d, 0, axis=1).pvalue < 0.05
    assert rejected.mean() == pytest.approx(0.8, abs=0.015)


def test_min_detectable_scales_with_sd_and_one_over_root_n():
    assert min_detectable(3.0, 8) == pytest.approx(3 * min_detectable(1.0, 8))
    assert min_detectable(1.0, 50) / min_detectable(1.0, 200) == pytest.approx(2, rel=0.02)
    # large n: the normal approximation (z_0.975 + z_0.8) / sqrt(n)
    z = scipy.stats.norm.ppf(0.975) + scipy.stats.norm.ppf(0.8)
    assert min_detectable(1.0, 10_000) == pytest.approx(z / 100, rel=1e-3)
    assert min_detectable(1.0, 8, level=0.99) > min_detectable(1.0, 8)


def test_min_detectable_rejects_bad_input():
    with pytest.raises(ValueError, match="^n must be an integer >= 2, got 1$"):
        min_detectable(1.0, 1)
    with pytest.raises(ValueError, match="^sd must be a finite number > 0, got 0.0$"):
        min_detectable(0.0, 8)
    with pytest.raises(ValueError, match="^power must be above 1 − level"):
        min_detectable(1.0, 8, power=0.01)


# ---- correlations and fits -------------------------------------------------------------------


def test_partial_spearman_removes_a_confounder():
    rng = np.random.default_rng(8)
    z = rng.normal(size=2000)
    x, y = z + 0.5 * rng.normal(size=2000), z + 0.5 * rng.normal(size=2000)
    assert spearman(x, y) > 0.7
    assert abs(partial_spearman(x, y, z)) < 0.05
    # and keeps a real link: y also driven by x
    y2 = y + x
    assert partial_spearman(x, y2, z) > 0.3


def test_partial_spearman_exact_cases():
    rng = np.random.default_rng(9)
    x, y, z = rng.normal(size=(3, 30))
    # one covariate: the partial correlation formula on Spearman correlations
    rxy, rxz, ryz = spearman(x, y), spearman(x, z), spearman(y, z)
    expected = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    assert partial_spearman(x, y, z) == pytest.approx(expected)
    assert partial_spearman(y, x, z) == pytest.approx(expected)  # symmetric
    # a constant covariate controls for nothing
    assert partial_spearman(x, y, np.ones(30)) == pytest.approx(spearman(x, y))
    # two covariates, one of them x itself: nothing of x is left
    assert math.isnan(partial_spearman(x, y, np.column_stack([z, x])))
    with pytest.raises(ValueError, match="^covariates must be finite, n values or n × k"):
        partial_spearman(x, y, z[:10])


def test_linear_fit_exact_and_coverage():
    r = linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
    assert (r["slope"], r["slope_low"], r["slope_high"]) == pytest.approx((2, 2, 2))
    assert (r["intercept"], r["intercept_low"], r["intercept_high"]) == pytest.approx((1, 1, 1))
    rng = np.random.default_rng(10)
    x = np.linspace(0, 1, 10)
    slopes = intercepts = 0
    for _ in range(1000):
        r = linear_fit(x, 0.5 + 2 * x + rng.normal(0, 0.3, 10))
        slopes += r["slope_low"] <= 2 <= r["slope_high"]
        intercepts += r["intercept_low"] <= 0.5 <= r["intercept_high"]
    assert 0.93 <= slopes / 1000 <= 0.97 and 0.93 <= intercepts / 1000 <= 0.97
    with pytest.raises(ValueError, match="^x must be not constant"):
        linear_fit([1, 1, 1], [1, 2, 3])


def test_clustered_correlations_are_the_clustered_bootstraps_of_each_measure():
    rng = np.random.default_rng(10)
    clusters = np.repeat(np.arange(10), 3)
    z = np.repeat(rng.normal(size=10), 3)  # a confounder constant within each cluster
    y = z + 0.2 * rng.normal(size=30)
    measures = {"x": z + 0.2 * rng.normal(size=30), "noise": rng.normal(size=30)}
    plain = clustered_correlations(measures, y, clusters, n_resamples=300)
    assert plain["x"] == clustered_bootstrap(measures["x"], y, clusters, spearman, 300)
    assert plain["x"]["low"] > 0.5  # x tracks y through z
    held = clustered_correlations(measures, y, clusters, z, n_resamples=300)
    for label, x in measures.items():
        assert held[label]["estimate"] == pytest.approx(partial_spearman(x, y, z))
        assert held[label]["low"] <= held[label]["estimate"] <= held[label]["high"]
    assert held["x"]["estimate"] < plain["x"]["estimate"] - 0.3  # z held fixed: less is left
    with pytest.raises(ValueError, match="^measures must be a 1-D list of at least 3"):
        clustered_correlations({"x": [1.0, 2.0]}, [1.0, 2.0], [0, 1], [0.0, 1.0])
