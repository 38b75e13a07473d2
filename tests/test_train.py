import importlib
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lowrank import FactorisedEvaluator, MnistFCNet, TrainConfig, evaluate, train
from lowrank.model import Dropout, dropout_mask, kept_fraction, kept_threshold, step_flops, weights
from lowrank.train import Training, dropout_seed, weight_penalty

TRAINING = importlib.import_module("lowrank.train")  # the module: lowrank.train is the function
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def without_seconds(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "train_seconds")} for r in history]


@pytest.mark.parametrize(
    "penalty, expected", [("l2", lambda w, lam: 2 * lam * w), ("l1", lambda w, lam: lam * w.sign())]
)
def test_penalty_gradient_is_as_documented(penalty, expected):
    torch.manual_seed(0)
    net, lam = MnistFCNet(), 1e-3
    weight_penalty(net, penalty, lam).backward()
    for layer in (net.fc1, net.fc2, net.fc3):
        assert torch.allclose(layer.weight.grad, expected(layer.weight.detach(), lam), atol=1e-9)
        assert layer.bias.grad is None  # biases are not penalised


def test_no_penalty_is_zero():
    assert weight_penalty(MnistFCNet(), None, 0.0).item() == 0.0


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", 0),
        ("gamma", 1.5),
        ("batch_size", 0),
        ("epochs", 0),
        ("dropout", 1.0),
        ("penalty", "l3"),
        ("lam", -1.0),
        ("lam", 0.1),
        ("rank", 0),
        ("rank", 1001),
    ],
)
def test_bad_config_names_the_argument(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", math.inf),
        ("lr", math.nan),
        ("gamma", math.nan),
        ("lam", math.inf),
        ("dropout", 1 - 1e-12),  # kept none of the 2**32 values: 1/q = 1/0 later
        ("dropout", "0.5"),
        ("seed", 1.5),
        ("seed", "3"),
        ("seed", True),
        ("batch_size", True),
        ("epochs", 2.0),
        ("classes", True),
        ("hidden", 0),
        ("train_subset", True),
        ("rank", True),
    ],
)
def test_config_checks_types_and_finiteness(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be .*, got {re.escape(repr(value))}$"):
        TrainConfig(**{field: value})


def test_config_takes_numpy_numbers_as_python_ones():
    import numpy as np

    config = TrainConfig(seed=np.int64(3), batch_size=np.int32(32), lr=np.float32(0.5))
    assert config == TrainConfig(seed=3, batch_size=32, lr=0.5)
    assert type(config.seed) is int and type(config.lr) is float
    assert config.to_dict() == TrainConfig(seed=3, batch_size=32, lr=0.5).to_dict()


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64])
def test_seeds_the_generators_cannot_honour_are_refused(seed):
    # seed 2**32 would train exactly as seed 0 (the CPU generator keeps 32 bits)
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 2\*\*32\)"):
        TrainConfig(seed=seed)
    assert TrainConfig(seed=2**32 - 1).seed == 2**32 - 1


def test_same_config_and_seed_give_identical_history(mnist):
    config = TrainConfig(epochs=1, train_subset=1000, penalty="l1", lam=1e-6)
    model_a, history_a = train(config, mnist, device="cpu")
    model_b, history_b = train(config, mnist, device="cpu")
    assert without_seconds(history_a) == without_seconds(history_b)
    assert torch.equal(model_a.W, model_b.W)
    _, history_c = train(TrainConfig(epochs=1, train_subset=1000, seed=1), mnist, device="cpu")
    assert history_c[0]["train_loss"] != history_a[0]["train_loss"]


def test_history_records_what_the_post_plots(mnist):
    _, history = train(TrainConfig(epochs=2, train_subset=500, gamma=0.5), mnist, device="cpu")
    assert [r["epoch"] for r in history] == [1, 2]
    assert [r["lr"] for r in history] == [1e-3, 5e-4]  # StepLR(step_size=1, gamma)
    for r in history:
        assert set(r) == {
            "epoch",
            "lr",
            "train_loss",
            "val_loss",
            "val_acc",
            "test_loss",
            "test_acc",
            "erank",
            "srank",
            "head_share",
            "top_share",
            "seconds",
            "train_seconds",
        }
        assert 0 < r["train_seconds"] < r["seconds"]  # the loop alone, without evaluation and SVDs
        assert 0 < r["test_acc"] <= 1 and 1 <= r["srank"] <= r["erank"] <= 1000


def test_resume_from_checkpoint_continues_bit_for_bit(mnist):
    config = TrainConfig(epochs=2, train_subset=500)
    straight_model, straight = train(config, mnist, device="cpu")
    checkpoints = []
    train(TrainConfig(epochs=1, train_subset=500), mnist, device="cpu", on_epoch=checkpoints.append)
    resumed_model, resumed = train(config, mnist, device="cpu", resume=checkpoints[-1])
    assert without_seconds(resumed) == without_seconds(straight)
    assert torch.equal(resumed_model.W, straight_model.W)


def test_penalty_of_a_factorised_layer_falls_on_its_factors():
    torch.manual_seed(0)
    net, lam = MnistFCNet(rank=4), 1e-3
    weight_penalty(net, "l2", lam).backward()
    assert torch.allclose(net.fc2.U.grad, 2 * lam * net.fc2.U.detach())
    assert torch.allclose(net.fc2.V.grad, 2 * lam * net.fc2.V.detach())


@pytest.mark.parametrize("p", [0.2, 0.25, 0.5, 0.9])
def test_dropout_mask_is_an_unbiased_scaled_bernoulli(p):
    n = 1_000_000
    mask = dropout_mask((n,), p, torch.Generator().manual_seed(0))
    q = round((1 - p) * 2**32) / 2**32
    assert abs(q - (1 - p)) <= 2**-33
    values = mask.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / q, rel=1e-7)
    kept = (mask > 0).double()
    sigma = math.sqrt(q * (1 - q) / n)
    assert abs(kept.mean().item() - q) < 5 * sigma  # keep probability q
    assert abs(mask.double().mean().item() - 1) < 5 * sigma / q  # E[mask] = 1: unbiased
    # the two int32 halves of each 64-bit word are independent: neighbours kept together with q^2
    both = (kept[0::2] * kept[1::2]).mean().item()
    assert abs(both - q * q) < 5 * math.sqrt(q * q * (1 - q * q) / (n // 2))


def test_dropout_mask_for_the_post_probabilities_is_exact():
    assert torch.equal(dropout_mask((3, 4), 0.0, torch.Generator()), torch.ones(3, 4))
    for p, scale in [(0.25, 4 / 3), (0.5, 2.0)]:
        mask = dropout_mask((1000,), p, torch.Generator().manual_seed(1))
        assert mask.max().item() == pytest.approx(scale, rel=1e-7)


@pytest.mark.parametrize("p", [0.25, 0.5, 0.9])
def test_kept_fraction_is_the_threshold_s_share_of_the_int32_values(p):
    assert (
        kept_fraction(p) == (kept_threshold(p) + 2**31) / 2**32
        and abs(kept_fraction(p) - (1 - p)) <= 2**-33
    )
    assert (
        kept_fraction(0.0) == 1.0 and kept_fraction(0.5) == 0.5
    )  # 1/q = 2: the step's alpha is exact


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_kept_threshold_rejects_p_outside_the_open_interval(p):
    with pytest.raises(ValueError, match=r"p must be in \(0, 1 - 2\*\*-32\]"):
        kept_threshold(p)


def test_dropout_mask_is_reproducible_and_seeds_differ():
    a = dropout_mask((64, 1000), 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(a, dropout_mask((64, 1000), 0.5, torch.Generator().manual_seed(0)))
    assert not torch.equal(a, dropout_mask((64, 1000), 0.5, torch.Generator().manual_seed(1)))
    assert (
        dropout_seed(0) != dropout_seed(1) and dropout_seed(0) % 2**32 != 0
    )  # not the shuffle's seed


class Variant(MnistFCNet):
    """Another network: tanh instead of ReLU, and one more hidden layer above W."""

    def __init__(self, hidden=1000, dropout=0.5, rank=None, classes=10):
        super().__init__(hidden, dropout, rank, classes)
        self.activation = nn.Tanh()
        self.extra = nn.Linear(hidden, hidden)

    def after_W(self, a):
        h = self.dropout(self.activation(self.extra(self.dropout(self.activation(a)))))
        return F.log_softmax(self.fc3(h), dim=1)


def reference_gradients(net, x, y, config):
    """Plain autograd through `net` with the penalty formed, dropout drawn as training draws it."""
    g = torch.Generator().manual_seed(dropout_seed(config.seed))
    for layer in net.modules():
        if isinstance(layer, Dropout):
            layer.generator = g
    net.train()
    nll = F.nll_loss(net(x), y)
    (nll + weight_penalty(net, config.penalty, config.lam)).backward()
    return nll.item(), {name: p.grad for name, p in net.named_parameters()}


@pytest.mark.parametrize("network", [MnistFCNet, Variant])
@pytest.mark.parametrize(
    "rank, penalty, dropout",
    [(None, None, 0.5), (None, "l2", 0.2), (20, "l1", 0.5), (None, None, 0.0)],
)
def test_step_gradients_equal_autograd_through_the_network(
    mnist, monkeypatch, network, rank, penalty, dropout
):
    """The training step's loss and gradients (penalty included, dropout masks alike) against
    autograd through the network itself, for the post's network and for a variant of it."""
    monkeypatch.setattr(TRAINING, "MnistFCNet", network)
    config = TrainConfig(rank=rank, penalty=penalty, lam=1e-3 if penalty else 0.0, dropout=dropout)
    run = Training(config, torch.device("cpu"))
    assert type(run.model) is network
    x, y = mnist.train_x[:64], mnist.train_y[:64]
    before = {name: p.detach().clone() for name, p in run.model.named_parameters()}
    captured = {}
    real_step = run.optimizer.step

    def capture():  # the gradient Adam sees, L2 weight decay included
        for group in run.optimizer.param_groups:
            for p in group["params"]:
                captured[id(p)] = p.grad + group["weight_decay"] * p.detach()
        real_step()

    run.optimizer.step = capture
    nll = run.step(x, y)

    torch.manual_seed(0)
    expected_nll, expected = reference_gradients(network(rank=rank, dropout=dropout), x, y, config)
    assert nll.item() == pytest.approx(expected_nll, rel=1e-6)
    for name, p in run.model.named_parameters():
        assert torch.allclose(captured[id(p)], expected[name], rtol=1e-5, atol=1e-7), name
        assert not torch.equal(p.detach(), before[name]), f"{name} was not updated"


def test_changing_the_network_changes_what_is_trained_and_evaluated(mnist, monkeypatch):
    monkeypatch.setattr(TRAINING, "MnistFCNet", Variant)
    config = TrainConfig(epochs=1, train_subset=256)
    model, history = train(config, mnist, device="cpu")
    assert type(model) is Variant
    torch.manual_seed(0)
    fresh = Variant()
    assert not torch.equal(model.extra.weight, fresh.extra.weight)  # the extra layer trained
    x, y = mnist.test_x[:500], mnist.test_y[:500]
    with torch.no_grad():
        out = model.eval()(x)  # the variant's own forward, tanh and all
    loss, acc = evaluate(model, x, y)
    assert loss == pytest.approx(F.nll_loss(out, y).item(), rel=1e-6)
    assert acc == (out.argmax(1) == y).sum().item() / len(y)
    assert FactorisedEvaluator(model, x, y).dense() == pytest.approx((loss, acc), rel=1e-5)
    assert history[-1]["test_acc"] == evaluate(model, mnist.test_x, mnist.test_y)[1]


def test_the_cost_model_reads_the_layers_from_the_network():
    # forward and weight gradient of every weight, input gradients of all but the first
    sizes = [784 * 1000, 1000 * 1000, 1000 * 10]
    assert step_flops(MnistFCNet()) == 2 * (2 * sum(sizes) + sum(sizes[1:]))
    assert step_flops(Variant()) == step_flops(MnistFCNet()) + 3 * 2 * 1000 * 1000
    factorised = step_flops(MnistFCNet(rank=10))
    assert factorised == 2 * (2 * (784_000 + 20_000 + 10_000) + 20_000 + 10_000)
    assert [tuple(w.shape) for w in weights(MnistFCNet(rank=10))] == [
        (1000, 784),
        (1000, 10),
        (10, 1000),
        (10, 1000),
    ]


def test_training_does_not_depend_on_the_callers_thread_count(mnist):
    """A model depends only on its config: train() runs on TRAIN_THREADS whatever is set."""
    config = TrainConfig(epochs=1, train_subset=640)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, _ = train(config, mnist, device="cpu")
        assert torch.get_num_threads() == 1  # restored
        torch.set_num_threads(2)
        two, _ = train(config, mnist, device="cpu")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values()):
        assert torch.equal(a, b), name


def test_training_starts_as_a_seeded_mnistfcnet():
    run = Training(TrainConfig(rank=10, seed=3), torch.device("cpu"))
    torch.manual_seed(3)
    fresh = MnistFCNet(rank=10)
    for (name, a), b in zip(run.model.named_parameters(), fresh.parameters()):
        assert torch.equal(a, b), name


@CUDA
def test_training_runs_on_cuda(mnist):
    cpu_model, cpu_history = train(TrainConfig(epochs=1, train_subset=2000), mnist, device="cpu")
    model, history = train(TrainConfig(epochs=1, train_subset=2000), mnist, device="cuda")
    assert next(model.parameters()).device.type == "cpu"  # returned on the CPU, as documented
    # other dropout stream (Philox), same model: the same accuracy within a few points
    assert abs(history[0]["test_acc"] - cpu_history[0]["test_acc"]) < 0.05
    mask = dropout_mask((1_000_000,), 0.5, torch.Generator("cuda").manual_seed(0))
    assert mask.device.type == "cuda" and abs(mask.mean().item() - 1) < 5 * 0.001


def test_singular_value_threshold_is_the_nuclear_norms_proximal_step():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(30, 20, generator=g, dtype=torch.float64)
    s = torch.linalg.svdvals(W)
    tau = s[5].item()
    T = TRAINING.singular_value_threshold(W, tau)
    assert torch.allclose(torch.linalg.svdvals(T)[:5], s[:5] - tau, atol=1e-10)
    assert torch.linalg.matrix_rank(T) == 5

    # the proximal step minimises ½‖X − W‖² + τ‖X‖_*: no small perturbation does better
    def objective(X):
        return 0.5 * (X - W).square().sum() + tau * torch.linalg.svdvals(X).sum()

    for _ in range(20):
        E = 1e-3 * torch.randn(30, 20, generator=g, dtype=torch.float64)
        assert objective(T) <= objective(T + E)


def test_the_nuclear_penalty_thresholds_W_after_every_epoch(mnist):
    config = TrainConfig(epochs=1, train_subset=300, penalty="nuclear", lam=0.5)
    model, history = train(config, mnist, device="cpu")
    s = torch.linalg.svdvals(model.W.double())
    plain, _ = train(TrainConfig(epochs=1, train_subset=300), mnist, device="cpu")
    assert (s > 1e-4).sum() < (torch.linalg.svdvals(plain.W.double()) > 1e-4).sum()


def test_a_frozen_head_stays_at_its_initialisation_and_the_rest_trains(mnist):
    config = TrainConfig(epochs=1, train_subset=300, freeze_head=True, classes=3)
    start = TRAINING.initial_model(config)
    model, _ = train(config, mnist, device="cpu")
    assert torch.equal(model.fc3.weight, start.fc3.weight)
    assert torch.equal(model.fc3.bias, start.fc3.bias)
    assert not torch.equal(model.fc2.weight, start.fc2.weight)


def test_random_digits_are_drawn_from_the_seed():
    drawn = {TRAINING.digits(TrainConfig(classes=3, random_digits=True, seed=s)) for s in range(8)}
    assert len(drawn) > 1 and all(len(d) == 3 and list(d) == sorted(d) for d in drawn)
    c = TrainConfig(classes=3, random_digits=True, seed=5)
    assert TRAINING.digits(c) == TRAINING.digits(c)
    assert TRAINING.digits(TrainConfig(classes=3)) == (0, 1, 2)


def test_a_nuclear_penalty_that_removes_all_of_W_is_recorded_not_fatal(mnist):
    config = TrainConfig(epochs=2, train_subset=200, penalty="nuclear", lam=1e3)
    model, history = train(config, mnist, device="cpu")
    assert [(r["erank"], r["srank"]) for r in history] == [(0.0, 0.0), (0.0, 0.0)]
    assert not model.W.any()
