"""lowrank.baselines: storage counts, pruning, the energy rule, and the data-aware truncation's
optimality, on small matrices and small random networks (no MNIST)."""

import copy

import pytest
import torch

from lowrank import FactorisedEvaluator, MnistFCNet, truncated_svd
from lowrank.baselines import (
    baseline_accuracy,
    data_aware_truncation,
    energy_points,
    energy_rank,
    input_second_moment,
    magnitude_prune,
    rank_for_params,
    rank_params,
)


def small_net(seed=0, hidden=40):
    torch.manual_seed(seed)
    return MnistFCNet(hidden=hidden).eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randn(300, 784, generator=g), torch.randint(0, 10, (300,), generator=g)


def gaussian(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def square_root(sigma):
    """Σ^{1/2} by eigh, negative rounding clamped to zero."""
    λ, Q = torch.linalg.eigh(sigma)
    return (Q * λ.clamp(min=0).sqrt()) @ Q.T


def weighted_error(W, U, V, S):
    return torch.linalg.matrix_norm((W - U.double() @ V.double()) @ S).item()


def tail(A, r):
    """(Σ_{i>r} σ_i(A)²)^{1/2}: the Eckart–Young error of A's best rank-r approximation."""
    return torch.linalg.svdvals(A)[r:].square().sum().sqrt().item()


# -- storage counts ---------------------------------------------------------------------------


def test_rank_params_and_its_inverse():
    assert rank_params(1000, 1000, 1) == 2000
    assert rank_params(30, 20, 7) == 350
    assert rank_for_params(1000, 1000, 2000) == 1
    assert rank_for_params(1000, 1000, 5999) == 2
    assert rank_for_params(1000, 1000, 6000) == 3
    assert rank_for_params(1000, 1000, 1) == 1  # at least 1
    assert rank_for_params(30, 20, 10**6) == 20  # at most full rank
    for params in range(1, 2000):
        r = rank_for_params(30, 20, params)
        assert rank_params(30, 20, r) <= params or (r == 1 and params < 50)  # fits
        assert r == 20 or (r + 1) * 50 > params  # the largest that fits


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: rank_params(10, 10, 11), "r"),
        (lambda: rank_params(0, 10, 1), "m"),
        (lambda: rank_for_params(10, 10, 0), "params"),
        (lambda: rank_for_params(10, 10, 2.5), "params"),
        (lambda: magnitude_prune(torch.ones(4, 3), 4), "params"),
        (lambda: magnitude_prune(torch.ones(4), 10), "W"),
        (lambda: energy_rank([3.0, 2.0], 0), "share"),
        (lambda: energy_rank([3.0, 2.0], 1.5), "share"),
        (lambda: energy_rank([0.0, 0.0], 0.5), "singular_values"),
        (lambda: energy_rank([3.0, -1.0], 0.5), "singular_values"),
        (lambda: energy_rank("abc", 0.5), "singular_values"),
    ],
)
def test_bad_arguments_raise_one_line_naming_them(call, name):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(f"{name} must be") and "\n" not in str(info.value)


# -- magnitude pruning ------------------------------------------------------------------------


def test_pruning_at_the_full_sparse_budget_returns_W_unchanged():
    m, n = 30, 20
    W = gaussian(m, n).float()
    pruned, stored = magnitude_prune(W, 2 * m * n + m + 1)
    assert torch.equal(pruned, W) and pruned.dtype == W.dtype
    assert stored == 2 * m * n + m + 1


def test_pruning_keeps_the_largest_entries_within_the_budget():
    m, n = 30, 20
    W = gaussian(m, n)
    for params in [m + 1, m + 2, 100, 333, 800, 1200]:
        pruned, stored = magnitude_prune(W, params)
        kept = pruned != 0
        k = int(kept.sum())
        assert stored == 2 * k + m + 1 <= params < stored + 2  # k as large as fits
        assert torch.equal(pruned[kept], W[kept])
        if 0 < k < m * n:
            assert W[kept].abs().min() >= W[~kept].abs().max()


def test_pruning_breaks_ties_in_row_major_order_and_stores_no_zero():
    W = torch.tensor([[1.0, -1.0, 0.0], [1.0, 2.0, 0.0]])
    pruned, stored = magnitude_prune(W, 2 * 3 + 2 + 1)  # room for 3 entries
    assert torch.equal(pruned, torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, 0.0]]))
    assert stored == 9
    pruned, stored = magnitude_prune(W, 100)  # room for all 6, but only 4 are nonzero
    assert torch.equal(pruned, W) and stored == 2 * 4 + 3


def test_pruning_breaks_many_ties_the_same_way_as_a_sorted_list():
    magnitudes = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    W = magnitudes[torch.arange(120) * 7 % 3] * torch.sign(gaussian(120))  # 40 of each
    W = W.view(12, 10)
    order = sorted(range(120), key=lambda i: (-abs(W.flatten()[i].item()), i))
    for k in [1, 30, 55, 100]:
        pruned, _ = magnitude_prune(W, 2 * k + 13)
        assert (pruned.flatten() != 0).nonzero().flatten().tolist() == sorted(order[:k])


# -- the energy rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "share, rank",
    [(0.5, 1), (9 / 14, 1), (0.65, 2), (0.9, 2), (13 / 14, 2), (0.93, 3), (1.0, 3)],
)
def test_energy_rank_on_hand_cases(share, rank):
    # σ² = 9, 4, 1 of 14: cumulative shares 9/14 ≈ 0.643, 13/14 ≈ 0.929, 1
    assert energy_rank([3.0, 2.0, 1.0], share) == rank
    assert energy_rank(torch.tensor([1.0, 3.0, 0.0, 2.0, 0.0]), share) == rank  # any order


def test_energy_rank_at_share_one_is_the_number_of_nonzero_singular_values():
    σ = torch.cat([gaussian(7).abs() + 0.1, torch.zeros(13, dtype=torch.float64)])
    assert energy_rank(σ[torch.randperm(20, generator=torch.Generator().manual_seed(0))], 1) == 7
    assert energy_rank([5.0, 4.0, 0.0, 0.0], 1.0) == 2


# -- the data-aware truncation ----------------------------------------------------------------


def test_data_aware_truncation_with_identity_moment_is_the_truncated_svd():
    W = gaussian(30, 20).float()
    for r in [1, 5, 20]:
        U, V = data_aware_truncation(W, torch.eye(20), r)
        Ut, Vt = truncated_svd(W, r)
        assert U.shape == (30, r) and V.shape == (r, 20) and U.dtype == V.dtype == torch.float32
        assert torch.allclose(U @ V, Ut @ Vt, atol=1e-5)


def test_data_aware_truncation_is_optimal_in_the_weighted_error():
    m, n = 30, 20
    W = gaussian(m, n)
    X = gaussian(200, n, seed=1) * torch.linspace(0.1, 3.0, n, dtype=torch.float64)
    sigma = X.T @ X / 200  # correlated, unequal scales: far from a multiple of I
    S = square_root(sigma)
    gains = []
    for r in range(1, n + 1):
        U, V = data_aware_truncation(W, sigma, r)
        aware = weighted_error(W, U, V, S)
        plain = weighted_error(W, *truncated_svd(W, r), S)
        assert aware <= plain * (1 + 1e-5) + 1e-4  # float32 factors
        assert aware == pytest.approx(tail(W @ S, r), rel=1e-4, abs=1e-4)
        gains.append(plain - aware)
    assert max(gains) > 0.01 * tail(W @ S, 0)  # the weighting changes the answer


def test_data_aware_truncation_with_a_singular_moment_is_finite_and_optimal():
    m, n = 30, 20
    W = gaussian(m, n)
    X = gaussian(200, n, seed=2)
    X[:, [3, 11, 12]] = 0  # units that never fire: zero rows and columns of Σ_h
    sigma = X.T @ X / 200
    S = square_root(sigma)
    for r in [1, 4, 17, 20]:
        U, V = data_aware_truncation(W, sigma, r)
        assert torch.isfinite(U).all() and torch.isfinite(V).all()
        assert weighted_error(W, U, V, S) == pytest.approx(tail(W @ S, r), rel=1e-4, abs=1e-4)
        assert V[:, [3, 11, 12]].abs().max() <= 1e-6 * V.abs().max()  # columns fed by no unit


@pytest.mark.parametrize(
    "sigma, r",
    [
        (torch.eye(19), 2),
        (torch.diag(torch.tensor([-1.0] + [1.0] * 19)), 2),
        (torch.zeros(20, 20), 2),
        (torch.triu(torch.ones(20, 20)), 2),
        (torch.eye(20), 0),
        (torch.eye(20), 21),
    ],
)
def test_data_aware_truncation_refuses_bad_moments_and_ranks(sigma, r):
    with pytest.raises(ValueError, match=r"^(sigma_h|r) must be"):
        data_aware_truncation(gaussian(30, 20).float(), sigma, r)


# -- statistics of the network ----------------------------------------------------------------


def test_input_second_moment_is_the_mean_of_h_h_transposed():
    torch.manual_seed(0)
    model = MnistFCNet()
    x = torch.randn(250, 784, generator=torch.Generator().manual_seed(1))
    sigma = input_second_moment(model, x, block=100)  # blocks of 100, 100, 50
    assert model.training  # left in its own mode
    with torch.no_grad():
        h = model.eval().before_W(x).double()  # eval: no dropout
    assert sigma.dtype == torch.float64 and sigma.shape == (1000, 1000)
    assert torch.allclose(sigma, h.T @ h / 250, rtol=1e-10, atol=1e-12)
    assert torch.allclose(sigma, sigma.T, rtol=0, atol=1e-12)
    λ = torch.linalg.eigvalsh(sigma)
    assert λ[0] >= -1e-10 * λ[-1]


def test_baseline_accuracy_at_full_rank_reproduces_the_dense_network(images):
    x, y = images
    model = small_net(hidden=40)
    m = n = 40
    full = n * (m + n)
    curves = baseline_accuracy(
        model, x, y, [m + n, 400, full, 2 * m * n + m + 1], input_second_moment(model, x)
    )
    dense = FactorisedEvaluator(model, x, y).dense()[1]
    assert set(curves) == {"truncated SVD", "randomized SVD", "magnitude pruning", "data-aware SVD"}
    for name in ["truncated SVD", "randomized SVD", "data-aware SVD"]:
        stored = [s for s, _ in curves[name]]
        assert stored == [80, 400, full, full]
        assert curves[name][2][1] == pytest.approx(dense, abs=1 / len(y) + 1e-12)
    pruned = curves["magnitude pruning"]
    assert [s for s, _ in pruned][:3] == [79, 399, full - 1]
    assert pruned[3] == (2 * m * n + m + 1, dense)


def test_baseline_accuracy_of_pruning_matches_a_pruned_copy_of_the_model(images):
    x, y = images
    model = small_net(seed=1, hidden=40)
    curves = baseline_accuracy(model, x, y, [300, 1200])
    assert "data-aware SVD" not in curves  # no sigma_h given
    for budget, (stored, accuracy) in zip([300, 1200], curves["magnitude pruning"]):
        copied = copy.deepcopy(model)
        pruned, stored_again = magnitude_prune(model.W.detach(), budget)
        copied.fc2.weight.data = pruned
        assert stored == stored_again <= budget
        assert accuracy == pytest.approx(FactorisedEvaluator(copied, x, y).dense()[1])
    with pytest.raises(ValueError, match="^budgets must be an integer >= 80"):
        baseline_accuracy(model, x, y, [79])


def test_energy_points_truncate_at_the_energy_rank(images):
    x, y = images
    model = small_net(seed=2, hidden=40)
    points = energy_points(model, x, y, shares=(0.5, 0.9, 1.0))
    σ = torch.linalg.svdvals(model.W.detach())
    evaluate = FactorisedEvaluator(model, x, y)
    for share, (r, stored, accuracy) in points.items():
        assert r == energy_rank(σ, share) and stored == 80 * r
        assert accuracy == pytest.approx(evaluate(*truncated_svd(model.W.detach(), r))[1])
    assert points[0.5][0] < points[0.9][0] <= points[1.0][0] == 40
