"""The sentences the post chooses from its measurements, one small function per verdict.

    from lowrank.verdicts import times_faster
    times_faster(18.3)        # '18× faster than'
    times_faster(1.2)         # '1.2× faster than' (never "no less than" for a real speed-up)

Every function returns Markdown text that is true for every input it accepts: a verdict the
numbers cannot support is not written, and each branch has a unit test (tests/test_verdicts.py).
The post's cells compute the numbers; these functions only choose the words.
"""

from collections.abc import Mapping, Sequence


def join(words: Sequence[str], sep: str = ", ") -> str:
    """'a', 'a and b', 'a, b and c' (with sep="; ": 'a; b; and c' for clauses with commas)."""
    words = [str(w) for w in words]
    if len(words) <= 2:
        return " and ".join(words)
    last = " and " if sep == ", " else sep.rstrip() + " and "
    return sep.join(words[:-1]) + last + words[-1]


_join = join


def grid_position(index: int, size: int) -> str:
    """Where the chosen value lies in a grid of `size` values: at an end, or inside."""
    if index == 0:
        return "the weakest of its grid: validation would need a weaker one to turn down"
    if index == size - 1:
        return "the strongest of its grid: validation would need a stronger one to turn down"
    return "inside its grid: the weaker and the stronger values on either side score no higher"


def _factor(x: float) -> str:
    """A ratio as the post prints it: two significant digits below 10, whole numbers above."""
    return f"{x:.0f}" if x >= 9.95 else f"{x:.1f}"


def times_faster(ratio: float, tie: float = 1.05) -> str:
    """How the method compares with a reference taking `ratio` times as long: 'N× faster than'.

    Within a factor `tie` either way the two count as equally fast.
    """
    if ratio >= tie:
        return f"{_factor(ratio)}× faster than"
    if ratio > 1 / tie:
        return "about as fast as"
    return f"{_factor(1 / ratio)}× slower than"


def below_bound(errors: Sequence[float], bounds: Sequence[float]) -> str:
    """How many measured errors lie below their bound, as a count (a bound on the mean allows
    single draws above it)."""
    below = sum(e <= b for e, b in zip(errors, bounds, strict=True))
    if below == len(errors):
        return f"All {len(errors)} measured errors lie below their bound"
    if below == 0:
        return f"None of the {len(errors)} measured errors lies below its bound"
    return f"{below} of the {len(errors)} measured errors lie below their bound"


def power_iterations_needed(ratio_q0: float, threshold: float = 1.5) -> str:
    """Whether the plain range finder's error, `ratio_q0` times the optimum, calls for q > 0."""
    if ratio_q0 > threshold:
        return "For a spectrum as flat as this one, the power iterations are not optional."
    return (
        f"On this spectrum even the plain range finder is within a factor {threshold:g} "
        "of the optimum."
    )


def spectrum_cut(
    counts: Mapping[str, int], baseline: str, penalties: Mapping[str, str], fraction: float = 0.9
) -> str:
    """Which penalised models keep fewer than `fraction` of the baseline's singular values above
    the threshold. `penalties` maps a model's name to its penalty's name ("L2")."""
    cut = [name for name in penalties if counts[name] < fraction * counts[baseline]]
    if not cut:
        return (
            "Neither penalty cuts the spectrum off at this level."
            if len(penalties) == 2
            else "No penalty cuts the spectrum off at this level."
        )
    if len(cut) == len(penalties):
        return (
            "Both penalties cut the spectrum off."
            if len(penalties) == 2
            else "Every penalty cuts the spectrum off."
        )
    named = _join(f"the {penalties[name]} penalty (`{name}`)" for name in cut)
    return f"Only {named} {'cuts' if len(cut) == 1 else 'cut'} the spectrum off at this level."


def erank_fall_reading(initial: float, final: float, update: float) -> str:
    """What a change of the effective rank from `initial` (random W₀) to `final` says, given
    the effective rank `update` of the learned update W − W₀ by itself."""
    if final >= initial:
        return "Here the effective rank of $W$ did not fall below that of the random start."
    if update >= 0.5 * initial:
        return (
            "So the fall does not mean that training finds a low-rank $W$: the update is "
            "itself spread over many directions (its effective rank is at least half that "
            "of $W_0$). What falls is the evenness of the spectrum, as the update's leading "
            "directions grow against the random bulk."
        )
    return (
        "The update is concentrated in fewer directions than the random start (its effective "
        "rank is less than half that of $W_0$), and the fall of the effective rank of $W$ "
        "reflects that concentration, diluted by $W_0$, which is still part of $W$."
    )


def faster_up_to(break_even: int | None, ranks: Sequence[int]) -> str:
    """Where the factorisation was faster, from `time_break_even`'s answer over timed `ranks`."""
    if break_even is None:
        return "at no rank we timed"
    if break_even == ranks[-1]:
        return f"at every rank we timed (up to {break_even})"
    later = ranks[ranks.index(break_even) + 1]
    return f"at every rank we timed up to {break_even} (not at {later})"


def break_even_agreement(
    parameter: int, by_batch: Mapping[int, int | None], ranks: Sequence[int]
) -> str:
    """Whether the parameter break-even rank is also where the factorisation stops being faster.

    For a batch size it is when the last faster rank timed is `parameter` and the next one is
    slower; when the factorisation was faster at every rank up to a last one below or at
    `parameter`, the grid cannot tell.
    """
    agree, unknown = [], []
    for batch, r in by_batch.items():
        if r == ranks[-1] and ranks[-1] <= parameter:
            unknown.append(batch)
        elif r == parameter:
            agree.append(batch)
    sizes = lambda batches: "batch size" + ("s " if len(batches) > 1 else " ") + _join(batches)
    if unknown:
        return (
            f"cannot be compared with the time break-even for {sizes(unknown)} (faster at "
            "every rank we timed)"
        )
    if not agree:
        return "not the time break-even for any batch size we timed"
    grid = " (to the resolution of the ranks we timed)"
    if len(agree) == len(by_batch):
        return f"also the time break-even for every batch size we timed{grid}"
    return f"the time break-even only for {sizes(agree)}{grid}"


def randomized_gap(gap: float, within: float = 0.1) -> str:
    """The worst mean accuracy loss, in points, of the randomized approximation against the SVD."""
    if gap <= within:
        return (
            f"as good as the exact truncated SVD for the network, within "
            f"{'a tenth of a point' if within == 0.1 else f'{within:g} points'}"
        )
    return f"up to {gap:.2f} points worse than the exact truncated SVD for the network"


def generalisation(train_loss: float, test_loss: float) -> str:
    """The final training loss (eval mode) against the test loss."""
    if train_loss < test_loss:
        return (
            "below its test loss: the network fits the images it was trained on better than "
            "unseen ones, the usual generalisation gap"
        )
    return "not below its test loss: no sign of overfitting"


def dropout_ordering(
    total_fall: Mapping[float, Sequence[float]], per_epoch_holds: bool, steps: Sequence[Mapping]
) -> str:
    """Whether the effective rank falls further the lower the dropout probability, from the
    per-seed falls; `per_epoch_holds`: whether the mean fall is ordered in every epoch too;
    `steps`: paired results (lowrank.stats.paired) of the fall at each lower rate minus the
    next higher one."""
    rates = sorted(total_fall)
    mean = {rate: sum(v) / len(v) for rate, v in total_fall.items()}
    if not all(mean[a] > mean[b] for a, b in zip(rates, rates[1:])):
        return "The fall is not larger for every lower dropout probability."
    epochs = (
        ", and in every single epoch." if per_epoch_holds else ", though not in every single epoch."
    )
    if all(decided(step) > 0 for step in steps):
        return "The lower the dropout, the larger the fall, every step significant" + epochs
    return (
        "On average the lower the dropout, the larger the fall"
        + epochs
        + " With these seeds we cannot tell every step apart from no difference."
    )


def adaptive_outcome(capped: int, runs: int, overshoot: Sequence[float], certified: bool) -> str:
    """What the adaptive range finder did: runs stopped at the cap, and where it stopped by
    itself, its rank against the optimal one and whether the error met the tolerance."""
    parts = []
    if capped:
        parts.append(
            f"In {capped} of the {runs} runs the finder reached the break-even rank "
            "before it could certify the tolerance."
        )
    if overshoot:
        parts.append(
            f"Where it stopped on its own it found {min(overshoot):.1f} to "
            f"{max(overshoot):.1f} times the optimal rank, and its error was "
            + (
                "below the tolerance every time, as certified."
                if certified
                else "not always below the tolerance."
            )
        )
    else:
        parts.append("It never stopped on its own below the break-even rank.")
    if capped or max(overshoot) > 1.5:
        parts.append(
            "When the rank is the quantity we choose, as it is for compression, the "
            "fixed-rank range finder with power iterations is the better tool here."
        )
    else:
        parts.append(
            "Here the certificate costs little, and the adaptive finder is a good way "
            "to choose the rank from a tolerance."
        )
    return " ".join(parts)


def erank_against_baseline(factor: float) -> str:
    """A model's effective rank against the baseline's; `factor` = baseline / model."""
    if factor > 1:
        return f"a factor of {factor:.2f} lower"
    if factor == 1:
        return "the same"
    return f"{1 / factor:.2f} times higher"


def galanti_direction(factor: float) -> str:
    """Whether the L2 model's effective rank (baseline / model = `factor`) moved the way
    Galanti et al. predict, i.e. down."""
    return (
        "This is in the direction the paper predicts"
        if factor > 1
        else "This is not the direction the paper predicts"
    )


def l1_effect(factor: float) -> str:
    """What the L1 penalty did to the effective rank; `factor` = baseline / model."""
    if factor > 1:
        return (
            f"This reduces the effective rank by a factor of {factor:.1f} with respect to "
            "the baseline"
        )
    return (
        f"This does not reduce the effective rank: it is {1 / factor:.1f} times that of "
        "the baseline"
    )


def erank_rises(rises: Mapping[str, Sequence[int]]) -> str:
    """Whether the effective rank fell in every epoch; `rises` maps a model to the epochs in
    which it went up."""
    if not any(rises.values()):
        return "falls in every epoch, for every model; no model has an epoch in which it rises"
    return "does not fall in every epoch: " + "; ".join(
        f"for {name} it rises in epoch{'s' if len(e) > 1 else ''} {_join(e)}"
        for name, e in rises.items()
        if e
    )


def overparameterised(ratio: float) -> str:
    """What the compression factor `ratio` at the needed rank says about the baseline."""
    if ratio >= 2:
        return "The models are over-parameterised in the sense that matters here"
    return "Compression buys little here"


def more_accurate_after_truncation(
    better: Mapping[str, Sequence[int]], gain_images: Mapping[str, float]
) -> str:
    """Where truncation made a model more accurate than uncompressed: ranks, and the largest
    gain in test images."""
    if not any(better.values()):
        return "no model is more accurate at any rank of the sweep than uncompressed"
    return "; ".join(
        f"{name} is more accurate at rank{'s' if len(r) > 1 else ''} {_join(r)} of the sweep, "
        f"by at most {gain_images[name]:.0f} of the test images"
        for name, r in better.items()
        if r
    )


def randomized_beats_exact(reverse: Sequence[tuple[str, int]]) -> str:
    """Where the randomized approximation without power iterations was on average more
    accurate than the exact truncated SVD (by over half a point)."""
    if not reverse:
        return (
            "The approximation without power iterations is never more accurate than the "
            "exact SVD by more than half a point."
        )
    where = _join([f"rank {r} of {name}" for name, r in reverse])
    return (
        f"The reverse also happens: at {where} the approximation without power iterations "
        "is on average more accurate than the exact truncated SVD by more than half a "
        "point. The best approximation in norm need not be the best one for the network."
    )


# Verdicts from several seeds: a difference is stated only when its confidence interval
# excludes zero and its test rejects no difference at the same level (lowrank.stats); else
# the sentence says that we cannot tell.


def decided(result: Mapping) -> int:
    """-1 (lower) or 1 (higher) when the interval of a − b excludes zero and p < 1 − level;
    0 when the data cannot tell."""
    if result["p"] >= 1 - result["level"]:
        return 0
    return -1 if result["high"] < 0 else 1 if result["low"] > 0 else 0


def _evidence(result: Mapping, digits: int, scale: float, unit: str, paired: bool) -> str:
    lo, hi = scale * result["low"], scale * result["high"]
    seeds = f"{result['n']} {'paired ' if paired else ''}seeds"
    return (
        f"{100 * result['level']:.0f}% CI {lo:+.{digits}f} to {hi:+.{digits}f}{unit}, "
        f"p = {result['p']:.2g}, {seeds}"
    )


def difference(
    result: Mapping,
    quantity: str,
    digits: int = 1,
    scale: float = 1.0,
    unit: str = "",
    paired: bool = True,
) -> str:
    """A difference a − b of `quantity` from lowrank.stats.paired (or unpaired): 'a needed rank
    lower by 1.2 (95% CI …)', or that we cannot tell."""
    d = scale * result["diff"]
    evidence = _evidence(result, digits, scale, unit, paired)
    side = decided(result)
    if side == 0:
        return (
            f"no difference in {quantity} that we can tell (mean difference "
            f"{d:+.{digits}f}{unit}; {evidence})"
        )
    word = "lower" if side < 0 else "higher"
    return f"a {quantity} {word} by {abs(d):.{digits}f}{unit} ({evidence})"


def signed_difference(result: Mapping, digits: int = 1, scale: float = 1.0) -> str:
    """'+0.12 [−0.05, +0.30]' for a table cell, starred when decided() says the difference is
    real."""
    d, lo, hi = (scale * result[k] for k in ("diff", "low", "high"))
    star = "*" if decided(result) else ""
    return f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]{star}"


def power_reading(needed: float, loss_points: float, n: int, rank: int) -> str:
    """The smallest differences the paired design detects (80% power, 5% level), from the
    observed spread of the paired differences; zero spread has no such number."""
    if needed == 0 or loss_points == 0:
        return (
            f"With {n} paired seeds, the paired differences do not vary between seeds here, so "
            "this design's power cannot be estimated from them"
        )
    return (
        f"With {n} paired seeds and the spread observed here, a paired $t$-test at the 5% level "
        f"detects a difference of {needed:.1f} in needed rank and of {loss_points:.2f} points "
        f"of accuracy loss at $r$ = {rank} with probability 0.8; smaller effects may exist "
        "unseen"
    )


def ranks_where(results: Mapping[int, Mapping], better: str, worse: str) -> str:
    """At which ranks `better` beats `worse` (per-rank paired results of better − worse)."""
    up = [r for r, res in results.items() if decided(res) > 0]
    down = [r for r, res in results.items() if decided(res) < 0]
    none = [r for r in results if r not in up and r not in down]
    parts = []
    if up:
        parts.append(f"{better} is more accurate at r = {_join(up)}")
    if down:
        parts.append(f"{worse} is more accurate at r = {_join(down)}")
    if none:
        parts.append(f"at r = {_join(none)} we cannot tell them apart")
    return "; ".join(parts)


def class_fit_reading(fit: Mapping) -> str:
    """The fitted needed rank against C (lowrank.stats.linear_fit) against C − 1's slope 1."""
    slope = (
        f"{fit['slope']:.2f} per added class ({100 * fit['level']:.0f}% CI "
        f"{fit['slope_low']:.2f} to {fit['slope_high']:.2f})"
    )
    if fit["slope_high"] < 1:
        where = "lies above that interval: the needed rank grows more slowly than $C - 1$"
    elif fit["slope_low"] > 1:
        where = "lies below that interval: the needed rank grows faster than $C - 1$"
    else:
        where = "lies within it"
    if fit["slope_high"] <= 0:
        return f"The needed rank does not grow with $C$: its fitted slope is {slope}"
    if fit["slope_low"] <= 0:
        return (
            f"We cannot tell whether the needed rank grows with $C$: its fitted slope is {slope}, "
            f"an interval that includes zero; the slope 1 of $C - 1$ {where.split(':')[0]}"
        )
    return f"The needed rank grows by {slope}; the slope 1 of $C - 1$ {where}"


def correlation_reading(label: str, rho: float, low: float, high: float) -> str:
    """A correlation with its interval, and whether the interval excludes zero."""
    if rho != rho:
        return f"{label}: undefined (constant)"
    text = f"{label}: ρ = {rho:+.2f} (95% CI {low:+.2f} to {high:+.2f})"
    if low != low or high != high:
        return text.split(" (")[0] + " (no interval: too few varied resamples)"
    if low <= 0 <= high:
        return text + ", an interval that includes zero"
    return text


def noise_share_reading(image: float, total: float) -> str:
    """How much of the needed rank's variance is evaluation noise (resampling the images)."""
    if total <= 0:
        return "the needed rank is the same for every seed and every resample of the images"
    share = min(image / total, 1.0)
    return (
        f"{100 * share:.0f}% of its variance comes from which validation images are used "
        f"and {100 * (1 - share):.0f}% from the seed"
    )


def gap_positions(gaps: Sequence[int]) -> str:
    """Where the largest gap of the leading spectrum lies, over seeds: 'at i = 10 for every
    seed' or 'at i = 9 for 3 seeds and i = 10 for 2'."""
    counts = {g: list(gaps).count(g) for g in sorted(set(gaps))}
    if len(counts) == 1:
        return f"at i = {gaps[0]} for every seed" if len(gaps) > 1 else f"at i = {gaps[0]}"
    parts = [
        f"i = {g} for {c} seed{'s' if c > 1 else ''}"
        for g, c in sorted(counts.items(), key=lambda gc: -gc[1])
    ]
    return "at " + _join(parts)


def whole_net_choice(
    best: tuple | None, stored: int, dense: int, accuracy: str, dense_accuracy: str, W_share: float
) -> str:
    """The smallest whole network (first layer at rank best[0], W at best[1]; None: full)
    within half a point on validation, or that there is none on the grid."""
    if best is None:
        return (
            "No pair of the grid keeps the validation accuracy within half a point of the "
            "uncompressed network's (@fig-layers)."
        )
    rank = lambda r: "full rank" if r is None else f"rank {r}"  # noqa: E731
    return (
        f"The smallest network within half a point on validation keeps the first layer at "
        f"{rank(best[0])} and $W$ at {rank(best[1])}: {stored:,} numbers, "
        f"{100 * stored / dense:.1f}% of the uncompressed {dense:,}, at a test accuracy of "
        f"{accuracy}% against {dense_accuracy}%. Truncating $W$ alone can "
        f"remove at most {100 * W_share:.0f}% of the numbers; the first layer holds most of "
        "the rest."
    )


def bulk_reading(ratio: float) -> str:
    """What the median ratio of W's to W₀'s singular values beyond the leading ones says."""
    if ratio > 1.25:
        return (
            "a broad bulk like the random start's, grown by training: the update has a "
            "broad bulk of its own"
        )
    if ratio >= 0.8:
        return "the random start's bulk, carried along nearly unchanged"
    return "a bulk smaller than the random start's: training shrank it"


def relative_change(before: float, after: float) -> str:
    """'43% lower', '5% higher' or 'unchanged' (to the nearest percent)."""
    change = round(100 * (after - before) / before)
    if change == 0:
        return "unchanged"
    return f"{abs(change)}% {'lower' if change < 0 else 'higher'}"


def passes_to_reach(
    runs: Mapping[str, Sequence[tuple[int, float, float]]], within: float = 1.1
) -> str:
    """Which method first comes within `within` × σ_{k+1}, in passes over A and in time.

    `runs` maps a method to its (passes, error / σ_{k+1}, seconds), one per setting. For each
    method the setting with the fewest passes that is within the target counts.
    """
    reached = {}
    for method, settings in runs.items():
        good = [s for s in sorted(settings) if s[1] <= within]
        if good:
            reached[method] = good[0]
    target = f"within {100 * (within - 1):.0f}% of $\\sigma_{{k+1}}$"
    if not reached:
        return f"None of the methods shown comes {target}."
    parts = [
        f"{method} after {p} pass{'es' if p != 1 else ''} ({1e3 * t:.1f} ms)"
        for method, (p, _, t) in sorted(reached.items(), key=lambda item: item[1][0])
    ]
    missed = [method for method in runs if method not in reached]
    text = f"Coming {target}: {_join(parts)}"
    if missed:
        text += f"; {_join(missed)} not in the passes shown"
    text += "."
    if len(reached) > 1:
        best = min(seconds for _, _, seconds in reached.values())
        fastest = [method for method, (_, _, seconds) in reached.items() if seconds == best]
        if len(fastest) == 1:
            text += f" The quickest there is {fastest[0]}."
        else:
            text += f" {_join(fastest)} are equally quick there."
    return text
