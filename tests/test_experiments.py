import warnings

import pytest
import torch

from lowrank import experiments
from lowrank.experiments import cache_path, config_for, is_cached, load_or_train, quick_mode


@pytest.fixture
def counted_training(monkeypatch):
    """Count the epochs actually trained, on a tiny subset so that each takes a moment."""
    monkeypatch.setattr(experiments, "QUICK_SUBSET", 300)
    epochs = []
    real_train = experiments.train

    def counting_train(config, data, **kw):
        on_epoch = kw.pop("on_epoch", None)

        def record(ckpt):
            epochs.append(len(ckpt["history"]))
            if on_epoch is not None:
                on_epoch(ckpt)

        return real_train(config, data, on_epoch=record, device="cpu", **kw)

    monkeypatch.setattr(experiments, "train", counting_train)
    return epochs


def test_quick_mode_shrinks_every_experiment_and_never_shares_the_cache(monkeypatch):
    monkeypatch.setenv("LOWRANK_QUICK", "0")
    full = {name: (config_for(name), cache_path(name)) for name in experiments.EXPERIMENTS}
    monkeypatch.setenv("LOWRANK_QUICK", "1")
    assert quick_mode()
    for name, (config, path) in full.items():
        assert config_for(name).epochs == 1 and config_for(name).train_subset is not None
        assert config.train_subset is None
        assert cache_path(name) != path


def test_named_configs_follow_the_draft():
    c0, c6, c10 = (experiments.EXPERIMENTS[n] for n in ("model0", "model6", "model10"))
    assert (c0.lr, c0.gamma, c0.batch_size, c0.dropout, c0.epochs, c0.penalty) == (1e-3, 0.7, 64, 0.5, 5, None)
    assert c6.penalty == "l2" and c6.batch_size < c0.batch_size and c6.lr > c0.lr and c6.epochs == 20
    assert c10.penalty == "l1" and c10.dropout < c0.dropout and c10.gamma > c0.gamma and c10.epochs == 20


def test_unknown_name_is_rejected():
    with pytest.raises(ValueError, match=r"^name must be one of model0, model6, model10, .*got 'model7'$"):
        load_or_train("model7")


def test_cache_miss_then_hit(quick_cache, counted_training):
    assert not is_cached("model0")
    model, history = load_or_train("model0")
    assert counted_training == [1] and is_cached("model0")
    again, history_again = load_or_train("model0")
    assert counted_training == [1]  # loaded, not retrained
    assert history_again == history and torch.equal(again.W, model.W)
    load_or_train("model0", force=True)
    assert counted_training == [1, 1]


def test_cache_key_changes_with_config_and_code(quick_cache, monkeypatch):
    path = cache_path("model0")
    monkeypatch.setitem(experiments.EXPERIMENTS, "model0", experiments.EXPERIMENTS["model0"].__class__(seed=1))
    assert cache_path("model0") != path
    monkeypatch.setattr(experiments, "code_hash", lambda: "different training code")
    assert cache_path("model0") != path


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_key"])
def test_corrupt_entry_is_reported_and_retrained(quick_cache, counted_training, damage):
    _, history = load_or_train("model0")
    path = cache_path("model0")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a torch file")
    else:
        entry = torch.load(path, weights_only=True)
        torch.save({**entry, "key": "someone else's"}, path)
    with pytest.warns(UserWarning, match="corrupt or stale"):
        model, retrained = load_or_train("model0")
    assert counted_training == [1, 1]
    assert [r["test_acc"] for r in retrained] == [r["test_acc"] for r in history]  # deterministic retrain
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_or_train("model0")  # the rebuilt entry is intact


def test_interrupted_training_resumes_from_last_finished_epoch(quick_cache, counted_training, monkeypatch):
    monkeypatch.setattr(experiments, "QUICK_EPOCHS", 3)
    real_save = experiments._atomic_save

    def crash_after_second_epoch(obj, path):
        real_save(obj, path)
        if len(obj["history"]) == 2 and path.name.endswith(".partial.pt"):
            raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "_atomic_save", crash_after_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        load_or_train("model0")
    assert counted_training == [1, 2] and not is_cached("model0")
    monkeypatch.setattr(experiments, "_atomic_save", real_save)
    _, history = load_or_train("model0")
    assert counted_training == [1, 2, 3]  # only the third epoch was trained again
    assert not list(quick_cache.glob("*.partial.pt")) and not list(quick_cache.glob("*.tmp"))

    straight, straight_history = experiments.train(config_for("model0"), experiments.load_mnist())
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in straight_history]
    assert torch.equal(load_or_train("model0")[0].W, straight.W)


def test_code_hash_covers_every_training_module_whole():
    sources = experiments.training_sources()
    assert "def _train_epoch" in sources["train"] and "def weight_penalty" in sources["train"]
    assert "class MnistFCNet" in sources["model"] and "def load_mnist" in sources["data"]
    assert "def effective_rank" in sources["rank"]
