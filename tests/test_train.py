import pytest
import torch

from lowrank import MnistFCNet, TrainConfig, train
from lowrank.train import weight_penalty


def without_seconds(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


@pytest.mark.parametrize("penalty, expected", [("l2", lambda w, lam: 2 * lam * w), ("l1", lambda w, lam: lam * w.sign())])
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
    [("lr", 0), ("gamma", 1.5), ("batch_size", 0), ("epochs", 0), ("dropout", 1.0), ("penalty", "l3"), ("lam", -1.0),
     ("lam", 0.1), ("rank", 0), ("rank", 1001)],
)
def test_bad_config_names_the_argument(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        TrainConfig(**{field: value})


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
        assert set(r) == {"epoch", "lr", "train_loss", "test_loss", "test_acc", "erank", "srank", "seconds"}
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
