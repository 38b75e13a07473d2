"""The data behind the post's two explorers: every rank of a truncation, and many random draws.

    from lowrank.sweeps import rank_sweep, range_error_draws, explorer_grid
    sweep = rank_sweep([model], {"test": (data.test_x, data.test_y)}, max_rank=100)
    draws = range_error_draws(W, **explorer_grid()["range"])

`rank_sweep` evaluates the network with its hidden weight W replaced by the truncated SVD W_r
for every r = 1 … max_rank, averaged over several trained models (seeds) of one experiment.
`range_error_draws` measures ‖A − QQᵀA‖₂ for Q = range_finder(A, k + p, q) over a grid of
(k, p, q) and many Gaussian test matrices. Both return plain dicts of lists, which the post
hands to its Observable JS cells with `ojs_define`.
"""

import math
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, eigsh

from lowrank.experiments import quick_mode
from lowrank.model import FactorisedEvaluator
from lowrank.randomized import (
    block_krylov_svd,
    compression_ratio,
    hmt_expected_error,
    randomized_low_rank,
    randomized_svd,
    range_finder,
    single_pass_svd,
    spectral_error,
)

IMAGE_BLOCK = 500  # images per block in truncation_accuracy (a 500 x 1000 block: 2 MB)
DIGITS = 6  # significant digits kept in the data handed to the page: it stays a few KB


def explorer_grid(quick=None):
    """The explorers' grids: every rank up to 100, and (k, p, q) with 20 draws each.

    Quick mode (the tests) shrinks both, so that a quick render stays quick.
    """
    quick = quick_mode() if quick is None else quick
    if quick:
        return {"max_rank": 30, "range": {"ks": [5, 20], "ps": [2, 10], "qs": [0, 2], "draws": 4}}
    return {
        "max_rank": 100,
        "range": {"ks": [5, 10, 20, 50, 100], "ps": [2, 5, 10, 20], "qs": [0, 1, 2], "draws": 20},
    }


def _check(ok, name, allowed, got):
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {got}")


def _round(x):
    """x to DIGITS significant digits, as a Python float (JSON-friendly)."""
    return float(f"{float(x):.{DIGITS}g}")


def _full_svd(W):
    """The full SVD W = U diag(S) Vᵀ in float64, returned as (U, S, Vᵀ)."""
    return torch.linalg.svd(W.detach().double(), full_matrices=False)


@torch.no_grad()
def truncation_accuracy(model, x, y, max_rank, svd=None):
    """Accuracy on (x, y) of `model` with W replaced by W_r, for r = 1 … max_rank.

    The same numbers as FactorisedEvaluator(model, x, y)(*truncated_svd(W, r))[1] for each r,
    at a fraction of the cost (truncation_correct).
    """
    return truncation_correct(model, x, y, max_rank, svd).double().mean(1).tolist()


@torch.no_grad()
def accuracy_at_ranks(model, x, y, ranks):
    """(accuracy on (x, y) of the uncompressed `model`, [its accuracy with W replaced by W_r
    for each r in ranks]), one SVD of W sliced for every r (truncated_svd's factors)."""
    evaluator = FactorisedEvaluator(model, x, y)
    U, S, Vh = torch.linalg.svd(model.W.detach(), full_matrices=False)
    return evaluator.dense()[1], [evaluator(U[:, :r] * S[:r], Vh[:r])[1] for r in ranks]


@torch.no_grad()
def randomized_accuracy(model, x, y, ranks, power_iters, draws, oversample=10):
    """{q: one row per draw d, one column per r in ranks}: the accuracy on (x, y) of `model`
    with W replaced by randomized_low_rank(W, r, oversample, q), its test matrix drawn from a
    generator seeded d (the same Ω for every q)."""
    evaluate, W = FactorisedEvaluator(model, x, y), model.W.detach()

    def accuracy(r, q, d):
        g = torch.Generator().manual_seed(d)
        return evaluate(*randomized_low_rank(W, r, oversample, q, generator=g))[1]

    return {q: [[accuracy(r, q, d) for r in ranks] for d in range(draws)] for q in power_iters}


@torch.no_grad()
def truncation_correct(model, x, y, max_rank, svd=None):
    """Which images of (x, y) `model` gets right with W replaced by W_r: a boolean
    max_rank × len(y) tensor, row r − 1 for W_r.

    The pre-activation h W_rᵀ = Σ_{i≤r} s_i (h b_i) a_iᵀ of the hidden layer grows by one
    rank-one term per rank, so a sweep over every rank costs one rank-one update, one ReLU and
    one product with the last layer per rank.
    """
    # in W's own dtype, as the post's truncated_svd: the same factors, so the same accuracies
    # (`svd`: torch.linalg.svd(model.W, full_matrices=False), if the caller has it already)
    A, S, Bh = svd if svd is not None else torch.linalg.svd(model.W.detach(), full_matrices=False)
    correct = torch.zeros(max_rank, len(y), dtype=torch.bool)
    # a block of images at a time, so that its pre-activation stays in the processor's cache
    # across the ranks (all images at once: ~2.5x slower, limited by memory traffic)
    for start in range(0, len(x), IMAGE_BLOCK):
        xb, yb = x[start : start + IMAGE_BLOCK], y[start : start + IMAGE_BLOCK]
        h = F.relu(model.fc1(xb))  # dropout is the identity at evaluation
        coefficients = (h @ Bh[:max_rank].T) * S[:max_rank]  # s_i h b_i, one column per i
        z = model.fc2.bias.expand(len(xb), -1).clone()  # the pre-activation at rank 0
        for i in range(max_rank):
            z.addr_(coefficients[:, i], A[:, i])
            correct[i, start : start + len(xb)] = model.fc3(F.relu(z)).argmax(1) == yb
    return correct


@torch.no_grad()
def truncation_divergence(model, x, ranks, svd=None):
    """For each r in ranks: the mean KL divergence KL(p ‖ p_r) of the truncated network's
    predicted distribution p_r from the dense network's p over the images x, and the share
    of images whose predicted class changes. {r: (kl, disagreement)}."""
    A, S, Bh = svd if svd is not None else torch.linalg.svd(model.W.detach(), full_matrices=False)
    h = F.relu(model.fc1(x))
    dense = model.after_W(model.fc2(h)).double()
    out = {}
    for r in ranks:
        z = (h @ Bh[:r].T * S[:r]) @ A[:, :r].T + model.fc2.bias
        log_p_r = model.after_W(z).double()
        kl = (dense.exp() * (dense - log_p_r)).sum(1).mean().item()
        out[r] = (kl, (dense.argmax(1) != log_p_r.argmax(1)).double().mean().item())
    return out


@torch.no_grad()
def dense_accuracy(model, x, y):
    """Accuracy of the uncompressed `model` on (x, y), in evaluation mode."""
    was_training = model.training
    model.eval()
    try:
        return (model(x).argmax(1) == y).sum().item() / len(y)
    finally:
        model.train(was_training)


def relative_errors(singular_values, max_rank):
    """σ_{r+1}/σ_1 and (Σ_{j>r} σ_j²)^{1/2} / ‖W‖_F for r = 1 … max_rank (Eckart–Young–Mirsky:
    the spectral and Frobenius errors of W_r, relative to the norms of W)."""
    σ = torch.as_tensor(singular_values, dtype=torch.float64).sort(descending=True).values
    tail = σ.square().flip(0).cumsum(0).flip(0)  # tail[j] = Σ_{i≥j} σ_i² (0-based)
    r = torch.arange(1, max_rank + 1)
    spectral = torch.where(r < len(σ), σ[r.clamp(max=len(σ) - 1)], 0.0) / σ[0]
    frobenius = torch.where(r < len(σ), tail[r.clamp(max=len(σ) - 1)], 0.0).sqrt() / tail[0].sqrt()
    return spectral.tolist(), frobenius.tolist()


def rank_sweep(models, splits, max_rank=100):
    """Everything the rank explorer shows, for r = 1 … max_rank, averaged over `models`.

    `models` are trained MnistFCNet of one experiment (one per seed); `splits` maps a split name
    ("test", later "val") to its (x, y). Returns a dict of lists indexed by r − 1:
    `<split>_acc` (accuracy with W_r), `spectral` and `frobenius` (relative errors of W_r),
    and `compression` (mn / (r(m + n))) and `params` (r(m + n), the numbers stored for W_r);
    plus `<split>_dense` (accuracy without compression), `seeds` and the shape `m`, `n`.
    Means are over the models; with one model they are its own numbers.
    """
    _check(
        isinstance(models, (list, tuple)) and len(models) > 0,
        "models",
        "a non-empty list of trained models",
        repr(models)[:80],
    )
    _check(
        isinstance(splits, dict) and len(splits) > 0,
        "splits",
        "a non-empty dict of name -> (x, y)",
        repr(splits)[:80],
    )
    m, n = models[0].W.shape
    _check(
        all(tuple(model.W.shape) == (m, n) for model in models),
        "models",
        f"models whose W are all {m}x{n}",
        [tuple(model.W.shape) for model in models],
    )
    _check(
        isinstance(max_rank, Integral)
        and not isinstance(max_rank, bool)
        and 1 <= max_rank <= min(m, n),
        "max_rank",
        f"an integer in [1, {min(m, n)}]",
        repr(max_rank),
    )
    ranks = list(range(1, max_rank + 1))
    out = {"rank": ranks, "m": m, "n": n, "seeds": len(models), "splits": list(splits)}
    for name, (x, y) in splits.items():
        per_model = [truncation_accuracy(model, x, y, max_rank) for model in models]
        out[f"{name}_acc"] = [_round(v) for v in np.mean(per_model, axis=0)]
        out[f"{name}_dense"] = _round(np.mean([dense_accuracy(model, x, y) for model in models]))
    errors = [
        relative_errors(torch.linalg.svdvals(model.W.detach().double()), max_rank)
        for model in models
    ]
    out["spectral"] = [_round(v) for v in np.mean([e[0] for e in errors], axis=0)]
    out["frobenius"] = [_round(v) for v in np.mean([e[1] for e in errors], axis=0)]
    out["compression"] = [_round(compression_ratio(m, n, r)) for r in ranks]
    out["params"] = [r * (m + n) for r in ranks]
    return out


def projection_error(A_svd, Q):
    """‖A − QQᵀA‖₂ from the SVD A = U diag(S) Vᵀ, exact to about 1e-10 relative.

    With C = Qᵀ U diag(S) (ℓ×n), the Gram matrix of the residual in the basis V is
    diag(S²) − CᵀC, and its largest eigenvalue is found by Lanczos iteration (ARPACK) from a
    fixed start vector, in O(nℓ) flops per step: ~5 ms where a dense norm of the 1000×1000
    residual takes ~150 ms. Q is re-orthonormalised in float64 first, so the result is the
    error of the orthogonal projector onto range(Q).
    """
    U, S, _ = A_svd
    Q = torch.linalg.qr(Q.detach().double()).Q
    C = ((Q.T @ U) * S).numpy()
    d = (S.square()).numpy()
    n = len(d)
    gram = LinearOperator(
        (n, n), dtype=np.float64, matvec=lambda v: d * v.ravel() - C.T @ (C @ v.ravel())
    )
    λ = eigsh(gram, k=1, which="LA", tol=1e-12, v0=np.ones(n), return_eigenvectors=False)[0]
    return math.sqrt(max(λ, 0.0))


def range_error_draws(A, ks, ps, qs, draws, seed=0):
    """‖A − QQᵀA‖₂ for `draws` Gaussian draws of Q = range_finder(A, k + p, q), per (k, p, q).

    Draw d of every setting seeds its generator with seed + d, so the settings are compared on
    the same random numbers (common random numbers): moving q changes the algorithm, not the
    luck. Returns a dict of lists, one entry per setting in the order of the loops k, p, q:
    `k`, `p`, `q`, `errors` (a list of `draws` errors each), `sigma_k1` (σ_{k+1}, the best
    possible rank-k error), `sigma_l1` (σ_{ℓ+1}, the best possible error of a rank-ℓ
    projection) and `bound` (hmt_expected_error: HMT Theorem 10.6 / Corollary 10.10).
    """
    m, n = A.shape
    _check(isinstance(draws, Integral) and draws >= 1, "draws", "an integer >= 1", repr(draws))
    for name, values in (("ks", ks), ("ps", ps), ("qs", qs)):
        _check(len(values) > 0, name, "a non-empty list", repr(values))
    _check(
        max(ks) + max(ps) < min(m, n),
        "ks, ps",
        f"with k + p < {min(m, n)}",
        f"{max(ks)} + {max(ps)}",
    )
    A_svd = _full_svd(A)
    σ = A_svd[1]
    out = {key: [] for key in ("k", "p", "q", "errors", "sigma_k1", "sigma_l1", "bound")}
    for k in ks:
        for p in ps:
            for q in qs:
                errors = [
                    projection_error(
                        A_svd,
                        range_finder(
                            A,
                            k + p,
                            power_iters=q,
                            generator=torch.Generator().manual_seed(seed + d),
                        ),
                    )
                    for d in range(draws)
                ]
                out["k"].append(k)
                out["p"].append(p)
                out["q"].append(q)
                out["errors"].append([_round(e) for e in errors])
                out["sigma_k1"].append(_round(σ[k]))  # σ_{k+1}: 0-based index k
                out["sigma_l1"].append(_round(σ[k + p]))
                out["bound"].append(_round(hmt_expected_error(σ, k, p, q)))
    return out


# Step 3's two iterations, each f(A, rank, oversample, q, generator) -> (U, S, Vh), 2q + 2 passes
ITERATIONS = {"subspace iteration": randomized_svd, "block Krylov": block_krylov_svd}


def passes_and_errors(A, rank, oversample, depths, seeds):
    """{method: [(passes over A, median over seeds of ‖A − U_k Σ_k V_kᵀ‖₂)]} for the rank-k
    output of the ITERATIONS, subspace iteration (randomized_svd) and block Krylov iteration
    (block_krylov_svd), at q in depths, 2q + 2 passes each, and of single_pass_svd (1 pass);
    seed s draws the test matrices of every method."""

    def median_error(svd):
        errors = []
        for s in range(seeds):
            U, S, Vh = svd(torch.Generator().manual_seed(s))
            errors.append(spectral_error(A, U * S, Vh))
        return float(np.median(errors))

    out = {
        name: [
            (2 * q + 2, median_error(lambda g, f=f, q=q: f(A, rank, oversample, q, generator=g)))
            for q in depths
        ]
        for name, f in ITERATIONS.items()
    }
    out["single pass"] = [(1, median_error(lambda g: single_pass_svd(A, rank, generator=g)))]
    return out
