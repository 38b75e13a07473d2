"""The update's share in the output layer's subspace (lowrank.mechanism): exact cases."""

import math

import pytest
import torch

from lowrank.mechanism import head_share, head_subspace, random_share, top_share, update_shares


def test_the_head_subspace_is_the_span_of_the_rows_less_their_mean():
    g = torch.Generator().manual_seed(0)
    head = torch.randn(5, 40, generator=g, dtype=torch.float64)
    Q = head_subspace(head)
    assert Q.shape == (40, 4)
    assert torch.allclose(Q.T @ Q, torch.eye(4, dtype=torch.float64), atol=1e-12)
    v = torch.randn(5, generator=g, dtype=torch.float64)
    v -= v.mean()  # p − y sums to zero
    g_out = head.T @ v  # a gradient at W's output, without the ReLU mask
    assert torch.allclose(Q @ (Q.T @ g_out), g_out, atol=1e-10)
    assert head_share((head.T @ v)[:, None], Q) == pytest.approx(1.0)


def test_an_update_made_of_head_gradients_lies_wholly_in_the_subspace():
    g = torch.Generator().manual_seed(1)
    head = torch.randn(3, 50, generator=g)
    v = torch.randn(3, 20, generator=g)
    v -= v.mean(0)
    D = head.T @ v @ torch.randn(20, 50, generator=g)  # Σ fc3ᵀ(p − y) xᵀ
    W0 = torch.randn(50, 50, generator=g)
    shares = update_shares(W0 + D, W0, head)
    assert shares["head_share"] == pytest.approx(1.0, abs=1e-6)
    assert shares["top_share"] == pytest.approx(1.0, abs=1e-6)


def test_top_share_bounds_every_subspace_and_a_random_one_holds_k_over_n_on_average():
    g = torch.Generator().manual_seed(2)
    D = torch.randn(60, 30, generator=g, dtype=torch.float64) * torch.linspace(3, 0.1, 30)
    k = 4
    best = top_share(D, k)
    draws = [random_share(D, k, g) for _ in range(400)]
    assert max(draws) <= best
    assert sum(draws) / len(draws) == pytest.approx(k / 60, rel=0.1)
    assert top_share(D, 30) == pytest.approx(1.0)


def test_no_update_has_no_share():
    W = torch.ones(4, 4)
    assert all(math.isnan(v) for v in update_shares(W, W, torch.ones(2, 4)).values())
