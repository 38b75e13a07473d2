"""Baselines for compressing W at a budget of stored numbers.

    from lowrank.baselines import baseline_accuracy, input_second_moment
    sigma_h = input_second_moment(model, train_x)           # E[h hᵀ] over the training images
    curves = baseline_accuracy(model, test_x, test_y, [20_000, 100_000], sigma_h=sigma_h)
    curves["magnitude pruning"]                              # [(stored, accuracy), ...]

The methods are compared at equal numbers stored for the m×n weight W (its bias, the same m
numbers for every method, is left out):

- rank r factors U (m×r), V (r×n): r (m + n) numbers (truncated, randomized and data-aware SVD);
- k kept entries in compressed sparse row form: k values, k column indices and m + 1 row
  pointers, 2k + m + 1 numbers, an index counting as one number (magnitude pruning).

At the same budget pruning keeps about (m + n)/2 entries per unit of rank.
"""

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from lowrank.checks import check, check_int, check_matrix, is_real
from lowrank.model import FactorisedEvaluator, MnistFCNet, evaluation
from lowrank.randomized import flip_signs, randomized_low_rank

IMAGE_BLOCK = 1000  # images per block in input_second_moment (a 1000 x 1000 float64 h: 8 MB)
RSVD_SEED = 0  # the generator seed of baseline_accuracy's default randomized SVD


def rank_params(m: int, n: int, r: int) -> int:
    """r (m + n): the numbers stored by rank-r factors U (m×r), V (r×n) of an m×n matrix."""
    check_int(m, "m", 1)
    check_int(n, "n", 1)
    check_int(r, "r", 1, min(m, n))
    return r * (m + n)


def rank_for_params(m: int, n: int, params: int) -> int:
    """The largest rank r ≤ min(m, n) with r (m + n) ≤ params, and 1 where even rank 1 does
    not fit (params < m + n)."""
    check_int(m, "m", 1)
    check_int(n, "n", 1)
    check_int(params, "params", 1)
    return max(1, min(params // (m + n), m, n))


def magnitude_prune(W: torch.Tensor, params: int) -> tuple[torch.Tensor, int]:
    """(W_pruned, stored): W with all but its k entries of largest |w| set to zero, and
    stored = 2k + m + 1, the numbers its compressed sparse row form holds.

    That form stores each kept entry's value and its column index (an index counts as one
    number) and m + 1 row pointers. k is the largest count with 2k + m + 1 ≤ params, capped
    at W's nonzero entries (a stored zero would buy nothing): at params ≥ 2mn + m + 1 W comes
    back unchanged. Among entries of equal |w| the first in row-major order is kept first.
    """
    m, n = check_matrix(W, "W")
    check_int(params, "params", m + 1)
    magnitude = W.detach().abs().flatten()
    k = min((params - m - 1) // 2, int(torch.count_nonzero(magnitude)))
    # stable: ties keep their row-major order, so the same W and budget keep the same entries
    order = torch.sort(magnitude, descending=True, stable=True).indices
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    keep[order[:k]] = True
    return torch.where(keep.view(m, n), W.detach(), 0.0), 2 * k + m + 1


def energy_rank(singular_values, share: float) -> int:
    """The smallest r with Σ_{i≤r} σ_i² ≥ share · Σ_i σ_i², the σ_i sorted in decreasing
    order (in float64): the rank that keeps that share of ‖W‖_F²."""
    σ = _singular_values(singular_values)
    check(is_real(share) and 0 < share <= 1, "share", "a number in (0, 1]", repr(share))
    energy = σ.sort(descending=True).values.square().cumsum(0)
    return int((energy < share * energy[-1]).sum()) + 1


def _singular_values(values) -> torch.Tensor:
    """values as a float64 vector of singular values: finite, ≥ 0, not all zero."""
    ok = not isinstance(values, (str, bytes))
    try:
        σ = torch.as_tensor(values, dtype=torch.float64).cpu().flatten() if ok else None
    except (TypeError, ValueError, RuntimeError):
        σ = None
    allowed = "finite numbers >= 0, not all zero"
    check(σ is not None and σ.numel() > 0, "singular_values", allowed, type(values).__name__)
    ok = bool(torch.isfinite(σ).all() & (σ >= 0).all() & (σ > 0).any())
    check(ok, "singular_values", allowed, f"values in [{σ.min().item()}, {σ.max().item()}]")
    return σ


@torch.no_grad()
def input_second_moment(
    model: MnistFCNet, x: torch.Tensor, block: int = IMAGE_BLOCK
) -> torch.Tensor:
    """Σ_h = (1/N) Σ_images h hᵀ (n×n, float64), h = model.before_W(x) in eval mode (no
    dropout): the second moment of W's input, summed over blocks of `block` images."""
    check(isinstance(model, MnistFCNet), "model", "a MnistFCNet", type(model).__name__)
    _, width = check_matrix(x, "x")
    inputs = model.fc1.in_features
    check(width == inputs, "x", f"of width {inputs}", f"width {width}")
    check_int(block, "block", 1)
    n = model.fc1.out_features
    total = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    with evaluation(model):
        for start in range(0, len(x), block):
            h = model.before_W(x[start : start + block]).double()
            total += h.T @ h
    return total / len(x)


def data_aware_truncation(
    W: torch.Tensor, sigma_h: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """U (m×r), V (r×n), in W's dtype, with UV the rank-r matrix closest to W in the error it
    makes on inputs h of second moment Σ_h: E‖(W − UV) h‖² = ‖(W − UV) S‖_F², S = Σ_h^{1/2}.

    With Σ_h = Q Λ Qᵀ, S = Q Λ^{1/2} Qᵀ and S⁺ its pseudo-inverse, UV = [W S]_r S⁺, where
    [·]_r is the truncated SVD: (UV) S = [W S]_r, the best rank-r approximation of W S
    (Eckart–Young), so the error is that of W S's tail, (Σ_{i>r} σ_i(W S)²)^{1/2}.
    Eigenvalues below n·ε·λ_max (numpy's matrix_rank rule, ε of Σ_h's dtype), such as those of
    ReLU units that never fire, count as zero: UV then ignores the columns of W they feed.
    Σ_h = I gives the plain truncated SVD. The same idea as the activation-aware SVD of
    Yuan et al. (2023), "ASVD", arXiv:2312.05821, and the whitening of SVD-LLM, Wang et al.
    (2024), arXiv:2403.07378. Cost: an n×n eigendecomposition and an m×n SVD in float64.
    """
    m, n = check_matrix(W, "W")
    check_int(r, "r", 1, min(m, n))
    A, s, B = _whitened_svd(W, sigma_h)
    return _leading(A, s, B, r, W.dtype)


def _whitened_svd(W, sigma_h):
    """(A, s, B), float64, with [W S]_r S⁺ = A_r diag(s_r) B_r for every r: the SVD
    W S = A diag(s) Vᵀ, and B = Vᵀ S⁺."""
    _, n = check_matrix(W, "W")
    S, S_pinv = _square_root_and_pinv(sigma_h, n)
    A, s, Vt = flip_signs(*torch.linalg.svd(W.detach().double() @ S, full_matrices=False))
    return A, s, Vt @ S_pinv


def _square_root_and_pinv(sigma_h, n):
    """S = Σ_h^{1/2} and its pseudo-inverse S⁺ (float64), eigenvalues below n·ε·λ_max as zero;
    a ValueError unless Σ_h is an n×n symmetric positive semi-definite nonzero matrix."""
    shape = check_matrix(sigma_h, "sigma_h")
    check(shape == (n, n), "sigma_h", f"of shape ({n}, {n}) like W's input", tuple(shape))
    ε = torch.finfo(sigma_h.dtype).eps
    Σ = sigma_h.detach().double()
    scale = Σ.abs().max().item()
    asymmetry = (Σ - Σ.T).abs().max().item()
    check(asymmetry <= ε**0.5 * scale, "sigma_h", "symmetric", f"|Σ - Σᵀ| up to {asymmetry:.3g}")
    λ, Q = torch.linalg.eigh((Σ + Σ.T) / 2)
    tolerance = n * ε * λ[-1].item()
    check(λ[-1] > 0, "sigma_h", "nonzero and positive semi-definite", "no positive eigenvalue")
    psd = λ[0].item() >= -tolerance
    check(psd, "sigma_h", "positive semi-definite", f"an eigenvalue {λ[0].item():.3g}")
    kept = λ > tolerance
    root = torch.where(kept, λ.clamp(min=0).sqrt(), 0.0)
    inverse_root = torch.where(kept, 1 / root.where(kept, 1.0), 0.0)
    return (Q * root) @ Q.T, (Q * inverse_root) @ Q.T


def _leading(A, s, B, r, dtype):
    """U = A_r diag(s_r) (m×r) and V = B_r (r×n), in `dtype`."""
    return (A[:, :r] * s[:r]).to(dtype).contiguous(), B[:r].to(dtype).contiguous()


def seeded_rsvd(W: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """U, V from randomized_low_rank(W, rank) (oversampling 10, 2 power iterations) with a
    generator seeded RSVD_SEED for every call: the same W and rank give the same factors."""
    generator = torch.Generator(device=W.device).manual_seed(RSVD_SEED)
    return randomized_low_rank(W, rank, generator=generator)


@torch.no_grad()
def baseline_accuracy(
    model: MnistFCNet,
    x: torch.Tensor,
    y: torch.Tensor,
    budgets: Iterable[int],
    sigma_h: torch.Tensor | None = None,
    rsvd: Callable | None = None,
) -> dict[str, list[tuple[int, float]]]:
    """For each method, [(stored, accuracy on (x, y)), ...], one pair per budget of numbers
    stored for W (each budget at least m + n, so that rank 1 fits).

    "truncated SVD" and "randomized SVD" (rsvd(W, r) -> (U, V), seeded_rsvd by default) at
    r = rank_for_params(m, n, budget); "magnitude pruning" (magnitude_prune(W, budget));
    "data-aware SVD" (data_aware_truncation at the same r), only when `sigma_h` is given: it
    should come from the training images (input_second_moment), not from (x, y). W's input
    h = model.before_W(x) is computed once for every method and budget.
    """
    evaluate = FactorisedEvaluator(model, x, y)  # checks model, x, y; holds h
    W = model.W.detach()
    m, n = W.shape
    budgets = list(budgets)
    check(len(budgets) > 0, "budgets", "a non-empty list of integers", "none")
    for budget in budgets:
        check_int(budget, "budgets", m + n)
    rsvd = seeded_rsvd if rsvd is None else rsvd
    check(callable(rsvd), "rsvd", "None or a function (W, rank) -> (U, V)", type(rsvd).__name__)
    ranks = [rank_for_params(m, n, budget) for budget in budgets]
    plain = flip_signs(*torch.linalg.svd(W, full_matrices=False))
    curves = {
        "truncated SVD": [_scored(evaluate, _leading(*plain, r, W.dtype)) for r in ranks],
        "randomized SVD": [_scored(evaluate, rsvd(W, r)) for r in ranks],
        "magnitude pruning": [_pruned_point(model, evaluate, W, b) for b in budgets],
    }
    if sigma_h is not None:
        whitened = _whitened_svd(W, sigma_h)
        curves["data-aware SVD"] = [
            _scored(evaluate, _leading(*whitened, r, W.dtype)) for r in ranks
        ]
    return curves


def _scored(evaluate, factors):
    """(r (m + n), accuracy) of the network with W replaced by U V."""
    U, V = factors
    return U.shape[1] * (U.shape[0] + V.shape[1]), evaluate(U, V)[1]


def _pruned_point(model, evaluate, W, budget):
    """(stored, accuracy) of the network with W magnitude-pruned to `budget` numbers."""
    pruned, stored = magnitude_prune(W, budget)
    with evaluation(model):
        out = model.after_W(F.linear(evaluate.h, pruned, model.fc2.bias))
    return stored, (out.argmax(1) == evaluate.y).sum().item() / len(evaluate.y)


@torch.no_grad()
def energy_points(
    model: MnistFCNet, x: torch.Tensor, y: torch.Tensor, shares: Iterable[float] = (0.9, 0.99)
) -> dict[float, tuple[int, int, float]]:
    """{share: (r, r (m + n), accuracy on (x, y) with W truncated to rank r)} for
    r = energy_rank(σ(W), share): the rank rule "keep that share of ‖W‖_F²"."""
    evaluate = FactorisedEvaluator(model, x, y)
    W = model.W.detach()
    m, n = W.shape
    shares = list(shares)
    check(len(shares) > 0, "shares", "a non-empty list of numbers in (0, 1]", "none")
    svd = flip_signs(*torch.linalg.svd(W, full_matrices=False))
    points = {}
    for share in shares:
        r = energy_rank(svd[1], share)
        points[share] = (r, rank_params(m, n, r), evaluate(*_leading(*svd, r, W.dtype))[1])
    return points
