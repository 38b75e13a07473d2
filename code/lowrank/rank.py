"""Notions of rank for a weight matrix W, all computed from its singular values in float64.

effective_rank(W)   exp of the entropy of the normalised spectrum (Roy & Vetterli 2007)
stable_rank(W)      ||W||_F^2 / ||W||_2^2
numerical_rank(W)   number of singular values above a relative tolerance
spectral_ranks(W)   (effective_rank, stable_rank) from one SVD, as training records them
"""

import torch

from lowrank.checks import check, check_matrix, is_real


def singular_values(W: torch.Tensor) -> torch.Tensor:
    """The singular values s_1 >= s_2 >= ... of W, in float64 on the CPU; rejects degenerate
    input."""
    check_matrix(W, "W")  # the same input randomized.py accepts: real float32/float64
    s = torch.linalg.svdvals(W.detach().to(device="cpu", dtype=torch.float64))
    if s[0] == 0:
        raise ValueError("W must not be all zeros: its rank notions are undefined")
    return s


def effective_rank(W: torch.Tensor) -> float:
    """Effective rank of Roy & Vetterli (2007): exp(-sum_i p_i log p_i) with p_i = s_i / sum_j s_j.

    It lies in [1, min(m, n)]: 1 for a rank-one matrix, n for an orthogonal n x n matrix.
    The convention 0 log 0 = 0 is applied by dropping zero p_i.
    """
    return _effective_rank(singular_values(W))


def _effective_rank(s: torch.Tensor) -> float:
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def stable_rank(W: torch.Tensor) -> float:
    """Stable rank ||W||_F^2 / ||W||_2^2 = sum_i s_i^2 / s_1^2, a continuous lower bound on the
    rank."""
    return _stable_rank(singular_values(W))


def _stable_rank(s: torch.Tensor) -> float:
    return float((s**2).sum() / s[0] ** 2)


def spectral_ranks(W: torch.Tensor) -> tuple[float, float]:
    """(effective_rank(W), stable_rank(W)) from a single SVD: the SVD is the costly part."""
    s = singular_values(W)
    return _effective_rank(s), _stable_rank(s)


def numerical_rank(W: torch.Tensor, rtol: float | None = None) -> int:
    """Number of singular values s_i > rtol * s_1.

    The default rtol = max(m, n) * eps(float32) is the usual threshold for a float32 matrix
    (numpy.linalg.matrix_rank uses the same rule with the input's own eps).
    """
    ok = rtol is None or (is_real(rtol) and 0 <= rtol < 1)
    check(ok, "rtol", "None or a number in [0, 1)", repr(rtol))
    s = singular_values(W)
    if rtol is None:
        rtol = max(W.shape) * torch.finfo(torch.float32).eps
    return int((s > rtol * s[0]).sum())
