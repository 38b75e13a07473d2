"""Needed rank, records over seeds and whole-net truncation, on small synthetic networks."""

import pytest
import torch

from lowrank.ablations import (
    largest_gap,
    needed_rank,
    pareto_front,
    smallest_within,
    whole_net_accuracy,
)
from lowrank.model import FactorisedEvaluator, MnistFCNet
from lowrank.randomized import truncated_svd


def net_with_rank(k, hidden=60, seed=0):
    """A small net whose W has rank k exactly, and inputs labelled by its own predictions."""
    torch.manual_seed(seed)
    net = MnistFCNet(hidden=hidden).eval()
    with torch.no_grad():
        U, V = torch.randn(hidden, k), torch.randn(k, hidden)
        net.fc2.weight.copy_(U @ V / hidden)
    x = torch.randn(800, 784)
    with torch.no_grad():
        y = net(x).argmax(1)
    return net, x, y


def accuracy_at(net, x, y, r):
    return FactorisedEvaluator(net, x, y)(*truncated_svd(net.W.detach(), r))[1]


@pytest.mark.parametrize("k", [3, 8])
def test_an_exactly_rank_k_W_needs_at_most_rank_k(k):
    net, x, y = net_with_rank(k)
    assert needed_rank(net, x, y, tolerance=0.0, max_rank=20) <= k


def test_needed_rank_is_the_smallest_rank_within_the_tolerance():
    net, x, y = net_with_rank(12)
    r = needed_rank(net, x, y, tolerance=0.02, max_rank=30)
    target = 1.0 - 0.02  # the labels are the net's own predictions: dense accuracy 1
    assert accuracy_at(net, x, y, r) >= target
    assert all(accuracy_at(net, x, y, s) < target for s in range(1, r))


def test_needed_rank_falls_as_the_tolerance_grows():
    net, x, y = net_with_rank(12)
    ranks = [needed_rank(net, x, y, tolerance=t, max_rank=30) for t in (0.0, 0.01, 0.05, 0.2)]
    assert ranks == sorted(ranks, reverse=True)


def test_past_the_sweep_bisection_finds_a_rank_that_qualifies():
    net, x, y = net_with_rank(12)
    r = needed_rank(net, x, y, tolerance=0.0, max_rank=2)
    assert 2 < r <= 12 and accuracy_at(net, x, y, r) == 1.0
    assert accuracy_at(net, x, y, r - 1) < 1.0 or r - 1 == 2


@pytest.mark.parametrize("tolerance", [-0.1, 1.0, float("nan"), True])
def test_bad_tolerance_is_one_line(tolerance):
    net, x, y = net_with_rank(3)
    with pytest.raises(ValueError, match=r"^tolerance must be a number in \[0, 1\), got "):
        needed_rank(net, x, y, tolerance=tolerance)


def test_largest_gap_finds_the_break_in_the_spectrum():
    s = torch.cat([torch.linspace(10, 8, 10), torch.linspace(1, 0.5, 90)])
    assert largest_gap(s) == 10
    with pytest.raises(
        ValueError, match="^singular_values must be a vector of more than 50 values"
    ):
        largest_gap(torch.ones(20))


def test_whole_net_truncation_matches_the_dense_net_and_the_evaluator():
    net, x, y = net_with_rank(20)
    grid = whole_net_accuracy(net, x, y, [None, 10], [None, 5])
    params, accuracy = grid[None, None]
    assert accuracy == 1.0 and params == sum(p.numel() for p in net.parameters())
    _, acc_fc2 = grid[None, 5]
    assert acc_fc2 == pytest.approx(accuracy_at(net, x, y, 5))
    hidden = net.W.shape[0]
    assert (
        grid[10, 5][0]
        == params - 784 * hidden - hidden * hidden + 10 * (784 + hidden) + 5 * 2 * hidden
    )


def test_pareto_front_keeps_only_the_unbeaten():
    points = {"a": (1, 0.5), "b": (2, 0.9), "c": (3, 0.8), "d": (2, 0.9), "e": (4, 0.95)}
    assert pareto_front(points) == ["a", "b", "d", "e"]


def test_smallest_within_picks_the_cheapest_good_enough_point():
    points = {"a": (10, 0.90), "b": (20, 0.976), "c": (30, 0.99), "d": (40, 0.97)}
    assert smallest_within(points, 0.98) == "b"
    assert smallest_within(points, 0.98, tolerance=0.0) == "c"
    assert smallest_within(points, 0.995, tolerance=0.0) is None


def test_needed_from_reads_the_smallest_rank_within_the_tolerance():
    from lowrank.ablations import needed_from

    dense = torch.tensor([True] * 8 + [False] * 2)  # 80%
    correct = torch.stack([torch.tensor([True] * k + [False] * (10 - k)) for k in (5, 7, 8, 9)])
    assert needed_from(correct, dense, 0.0) == 3
    assert needed_from(correct, dense, 0.1) == 2  # 70% is within 10 points
    assert needed_from(correct[:2], dense, 0.0) == 3  # none within: rows + 1


def test_needed_draws_resample_the_images_and_agree_with_the_point_estimate_when_clear():
    from lowrank.ablations import needed_draws

    n = 2000
    dense = torch.ones(n, dtype=torch.bool)
    clear = torch.stack([torch.arange(n) < k for k in (n // 2, n - 1, n)])  # 50%, ~100%, 100%
    rec = {"val_correct": clear, "val_dense": dense}
    draws = needed_draws(rec, tolerance=0.01, n_resamples=200)
    assert draws.shape == (200,) and set(draws.tolist()) == {2}
    # a rank right at the tolerance: resampling the images moves it
    edge = torch.stack([torch.arange(n) < n * 0.5, torch.arange(n) < n * 0.99, dense])
    noisy = needed_draws({"val_correct": edge, "val_dense": dense}, 0.01, 400)
    assert set(noisy.tolist()) == {2, 3}
    assert torch.equal(noisy, needed_draws({"val_correct": edge, "val_dense": dense}, 0.01, 400))


def test_the_record_counts_the_update_in_the_heads_subspace():
    from lowrank.ablations import update_measures

    torch.manual_seed(0)
    head = torch.randn(4, 50)
    W0 = torch.randn(50, 50)
    v = torch.randn(4, 30)
    v -= v.mean(0)
    W = W0 + head.T @ v @ torch.randn(30, 50)
    out = update_measures(W, W0, head)
    assert out["head_share"] == pytest.approx(1.0, abs=1e-5)
    assert out["random_share"] < 0.3  # 3 of 50 dimensions: 0.06 on average


def test_the_record_measures_the_update_against_the_start():
    from lowrank.ablations import run_record
    from lowrank.data import Mnist
    from lowrank.rank import effective_rank

    net, x, y = net_with_rank(5)
    W = net.W.detach()
    W0 = W + 0.1 * torch.randn(W.shape, generator=torch.Generator().manual_seed(1))
    data = Mnist(x[:400], y[:400], x[:400], y[:400], x[400:], y[400:], 0.0, 1.0)
    rec = run_record(net, [{}], data, W0=W0)
    assert rec["initial_erank"] == pytest.approx(effective_rank(W0))
    assert rec["update_erank"] == pytest.approx(effective_rank(W - W0))
    size = torch.linalg.matrix_norm(W - W0, ord=2) / torch.linalg.matrix_norm(W0, ord=2)
    assert rec["update_size"] == pytest.approx(size.item(), rel=1e-5)
    assert torch.equal(rec["spectra"]["W"], torch.linalg.svdvals(W.double()))
    assert "spectra" not in run_record(net, [{}], data)  # no start, no update
