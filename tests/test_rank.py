import math

import pytest
import torch

from lowrank import effective_rank, numerical_rank, stable_rank


def orthogonal(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]


def test_identity_has_full_effective_and_stable_rank():
    assert effective_rank(torch.eye(50)) == pytest.approx(50, rel=1e-12)
    assert stable_rank(torch.eye(50)) == pytest.approx(50, rel=1e-12)
    assert numerical_rank(torch.eye(50)) == 50


def test_rank_one_matrix_has_rank_one():
    g = torch.Generator().manual_seed(0)
    A = torch.outer(torch.randn(30, generator=g), torch.randn(40, generator=g))
    assert effective_rank(A) == pytest.approx(
        1, abs=1e-4
    )  # float32 noise leaves tiny singular values
    assert stable_rank(A) == pytest.approx(1, rel=1e-6)
    assert numerical_rank(A) == 1


def test_effective_rank_matches_entropy_computed_by_hand():
    s = torch.tensor([4.0, 2.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    Q1, Q2 = orthogonal(5, 1), orthogonal(5, 2)
    A = Q1 @ torch.diag(s) @ Q2.T
    p = [4 / 8, 2 / 8, 1 / 8, 1 / 8]  # the zero singular value contributes 0 log 0 = 0
    expected = math.exp(-sum(pi * math.log(pi) for pi in p))
    assert effective_rank(A) == pytest.approx(expected, rel=1e-10)
    assert 1 <= effective_rank(A) <= 4


def test_ranks_are_invariant_under_scaling_and_orthogonal_transforms():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(40, 40, generator=g, dtype=torch.float64) @ torch.diag(
        torch.logspace(0, -3, 40, dtype=torch.float64)
    )
    Q1, Q2 = orthogonal(40, 4), orthogonal(40, 5)
    for f in (effective_rank, stable_rank):
        assert f(-7.5 * A) == pytest.approx(f(A), rel=1e-10)
        assert f(Q1 @ A @ Q2) == pytest.approx(f(A), rel=1e-10)
        assert f(A.T) == pytest.approx(f(A), rel=1e-10)
    assert numerical_rank(Q1 @ A @ Q2, rtol=1e-2) == numerical_rank(A, rtol=1e-2)


def test_stable_rank_never_exceeds_rank_and_effective_rank_is_between_one_and_min_dim():
    g = torch.Generator().manual_seed(6)
    A = torch.randn(30, 10, generator=g) @ torch.randn(10, 50, generator=g)  # rank 10
    assert numerical_rank(A) == 10
    assert 1 <= stable_rank(A) <= 10 + 1e-6
    assert 1 <= effective_rank(A) <= 10 + 1e-3


def test_numerical_rank_counts_singular_values_above_tolerance():
    s = torch.tensor([1.0, 1e-1, 1e-3, 1e-6], dtype=torch.float64)
    A = orthogonal(4, 7) @ torch.diag(s) @ orthogonal(4, 8).T
    assert [numerical_rank(A, rtol) for rtol in (0.5, 1e-2, 1e-4, 1e-8)] == [1, 2, 3, 4]


@pytest.mark.parametrize("f", [effective_rank, stable_rank, numerical_rank])
@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.ones(3), "2-D"),
        (torch.ones(2, 2, 2), "2-D"),
        (torch.ones(0, 4), "non-empty"),
        (torch.zeros(3, 3), "all zeros"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "finite"),
        (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), "finite"),
        (torch.eye(3, dtype=torch.complex64), "float32 or float64"),  # randomized.py agrees
        (torch.eye(3, dtype=torch.int64), "float32 or float64"),
        (torch.eye(3, dtype=torch.bool), "float32 or float64"),
        (torch.eye(3, dtype=torch.half), "float32 or float64"),
        ([[1.0, 0.0], [0.0, 1.0]], "torch.Tensor"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(f, bad, message):
    with pytest.raises(ValueError, match=message):
        f(bad)


@pytest.mark.parametrize("rtol", [-1.0, 1.0, True, float("nan"), "0.1"])
def test_numerical_rank_rejects_bad_tolerance(rtol):
    with pytest.raises(ValueError, match=r"^rtol must be None or a number in \[0, 1\), got "):
        numerical_rank(torch.eye(3), rtol=rtol)
