"""Each verdict of the post, one test per branch, on synthetic measurements."""

import pytest

from lowrank import verdicts as v


@pytest.mark.parametrize(
    "ratio, words",
    [
        (18.3, "18× faster than"),
        (1.2, "1.2× faster than"),
        (9.96, "10× faster than"),
        (1.0, "about as fast as"),
        (0.97, "about as fast as"),
        (0.5, "2.0× slower than"),
    ],
)
def test_times_faster(ratio, words):
    assert v.times_faster(ratio) == words


def test_times_faster_never_understates_a_speed_up():
    # the post's old wording said "no less than" for every speed-up below 1.5
    for ratio in (1.06, 1.3, 1.49):
        assert "faster" in v.times_faster(ratio)


def test_below_bound_all():
    assert v.below_bound([1, 2], [2, 2]) == "All 2 measured errors lie below their bound"


def test_below_bound_some_gives_a_count():
    assert v.below_bound([1, 3, 5], [2, 2, 6]) == "2 of the 3 measured errors lie below their bound"


def test_below_bound_none():
    assert v.below_bound([3], [2]) == "None of the 1 measured errors lies below its bound"


def test_power_iterations_needed():
    assert "not optional" in v.power_iterations_needed(3.0)
    assert "within a factor 1.5" in v.power_iterations_needed(1.2)


PENALTIES = {"model6": "L2", "model10": "L1"}


def test_spectrum_cut_both():
    assert (
        v.spectrum_cut({"model0": 900, "model6": 400, "model10": 100}, "model0", PENALTIES)
        == "Both penalties cut the spectrum off."
    )


def test_spectrum_cut_only_one():
    assert (
        v.spectrum_cut({"model0": 900, "model6": 890, "model10": 100}, "model0", PENALTIES)
        == "Only the L1 penalty (`model10`) cuts the spectrum off at this level."
    )


def test_spectrum_cut_neither():
    assert (
        v.spectrum_cut({"model0": 900, "model6": 899, "model10": 950}, "model0", PENALTIES)
        == "Neither penalty cuts the spectrum off at this level."
    )


def test_erank_fall_reading():
    assert v.erank_fall_reading(800, 810, 500).startswith(
        "Here the effective rank of $W$ did not fall"
    )
    assert "spread over many directions" in v.erank_fall_reading(800, 700, 500)
    assert "concentrated in fewer directions" in v.erank_fall_reading(800, 700, 100)


RANKS = [10, 100, 500, 800]


def test_faster_up_to():
    assert v.faster_up_to(None, RANKS) == "at no rank we timed"
    assert v.faster_up_to(100, RANKS) == "at every rank we timed up to 100 (not at 500)"
    assert v.faster_up_to(800, RANKS) == "at every rank we timed (up to 800)"


def test_break_even_agreement_none():
    assert (
        v.break_even_agreement(500, {1: 100, 64: None}, RANKS)
        == "not the time break-even for any batch size we timed"
    )


def test_break_even_agreement_every():
    assert (
        v.break_even_agreement(500, {1: 500, 64: 500}, RANKS)
        == "also the time break-even for every batch size we timed (to the resolution of the "
        "ranks we timed)"
    )


def test_break_even_agreement_some():
    assert (
        v.break_even_agreement(500, {1: 100, 64: 500, 4096: 500}, RANKS)
        == "the time break-even only for batch sizes 64 and 4096 (to the resolution of the ranks "
        "we timed)"
    )


def test_break_even_agreement_grid_cannot_tell():
    # faster at every timed rank, the last one 500: whether 600 is slower was not measured
    out = v.break_even_agreement(500, {1: 500, 64: 500}, [10, 100, 500])
    assert out.startswith("cannot be compared") and "batch sizes 1 and 64" in out


def test_break_even_agreement_faster_beyond_the_parameter_break_even():
    assert v.break_even_agreement(500, {4096: 800}, RANKS).startswith("not the time break-even")


def test_randomized_gap():
    assert v.randomized_gap(0.05).startswith("as good as")
    assert v.randomized_gap(-0.2).startswith("as good as")
    assert (
        v.randomized_gap(0.31)
        == "up to 0.31 points worse than the exact truncated SVD for the network"
    )


def test_generalisation():
    assert v.generalisation(0.01, 0.06).startswith("below its test loss")
    assert v.generalisation(0.07, 0.06).startswith("not below its test loss")


def result(low, high, p=0.01, diff=None, n=8):
    return dict(
        diff=(low + high) / 2 if diff is None else diff, low=low, high=high, p=p, n=n, level=0.95
    )


def test_dropout_ordering():
    fall = {0.0: [30.0, 31.0], 0.25: [20.0, 21.0], 0.5: [10.0, 11.0]}
    clear = [result(8, 12), result(8, 12)]
    assert v.dropout_ordering(fall, True, clear).endswith(
        "every step significant, and in every single epoch."
    )
    assert v.dropout_ordering(fall, False, clear).endswith("not in every single epoch.")
    unclear = [result(8, 12), result(-1, 12, p=0.3)]
    assert v.dropout_ordering(fall, True, unclear).startswith("On average the lower the dropout")
    assert v.dropout_ordering({0.0: [10.0], 0.25: [20.0], 0.5: [5.0]}, True, clear).startswith(
        "The fall is not"
    )


def test_a_difference_needs_its_interval_and_its_test():
    assert v.decided(result(-2, -0.5)) == -1 and v.decided(result(0.5, 2)) == 1
    assert v.decided(result(-0.5, 2)) == 0  # the interval includes zero
    assert v.decided(result(0.5, 2, p=0.06)) == 0  # the test does not reject
    lower = v.difference(result(-2, -0.5, diff=-1.25), "needed rank")
    assert lower.startswith("a needed rank lower by 1.2") and "95% CI -2.0 to -0.5" in lower
    higher = v.difference(result(0.001, 0.003), "test accuracy", 2, 100, " points")
    assert higher.startswith("a test accuracy higher by 0.20 points") and "8 paired seeds" in higher
    none = v.difference(result(-1, 2, p=0.4, diff=0.5), "needed rank", paired=False)
    assert none.startswith("no difference in needed rank that we can tell (mean difference +0.5")
    assert "8 seeds" in none


def test_ranks_where_names_each_side_and_the_undecided():
    mixed = v.ranks_where(
        {5: result(0.01, 0.02), 10: result(-0.02, -0.01), 20: result(-0.01, 0.01, p=0.5)},
        "fine-tuning",
        "training from scratch",
    )
    assert mixed == (
        "fine-tuning is more accurate at r = 5; training from scratch is more accurate at "
        "r = 10; at r = 20 we cannot tell them apart"
    )
    assert (
        v.ranks_where({5: result(-1, 1, p=0.9)}, "a", "b") == "at r = 5 we cannot tell them apart"
    )


def test_class_fit_reading_branches():
    fit = lambda lo, hi: dict(slope=(lo + hi) / 2, slope_low=lo, slope_high=hi, level=0.95)  # noqa: E731
    assert v.class_fit_reading(fit(0.8, 1.1)).endswith("the slope 1 of $C - 1$ lies within it")
    assert "grows more slowly than $C - 1$" in v.class_fit_reading(fit(0.4, 0.7))
    assert "grows faster than $C - 1$" in v.class_fit_reading(fit(1.2, 1.5))
    assert v.class_fit_reading(fit(-0.3, 0.5)).startswith("We cannot tell whether")
    assert v.class_fit_reading(fit(-0.5, -0.1)).startswith("The needed rank does not grow")


def test_correlation_reading_branches():
    assert v.correlation_reading("erank", 0.5, 0.2, 0.7).endswith("(95% CI +0.20 to +0.70)")
    assert v.correlation_reading("erank", 0.2, -0.1, 0.5).endswith("includes zero")
    assert v.correlation_reading("erank", float("nan"), 0, 0).endswith("undefined (constant)")
    assert "no interval" in v.correlation_reading("erank", 0.3, float("nan"), float("nan"))


def test_noise_share_reading_branches():
    assert v.noise_share_reading(0.25, 1.0).startswith("25% of its variance comes from which")
    assert v.noise_share_reading(2.0, 1.0).startswith("100%")
    assert v.noise_share_reading(0.0, 0.0).startswith("the needed rank is the same")


def test_adaptive_outcome_capped():
    out = v.adaptive_outcome(2, 5, [1.2, 1.3, 1.4], True)
    assert out.startswith("In 2 of the 5 runs") and "better tool" in out


def test_adaptive_outcome_never_stopped():
    out = v.adaptive_outcome(5, 5, [], True)
    assert "never stopped on its own" in out and "better tool" in out


def test_adaptive_outcome_cheap_certificate():
    out = v.adaptive_outcome(0, 3, [1.1, 1.2, 1.3], True)
    assert "as certified" in out and "costs little" in out


def test_adaptive_outcome_uncertified_and_large_overshoot():
    out = v.adaptive_outcome(0, 3, [1.1, 2.0], False)
    assert "not always below the tolerance" in out and "better tool" in out


def test_erank_against_baseline_and_the_papers_direction():
    assert v.erank_against_baseline(1.25) == "a factor of 1.25 lower"
    assert v.erank_against_baseline(1.0) == "the same"
    assert v.erank_against_baseline(0.8) == "1.25 times higher"
    assert v.galanti_direction(1.1) == "This is in the direction the paper predicts"
    assert v.galanti_direction(1.0) == "This is not the direction the paper predicts"


def test_l1_effect():
    assert v.l1_effect(6.0).startswith("This reduces the effective rank by a factor of 6.0")
    assert v.l1_effect(0.5).startswith("This does not reduce the effective rank: it is 2.0 times")


def test_erank_rises():
    assert v.erank_rises({"a": [], "b": []}).startswith("falls in every epoch")
    assert (
        v.erank_rises({"a": [3], "b": [], "c": [2, 5]})
        == "does not fall in every epoch: for a it rises in epoch 3; "
        "for c it rises in epochs 2 and 5"
    )


def test_overparameterised():
    assert v.overparameterised(50).startswith("The models are over-parameterised")
    assert v.overparameterised(1.5) == "Compression buys little here"


def test_more_accurate_after_truncation():
    assert v.more_accurate_after_truncation({"a": [], "b": []}, {}).startswith("no model")
    assert (
        v.more_accurate_after_truncation({"a": [20], "b": []}, {"a": 3.0})
        == "a is more accurate at rank 20 of the sweep, by at most 3 of the test images"
    )


def test_randomized_beats_exact():
    assert v.randomized_beats_exact([]).startswith(
        "The approximation without power iterations is never"
    )
    out = v.randomized_beats_exact([("model6", 5), ("model10", 20)])
    assert "at rank 5 of model6 and rank 20 of model10" in out


# Verdicts from several seeds


def test_gap_positions_branches():
    assert v.gap_positions([10, 10, 10]) == "at i = 10 for every seed"
    assert v.gap_positions([10]) == "at i = 10"
    assert v.gap_positions([9, 10, 9]) == "at i = 9 for 2 seeds and i = 10 for 1 seed"


def test_whole_net_choice_branches():
    assert v.whole_net_choice(None, 0, 10, "", "", 0.5).startswith("No pair of the grid")
    text = v.whole_net_choice((100, None), 500, 1000, "97.00 ± 0.10", "98.00 ± 0.10", 0.56)
    assert "first layer at rank 100 and $W$ at full rank: 500 numbers, 50.0%" in text
    assert "at most 56%" in text


def test_bulk_reading_branches():
    assert v.bulk_reading(1.45).startswith("a broad bulk like the random start's, grown")
    assert v.bulk_reading(1.05).startswith("the random start's bulk, carried along")
    assert v.bulk_reading(0.5).startswith("a bulk smaller")


def test_relative_change_branches():
    assert v.relative_change(731.7, 613.9) == "16% lower"
    assert v.relative_change(8.0, 8.4) == "5% higher"
    assert v.relative_change(8.0, 8.01) == "unchanged"


def test_passes_to_reach_names_the_fewest_passes_and_the_quickest():
    runs = {
        "block Krylov": [(2, 2.0, 0.001), (4, 1.05, 0.004), (6, 1.01, 0.006)],
        "subspace iteration": [(2, 2.0, 0.001), (4, 1.2, 0.002), (6, 1.08, 0.003)],
        "single pass": [(1, 3.0, 0.001)],
    }
    text = v.passes_to_reach(runs)
    assert text == (
        "Coming within 10% of $\\sigma_{k+1}$: block Krylov after 4 passes (4.0 ms) and "
        "subspace iteration after 6 passes (3.0 ms); single pass not in the passes shown. "
        "The quickest there is subspace iteration."
    )


def test_passes_to_reach_names_every_method_tied_for_quickest():
    runs = {"a": [(2, 1.05, 0.002)], "b": [(4, 1.02, 0.002)]}
    assert v.passes_to_reach(runs) == (
        "Coming within 10% of $\\sigma_{k+1}$: a after 2 passes (2.0 ms) and b after 4 passes "
        "(2.0 ms). a and b are equally quick there."
    )


def test_passes_to_reach_with_one_or_no_method_there():
    runs = {"a": [(1, 1.05, 0.002)], "b": [(2, 1.5, 0.001)]}
    assert v.passes_to_reach(runs) == (
        "Coming within 10% of $\\sigma_{k+1}$: a after 1 pass (2.0 ms); b not in the passes shown."
    )
    assert v.passes_to_reach(runs, within=1.01) == (
        "None of the methods shown comes within 1% of $\\sigma_{k+1}$."
    )


def test_signed_difference_stars_only_a_decided_difference():
    assert v.signed_difference(result(0.001, 0.003), 2, 100) == "+0.20 [+0.10, +0.30]*"
    assert v.signed_difference(result(-0.001, 0.003, p=0.3), 2, 100) == "+0.10 [-0.10, +0.30]"


def test_power_reading_branches():
    assert "detects a difference of 1.3 in needed rank and of 0.12 points" in v.power_reading(
        1.26, 0.12, 8, 8
    )
    assert "cannot be estimated" in v.power_reading(0.0, 0.1, 8, 8)


def test_grid_position_names_the_end_or_the_inside():
    assert v.grid_position(0, 7).startswith("the weakest of its grid: validation would need")
    assert v.grid_position(6, 7).startswith("the strongest of its grid: validation would need")
    for i in range(1, 6):
        assert v.grid_position(i, 7).startswith("inside its grid: the weaker and the stronger")
