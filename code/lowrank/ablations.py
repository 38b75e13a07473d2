"""The post's answers from several seeds: needed rank chosen on validation, one record per
trained model, and what each experiment's seeds agree on.

    from lowrank.ablations import needed_rank, run_record
    from lowrank.stats import seed_summary
    r = needed_rank(model, data.val_x, data.val_y)  # smallest r within 0.5 points, on validation
    records = [run_record(model, history, data) for model, history in load_seeds("model0")]
    seed_summary([rec["needed"] for rec in records])    # (mean, std, n)

The needed rank is chosen on the validation split; the test set only reports the accuracy of
the network truncated to that rank. Each record also carries the measures that might predict
the needed rank (effective and stable rank, the largest gap in the leading spectrum), so that
the post can ask which one does.
"""

from collections.abc import Mapping, Sequence
from functools import partial

import torch

from lowrank.checks import check, check_int, is_real
from lowrank.data import Mnist
from lowrank.model import FactorisedEvaluator, MnistFCNet
from lowrank.rank import (
    _effective_rank,
    _stable_rank,
    singular_values,
)  # TODO(lead): public names after the render
from lowrank.sweeps import (
    dense_accuracy,
    truncation_accuracy,
    truncation_correct,
    truncation_divergence,
)

TOLERANCE = 0.005  # half a percentage point of accuracy
SWEEP_RANKS = 100  # every rank up to here is scored; beyond it, bisection
FIRST_WINDOW = 20  # ... the first 20 first: the answer is the same, found sooner


def needed_rank(
    model: MnistFCNet,
    x: torch.Tensor,
    y: torch.Tensor,
    tolerance: float = TOLERANCE,
    max_rank: int = SWEEP_RANKS,
    svd=None,
) -> int:
    """Smallest r whose truncation W_r keeps the accuracy on (x, y) within `tolerance` of the
    uncompressed network's.

    Every r up to max_rank is scored (accuracy need not grow with r); past it, bisection
    between max_rank and min(m, n), where the full rank always qualifies. `svd`:
    torch.linalg.svd(model.W, full_matrices=False), if the caller has it already.
    """
    check(
        is_real(tolerance) and 0 <= tolerance < 1,
        "tolerance",
        "a number in [0, 1)",
        repr(tolerance),
    )
    m, n = model.W.shape
    check_int(max_rank, "max_rank", 1, min(m, n))
    target = dense_accuracy(model, x, y) - tolerance
    U, S, Vh = svd if svd is not None else torch.linalg.svd(model.W.detach(), full_matrices=False)
    for window in sorted({min(FIRST_WINDOW, max_rank), max_rank}):  # most needed ranks are small
        sweep = truncation_accuracy(model, x, y, window, svd=(U, S, Vh))
        hit = next((r for r, acc in enumerate(sweep, 1) if acc >= target), None)
        if hit is not None:
            return hit
    evaluator = FactorisedEvaluator(model, x, y)
    lo, hi = max_rank, min(m, n)  # truncated_svd's factors, sliced from the one SVD
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if evaluator(U[:, :mid] * S[:mid], Vh[:mid])[1] >= target else (mid, hi)
    return hi


def largest_gap(singular_values: torch.Tensor, among: int = 50) -> int:
    """The i ≤ `among` with the largest ratio σ_i / σ_{i+1}: where the leading spectrum breaks."""
    s = torch.as_tensor(singular_values, dtype=torch.float64)
    check(
        s.ndim == 1 and len(s) > among,
        "singular_values",
        f"a vector of more than {among} values",
        f"shape {tuple(s.shape)}",
    )
    ratios = s[:among] / s[1 : among + 1]
    return int(ratios.argmax()) + 1


PROFILE_RANKS = 40  # the truncations every record scores, image by image
FIXED_RANKS = (5, 8, 10, 16)  # where the divergence from the dense network is measured
TOLERANCES = (0.001, 0.002, 0.003, 0.005, 0.01, 0.015, 0.02)  # the tolerance curve's
RELATIVE = 0.25  # the relative tolerance: a quarter of the dense network's validation error
RANDOM_SUBSPACES = 20  # random subspaces the head's share is compared with


def run_record(
    model: MnistFCNet,
    history: Sequence[Mapping],
    data: Mnist,
    tolerance: float = TOLERANCE,
    W0: torch.Tensor | None = None,
) -> dict:
    """One trained model in numbers: its accuracies, its ranks, and its needed rank.

    `data` is the model's own data (restricted to its digits). Keys: val_acc, test_acc (the
    uncompressed net), erank, srank, gap (largest_gap of W's spectrum), needed (chosen on
    validation), needed_relative (at RELATIVE times the dense validation error), needed_test_acc
    (the test accuracy at the needed rank), epochs; per image, which ones the net truncated to
    r = 1 … PROFILE_RANKS gets right (val_correct, test_correct: ranks × images) and the dense
    net (val_dense, test_dense); kl and disagree at FIXED_RANKS (validation); with W0 (W before
    training) head_share, top_share and random_share of the update W − W₀ (lowrank.mechanism),
    the effective ranks of W₀ (initial_erank) and of W − W₀ (update_erank), ‖W − W₀‖₂ / ‖W₀‖₂
    (update_size), and the singular values of W₀, W and W − W₀ (spectra).
    """
    W = model.W.detach()
    U, S, Vh = svd = torch.linalg.svd(W, full_matrices=False)  # truncated_svd's, sliced
    R = min(PROFILE_RANKS, *W.shape)
    rec = {}
    for split in ("val", "test"):
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        with torch.no_grad():
            dense = model(x).argmax(1) == y
        rec[f"{split}_correct"] = truncation_correct(model, x, y, R, svd=svd)
        rec[f"{split}_dense"] = dense
        rec[f"{split}_acc"] = dense.double().mean().item()
    relative = RELATIVE * (1 - rec["val_acc"])
    rec["needed"], rec["needed_relative"] = (
        needed_from(rec["val_correct"], rec["val_dense"], t) for t in (tolerance, relative)
    )
    for key, t in (("needed", tolerance), ("needed_relative", relative)):
        if rec[key] > R:  # beyond the profile: bisection on the whole spectrum
            rec[key] = needed_rank(model, data.val_x, data.val_y, t, svd=svd)
    factors = U[:, : rec["needed"]] * S[: rec["needed"]], Vh[: rec["needed"]]
    rec["needed_test_acc"] = FactorisedEvaluator(model, data.test_x, data.test_y)(*factors)[1]
    divergence = truncation_divergence(model, data.val_x, FIXED_RANKS, svd=svd)
    rec["kl"] = {r: kl for r, (kl, _) in divergence.items()}
    rec["disagree"] = {r: d for r, (_, d) in divergence.items()}
    s = singular_values(W)  # float64, once for the three measures
    rec.update(erank=_effective_rank(s), srank=_stable_rank(s), gap=largest_gap(s))
    rec["epochs"] = len(history)
    if W0 is not None:
        rec.update(update_measures(W, W0, model.fc3.weight.detach()))
        s0, sD = singular_values(W0), singular_values(W - W0)
        rec.update(
            initial_erank=_effective_rank(s0),
            update_erank=_effective_rank(sD),
            update_size=(sD[0] / s0[0]).item(),  # ‖W − W₀‖₂ / ‖W₀‖₂
            spectra={"W_0": s0, "W": s, "update": sD},
        )
    return rec


def update_measures(W: torch.Tensor, W0: torch.Tensor, head: torch.Tensor) -> dict:
    """head_share and top_share of W − W₀ in the head's (C − 1)-dimensional subspace, and
    random_share: its mean share in RANDOM_SUBSPACES random subspaces of that dimension."""
    from lowrank.mechanism import random_share, update_shares

    D, k = W - W0, head.shape[0] - 1
    g = torch.Generator().manual_seed(0)
    draws = [random_share(D, k, g) for _ in range(RANDOM_SUBSPACES)]
    return {**update_shares(W, W0, head), "random_share": sum(draws) / len(draws)}


def needed_from(correct: torch.Tensor, dense: torch.Tensor, tolerance: float) -> int:
    """The smallest r whose row of `correct` (ranks × images) scores within `tolerance` of
    `dense` (images); the number of rows + 1 when none does."""
    target = dense.double().mean() - tolerance
    ok = (correct.double().mean(1) >= target - 1e-12).nonzero()
    return int(ok[0]) + 1 if len(ok) else len(correct) + 1


def tolerance_curve(rec: Mapping, tolerances: Sequence[float] = TOLERANCES) -> list[int]:
    """The needed rank of a record at each tolerance (validation)."""
    return [needed_from(rec["val_correct"], rec["val_dense"], t) for t in tolerances]


def needed_draws(
    rec: Mapping, tolerance: float = TOLERANCE, n_resamples: int = 1000, seed: int = 0
) -> torch.Tensor:
    """The needed rank of a record on bootstrap resamples of its validation images: how much
    of it is evaluation noise. A tensor of n_resamples ranks (ranks + 1 where none is within
    the tolerance)."""
    correct, dense = rec["val_correct"].double(), rec["val_dense"].double()
    n = correct.shape[1]
    g = torch.Generator().manual_seed(seed)
    counts = torch.zeros(n_resamples, n, dtype=torch.float64)
    counts.scatter_add_(
        1, torch.randint(n, (n_resamples, n), generator=g), torch.ones(n_resamples, n).double()
    )
    acc, target = (counts @ correct.T) / n, (counts @ dense) / n - tolerance
    ok = acc >= target[:, None] - 1e-12
    first = torch.where(ok.any(1), ok.double().argmax(1) + 1, len(correct) + 1)
    return first


def layer_params(
    m1: int, n1: int, r1: int | None, m2: int, n2: int, r2: int | None, rest: int
) -> int:
    """Numbers stored by the net with fc1 (m1 x n1) and fc2 (m2 x n2) kept at ranks r1, r2
    (None: dense); `rest` counts everything else (biases, fc3)."""
    stored = lambda m, n, r: m * n if r is None else r * (m + n)  # noqa: E731
    return stored(m1, n1, r1) + stored(m2, n2, r2) + rest


@torch.no_grad()
def whole_net_accuracy(
    model: MnistFCNet,
    x: torch.Tensor,
    y: torch.Tensor,
    ranks1: Sequence[int | None],
    ranks2: Sequence[int | None],
) -> dict:
    """Accuracy on (x, y) with fc1's weight truncated to rank r1 and W (fc2's) to rank r2 by SVD,
    for every pair (None: kept dense), and the numbers the net then stores.

    Returns {(r1, r2): (params, accuracy)}. A truncated layer is applied as its two factors.
    """
    layers = {"fc1": model.fc1.weight.detach(), "fc2": model.W.detach()}
    svd = {name: torch.linalg.svd(A, full_matrices=False) for name, A in layers.items()}

    def apply(name, h, r):  # h A_rᵀ + b, with A_r = U_r Σ_r V_rᵀ kept as factors
        bias = getattr(model, name).bias
        if r is None:
            return h @ layers[name].T + bias
        U, S, Vh = svd[name]
        return (h @ Vh[:r].T * S[:r]) @ U[:, :r].T + bias

    rest = sum(p.numel() for p in model.parameters()) - sum(A.numel() for A in layers.values())
    out = {}
    for r1 in ranks1:
        h = torch.relu(apply("fc1", x, r1))
        for r2 in ranks2:
            z = torch.relu(apply("fc2", h, r2))
            accuracy = (model.fc3(z).argmax(1) == y).double().mean().item()
            out[r1, r2] = (
                layer_params(*layers["fc1"].shape, r1, *layers["fc2"].shape, r2, rest),
                accuracy,
            )
    return out


def pareto_front(points: Mapping) -> list:
    """The keys of `points` ({key: (cost, value)}) that no other point beats: cheaper or as
    cheap, and at least as good, and strictly one of the two. Sorted by cost."""
    front = [
        k
        for k, (c, v) in points.items()
        if not any((c2 <= c and v2 >= v) and (c2 < c or v2 > v) for c2, v2 in points.values())
    ]
    return sorted(front, key=lambda k: points[k][0])


def smallest_within(points: Mapping, reference: float, tolerance: float = TOLERANCE):
    """The key of `points` ({key: (cost, value)}) of least cost whose value is within
    `tolerance` of `reference`; None when none is."""
    ok = [k for k, (_, value) in points.items() if value >= reference - tolerance]
    return min(ok, key=lambda k: points[k][0]) if ok else None


def records_for(name: str, data: Mnist) -> list[dict]:
    """run_record of every reported seed of experiment `name`, each scored on its own digits,
    with the seed added; cached beside the models (a model is loaded, or trained, only for a
    record not yet cached)."""
    from lowrank.analyses import cached
    from lowrank.experiments import config_for, initial_weight, load_or_train, settled_seeds
    from lowrank.train import digits

    def compute(seed):
        model, history = load_or_train(name, seed=seed)
        config = config_for(name, seed)
        W0 = initial_weight(name, seed) if config.rank is None else None
        return run_record(model, history, data.digits(digits(config)), W0=W0)

    images = (len(data.val_y), len(data.test_y))  # scored on all of them, or quick mode's
    return [
        {**cached((name, seed), "record", partial(compute, seed), images=images), "seed": seed}
        for seed in settled_seeds(name)
    ]
