"""lowrank.sweeps: the explorers' data, checked against the package's own slow paths."""

import json

import pytest
import torch

from lowrank import FactorisedEvaluator, MnistFCNet, randomized_low_rank, truncated_svd
from lowrank.randomized import (
    frobenius_error,
    hmt_expected_error,
    range_finder,
    spectral_error,
    with_spectrum,
)
from lowrank.sweeps import (
    accuracy_at_ranks,
    explorer_grid,
    passes_and_errors,
    projection_error,
    randomized_accuracy,
    range_error_draws,
    rank_sweep,
    relative_errors,
    truncation_accuracy,
)


def small_net(seed, hidden=40):
    torch.manual_seed(seed)
    return MnistFCNet(hidden=hidden, dropout=0.5).eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randn(300, 784, generator=g), torch.randint(0, 10, (300,), generator=g)


def test_truncation_accuracy_matches_the_evaluator_at_every_rank(images):
    x, y = images
    model = small_net(0)
    evaluate = FactorisedEvaluator(model, x, y)
    fast = truncation_accuracy(model, x, y, max_rank=40)
    slow = [evaluate(*truncated_svd(model.W.detach(), r))[1] for r in range(1, 41)]
    assert fast == pytest.approx(slow, abs=1 / len(y) + 1e-12)  # at most one image, from rounding
    assert sum(f != s for f, s in zip(fast, slow)) <= 2
    # full rank: the uncompressed network
    assert fast[-1] == pytest.approx(evaluate.dense()[1], abs=1 / len(y) + 1e-12)


def test_relative_errors_are_those_of_the_truncated_svd():
    W = torch.randn(30, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    σ = torch.linalg.svdvals(W)
    spectral, frobenius = relative_errors(σ, 20)
    for r in (1, 5, 19):
        U, V = truncated_svd(W, r)
        assert spectral[r - 1] == pytest.approx(spectral_error(W, U, V) / σ[0].item(), rel=1e-10)
        assert frobenius[r - 1] == pytest.approx(
            frobenius_error(W, U, V) / torch.linalg.matrix_norm(W).item(), rel=1e-10
        )
    assert spectral[-1] == frobenius[-1] == 0.0  # r = rank(W): exact
    assert all(a >= b for a, b in zip(frobenius, frobenius[1:]))


def test_rank_sweep_averages_over_seeds_and_lists_every_rank(images):
    x, y = images
    models = [small_net(0), small_net(1)]
    one = [rank_sweep([model], {"test": (x, y)}, max_rank=25) for model in models]
    both = rank_sweep(models, {"test": (x, y)}, max_rank=25)
    assert both["rank"] == list(range(1, 26)) and both["seeds"] == 2 and both["splits"] == ["test"]
    for key in ("test_acc", "spectral", "frobenius"):
        assert len(both[key]) == 25
        mean = [(a + b) / 2 for a, b in zip(one[0][key], one[1][key])]
        assert both[key] == pytest.approx(mean, rel=1e-5)
    assert both["test_dense"] == pytest.approx(
        (one[0]["test_dense"] + one[1]["test_dense"]) / 2, rel=1e-5
    )
    assert both["compression"][0] == pytest.approx(40 * 40 / (1 * 80), rel=1e-6)
    assert both["params"] == [r * 80 for r in range(1, 26)]
    json.dumps(both)  # what ojs_define sends


def test_rank_sweep_keeps_a_column_per_split(images):
    x, y = images
    sweep = rank_sweep([small_net(0)], {"val": (x[:100], y[:100]), "test": (x, y)}, max_rank=3)
    assert sweep["splits"] == ["val", "test"]
    assert len(sweep["val_acc"]) == len(sweep["test_acc"]) == 3


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(models=[]), "models must be a non-empty list"),
        (dict(max_rank=0), r"max_rank must be an integer in \[1, 40\], got 0"),
        (dict(max_rank=41), r"max_rank must be an integer in \[1, 40\], got 41"),
        (dict(splits={}), "splits must be a non-empty dict"),
    ],
)
def test_rank_sweep_rejects_bad_arguments(images, bad, match):
    args = dict(models=[small_net(0)], splits={"test": images}, max_rank=5) | bad
    with pytest.raises(ValueError, match=match):
        rank_sweep(**args)


def test_projection_error_is_the_spectral_norm_of_the_residual():
    g = torch.Generator().manual_seed(2)
    A = torch.randn(80, 60, dtype=torch.float64, generator=g) @ torch.diag(
        torch.logspace(0, -2, 60, dtype=torch.float64)
    )
    svd = torch.linalg.svd(A, full_matrices=False)
    for ℓ in (1, 7, 30):
        Q = range_finder(A, ℓ, generator=g)
        exact = spectral_error(A, Q, Q.T @ A)
        assert projection_error(svd, Q) == pytest.approx(exact, rel=1e-9)
        assert projection_error(svd, Q) >= svd.S[ℓ].item() * (1 - 1e-12)  # Eckart–Young–Mirsky
    # Q spanning the top ℓ left singular vectors: the optimum σ_{ℓ+1}
    assert projection_error(svd, svd.U[:, :7]) == pytest.approx(svd.S[7].item(), rel=1e-9)


def test_range_error_draws_cover_the_grid_and_are_reproducible():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(120, 100, generator=g) @ torch.diag(torch.logspace(0, -1, 100))
    grid = dict(ks=[3, 6], ps=[2, 5], qs=[0, 1], draws=3)
    out = range_error_draws(A, **grid)
    settings = list(zip(out["k"], out["p"], out["q"]))
    assert settings == [(k, p, q) for k in grid["ks"] for p in grid["ps"] for q in grid["qs"]]
    assert all(len(e) == 3 for e in out["errors"])
    assert out == range_error_draws(A, **grid)
    σ = torch.linalg.svdvals(A.double())
    for i, (k, p, q) in enumerate(settings):
        assert out["sigma_k1"][i] == pytest.approx(σ[k].item(), rel=1e-5)
        assert out["sigma_l1"][i] == pytest.approx(σ[k + p].item(), rel=1e-5)
        assert out["bound"][i] == pytest.approx(hmt_expected_error(σ, k, p, q), rel=1e-5)
        assert min(out["errors"][i]) >= out["sigma_l1"][i] * (1 - 1e-5)
    # draw d is the same Gaussian Ω in every setting: q = 0, draw 0 is range_finder with seed 0
    Q = range_finder(A, 3 + 2, power_iters=0, generator=torch.Generator().manual_seed(0))
    assert out["errors"][0][0] == pytest.approx(spectral_error(A, Q, Q.T @ A), rel=1e-5)


def test_range_error_draws_reject_bad_grids():
    A = torch.randn(30, 20)
    with pytest.raises(ValueError, match="draws must be an integer >= 1, got 0"):
        range_error_draws(A, [2], [2], [0], draws=0)
    with pytest.raises(ValueError, match="ks, ps must be with k \\+ p < 20, got 18 \\+ 2"):
        range_error_draws(A, [18], [2], [0], draws=1)


def test_explorer_grid_is_the_issue_grid_in_full_mode_and_smaller_in_quick_mode():
    full, quick = explorer_grid(quick=False), explorer_grid(quick=True)
    assert full["max_rank"] == 100
    assert full["range"] == {
        "ks": [5, 10, 20, 50, 100],
        "ps": [2, 5, 10, 20],
        "qs": [0, 1, 2],
        "draws": 20,
    }
    assert quick["max_rank"] < 100 and quick["range"]["draws"] < 20
    for key in ("ks", "ps", "qs"):
        assert set(quick["range"][key]) <= set(full["range"][key])


def test_truncation_correct_is_the_image_by_image_accuracy(images):
    from lowrank.sweeps import truncation_correct

    x, y = images
    model = small_net(3)
    correct = truncation_correct(model, x, y, max_rank=40)
    assert correct.shape == (40, len(y)) and correct.dtype == torch.bool
    with torch.no_grad():  # full rank: image by image, the uncompressed network
        dense = model(x).argmax(1) == y
    assert (correct[-1] != dense).sum() <= 1
    assert correct.double().mean(1).tolist() == truncation_accuracy(model, x, y, max_rank=40)


def test_truncation_divergence_is_zero_at_full_rank_and_positive_below(images):
    from lowrank.sweeps import truncation_divergence

    x, _ = images
    model = small_net(4)
    out = truncation_divergence(model, x, [1, 40])
    kl1, changed1 = out[1]
    kl40, changed40 = out[40]
    assert kl40 == pytest.approx(0.0, abs=1e-6) and changed40 <= 1 / len(x)
    assert kl1 > 1e-4 and 0 <= changed1 <= 1


def test_accuracy_at_ranks_is_the_evaluator_on_the_truncated_svd(images):
    x, y = images
    model = small_net(1)
    evaluate = FactorisedEvaluator(model, x, y)
    dense, at = accuracy_at_ranks(model, x, y, [1, 5, 40])
    assert dense == evaluate.dense()[1]
    assert at == [evaluate(*truncated_svd(model.W.detach(), r))[1] for r in (1, 5, 40)]
    # at full rank the factors multiply back to W: the uncompressed accuracy, up to rounding
    assert accuracy_at_ranks(model, x, y, [40])[1][0] == pytest.approx(dense, abs=1 / len(y))


def test_randomized_accuracy_recovers_an_exactly_low_rank_W_and_replays_each_draw(images):
    x, y = images
    model = small_net(2)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # W of rank 5 exactly
        model.fc2.weight.copy_(torch.randn(40, 5, generator=g) @ torch.randn(5, 40, generator=g))
    evaluate = FactorisedEvaluator(model, x, y)
    dense = evaluate.dense()[1]
    out = randomized_accuracy(model, x, y, [2, 5, 8], (0, 1), draws=3, oversample=4)
    assert set(out) == {0, 1} and all(len(rows) == 3 and len(rows[0]) == 3 for rows in out.values())
    for q, rows in out.items():
        assert [a for row in rows for a in row[1:]] == pytest.approx([dense] * 6, abs=1 / len(y))
        g = torch.Generator().manual_seed(2)  # draw 2 at rank 2, replayed
        U, V = randomized_low_rank(model.W.detach(), 2, 4, q, generator=g)
        assert rows[2][0] == evaluate(U, V)[1]


def test_passes_and_errors_lie_above_the_optimum_and_vanish_on_an_exactly_low_rank_A():
    σ = 1 / torch.arange(1, 81, dtype=torch.float64)
    A = with_spectrum(σ, 80, 80, generator=torch.Generator().manual_seed(0))
    out = passes_and_errors(A, 5, 4, range(3), 2)
    assert {name: [passes for passes, _ in row] for name, row in out.items()} == {
        "subspace iteration": [2, 4, 6],
        "block Krylov": [2, 4, 6],
        "single pass": [1],
    }
    assert all(e >= σ[5] * (1 - 1e-9) for row in out.values() for _, e in row)  # Eckart–Young
    low = with_spectrum(torch.cat([σ[:5], torch.zeros(75, dtype=torch.float64)]), 80, 80)
    assert all(
        e < 1e-10 for row in passes_and_errors(low, 5, 4, range(2), 1).values() for _, e in row
    )
