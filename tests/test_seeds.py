from dataclasses import replace

import pytest
import torch

from lowrank import TrainConfig, train
from lowrank.seeds import train_seeds

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def max_difference(a, b) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("config", [
    TrainConfig(epochs=1, train_subset=3 * 64),  # three steps
    TrainConfig(epochs=1, train_subset=3 * 64, rank=20, penalty="l1", lam=1e-4, dropout=0.25),
    TrainConfig(epochs=1, train_subset=3 * 32, batch_size=32, penalty="l2", lam=1e-4, dropout=0.0),
])
def test_each_member_matches_training_it_alone(mnist, config):
    together = train_seeds(config, [0, 1, 2], mnist, device="cpu")
    for seed, (model, history) in zip([0, 1, 2], together):
        alone, alone_history = train(replace(config, seed=seed), mnist, device="cpu")
        assert max_difference(model, alone) < 1e-5  # float32 round-off at most
        assert history[0]["train_loss"] == pytest.approx(alone_history[0]["train_loss"], abs=1e-5)
        assert set(history[0]) == set(alone_history[0])
    assert max_difference(together[0][0], together[1][0]) > 1e-3  # and the members differ


def test_members_still_agree_with_solo_runs_after_an_epoch(mnist):
    """79 steps: bmm over two members may round differently from bmm over one, and Adam's
    normalised step turns round-off in near-zero gradients into steps of order lr; from there
    a run may drift apart like another dropout stream (seen: seed 1 within 3e-7 of its solo
    run, seed 0 a mean 8e-4 apart, the test accuracy 0.5 points apart). What must hold is
    statistical: the same accuracy to within the spread between seeds (here ~3 points)."""
    config = TrainConfig(epochs=1, train_subset=5000)
    together = train_seeds(config, [0, 1], mnist, device="cpu")
    for seed, (model, history) in zip([0, 1], together):
        alone, alone_history = train(replace(config, seed=seed), mnist, device="cpu")
        assert abs(history[0]["test_acc"] - alone_history[0]["test_acc"]) <= 0.01
        assert abs(history[0]["val_acc"] - alone_history[0]["val_acc"]) <= 0.01


def test_seed_sweep_is_deterministic(mnist):
    config = TrainConfig(epochs=1, train_subset=256, dropout=0.2)
    a = train_seeds(config, [4, 5], mnist, device="cpu")
    b = train_seeds(config, [4, 5], mnist, device="cpu")
    for (model_a, _), (model_b, _) in zip(a, b):
        assert max_difference(model_a, model_b) == 0.0


@pytest.mark.parametrize("seeds", [[], [0, 0], [-1], [1.5], "01"])
def test_bad_seeds_are_rejected(mnist, seeds):
    with pytest.raises(ValueError, match="^seeds must be"):
        train_seeds(TrainConfig(epochs=1, train_subset=64), seeds, mnist, device="cpu")


@CUDA
def test_seed_sweep_runs_on_cuda(mnist):
    config = TrainConfig(epochs=1, train_subset=2000)
    results = train_seeds(config, [0, 1, 2], mnist, device="cuda")
    cpu = train_seeds(config, [0, 1, 2], mnist, device="cpu")
    gpu_acc = sum(h[0]["test_acc"] for _, h in results) / 3
    cpu_acc = sum(h[0]["test_acc"] for _, h in cpu) / 3
    assert abs(gpu_acc - cpu_acc) < 0.03  # other dropout stream (Philox), same mean accuracy
    assert all(next(m.parameters()).device.type == "cpu" for m, _ in results)
