import math

import pytest
import scipy.stats

from lowrank.stats import mean_std, sd_interval, seed_summary, separated, spearman


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


def test_separated_needs_the_intervals_apart():
    assert separated([7, 7, 7], [9, 10, 8]) == -1
    assert separated([9, 10, 8], [7, 7, 7]) == 1
    assert separated([7, 9], [8, 10]) == 0
    assert separated([5], [5]) == 0  # one seed each: equal values overlap
    assert sd_interval([7, 8, 9]) == pytest.approx((7.0, 9.0))
