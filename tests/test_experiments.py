import os
import subprocess
import threading
import warnings
from types import SimpleNamespace

import pytest
import torch

from lowrank import cache, experiments
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
        assert config.train_subset is None or name.startswith(("classes", "frozen"))
        assert cache_path(name) != path


def test_named_configs_follow_the_draft():
    c0, c6, c10 = (experiments.EXPERIMENTS[n] for n in ("model0", "model6", "model10"))
    assert (c0.lr, c0.gamma, c0.batch_size, c0.dropout, c0.epochs, c0.penalty) == (
        1e-3,
        0.7,
        64,
        0.5,
        5,
        None,
    )
    assert (
        c6.penalty == "l2" and c6.batch_size < c0.batch_size and c6.lr > c0.lr and c6.epochs == 20
    )
    assert (
        c10.penalty == "l1"
        and c10.dropout < c0.dropout
        and c10.gamma > c0.gamma
        and c10.epochs == 20
    )


def test_unknown_name_is_rejected():
    with pytest.raises(
        ValueError, match=r"^name must be one of model0, model6, model10, .*got 'model7'$"
    ):
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
    monkeypatch.setitem(
        experiments.EXPERIMENTS, "model0", experiments.EXPERIMENTS["model0"].__class__(gamma=0.5)
    )
    assert cache_path("model0") != path
    monkeypatch.setattr(cache, "code_hash", lambda: "different training code")
    assert cache_path("model0") != path


def test_code_hash_is_of_the_code_this_process_imported(monkeypatch, tmp_path):
    """Editing a training module while a long run trains must not relabel its models."""
    key = cache.code_hash()
    real_read = type(tmp_path).read_text
    monkeypatch.setattr(type(tmp_path), "read_text", lambda self, *a, **k: "x = 'edited'")
    assert cache.code_hash() == key
    monkeypatch.setattr(type(tmp_path), "read_text", real_read)


def test_code_hash_counts_code_not_comments_docstrings_or_layout(monkeypatch):
    sources = cache.training_sources()
    base = cache.code_hash()

    def hash_with(train_source):
        monkeypatch.setattr(cache, "training_sources", lambda: {**sources, "train": train_source})
        return cache.code_hash()

    text = sources["train"]
    reworded = text.replace('"""One model in training:', '"""A model in training, reworded:')
    assert reworded != text and hash_with(reworded) == base
    commented = text.replace(
        "\nTRAIN_THREADS = 1\n", "\nTRAIN_THREADS = (  # a comment\n    1\n)\n"
    )
    assert commented != text and hash_with(commented) == base
    changed = text.replace("\nTRAIN_THREADS = 1\n", "\nTRAIN_THREADS = 2\n")
    assert changed != text and hash_with(changed) != base
    assert hash_with(text.replace("fused=True", "fused=False")) != base


@pytest.mark.parametrize("change", ["device", "cpu", "threads"])
def test_cache_key_changes_with_what_changes_the_floats(quick_cache, monkeypatch, change):
    """Training on another device, CPU kernel set or thread count gives another entry."""
    key = cache.cache_key(config_for("model0"))
    if change == "device":
        monkeypatch.setattr(cache, "default_device", lambda: torch.device("cuda"))
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    elif change == "cpu":
        other = "AVX2" if torch.backends.cpu.get_cpu_capability() != "AVX2" else "AVX512"
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: other)
    else:
        monkeypatch.setattr(cache, "TRAIN_THREADS", 2)
    assert cache.cache_key(config_for("model0")) != key


def test_quick_histories_are_scored_on_the_quick_images_which_the_key_names(
    quick_cache, counted_training, monkeypatch, mnist
):
    from lowrank.model import evaluate

    model, history = load_or_train("model0")
    data = experiments.scoring_data(mnist)
    assert len(data.val_y) == len(data.test_y) == experiments.QUICK_SCORING < len(mnist.val_y)
    assert model.W.shape == (experiments.QUICK_HIDDEN, experiments.QUICK_HIDDEN)
    for split in ("val", "test"):
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        assert history[-1][f"{split}_acc"] == pytest.approx(evaluate(model, x, y)[1], abs=1e-12)
    path = cache_path("model0")
    monkeypatch.setattr(experiments, "QUICK_SCORING", 1000)
    assert cache_path("model0") != path  # other scores: another entry
    monkeypatch.setenv("LOWRANK_QUICK", "")  # full mode: the key of the config alone, as before
    assert experiments.model_key(config_for("model0")) == cache.cache_key(config_for("model0"))


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
    assert [r["test_acc"] for r in retrained] == [
        r["test_acc"] for r in history
    ]  # deterministic retrain
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_or_train("model0")  # the rebuilt entry is intact


def test_interrupted_training_resumes_from_last_finished_epoch(
    quick_cache, counted_training, monkeypatch
):
    monkeypatch.setattr(experiments, "QUICK_EPOCHS", 3)
    real_save = experiments.atomic_save

    def crash_after_second_epoch(obj, path):
        real_save(obj, path)
        if len(obj["history"]) == 2 and path.name.endswith(".partial.pt"):
            raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "atomic_save", crash_after_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        load_or_train("model0")
    assert counted_training == [1, 2] and not is_cached("model0")
    monkeypatch.setattr(experiments, "atomic_save", real_save)
    _, history = load_or_train("model0")
    assert counted_training == [1, 2, 3]  # only the third epoch was trained again
    assert not list(quick_cache.glob("*.partial.pt")) and not list(quick_cache.glob("*.tmp"))

    straight, straight_history = experiments.train(config_for("model0"), experiments.load_mnist())
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in straight_history]
    assert torch.equal(load_or_train("model0")[0].W, straight.W)


def test_code_hash_covers_every_training_module_whole():
    sources = cache.training_sources()
    assert "class Training" in sources["train"] and "def weight_penalty" in sources["train"]
    assert "class MnistFCNet" in sources["model"] and "def load_mnist" in sources["data"]
    assert "def effective_rank" in sources["rank"]


def test_damaged_weights_fail_their_checksum_and_are_rebuilt(quick_cache, counted_training):
    model, _ = load_or_train("model0")
    path = cache_path("model0")
    at = path.read_bytes().find(model.W.detach().numpy().tobytes()[:4096])  # W's bytes, stored raw
    assert at > 0
    with open(path, "r+b") as f:  # the dd: 4 bytes inside a weight tensor
        f.seek(at + 4000)
        f.write(b"\x7f\x7f\x7f\x7f")
    assert torch.load(path, weights_only=True)["state_dict"]["fc2.weight"].abs().max() > 1e38
    with pytest.warns(UserWarning, match=rf"{path.name} is corrupt or stale \(checksum mismatch"):
        assert not is_cached("model0")
    assert path.exists()  # reported, not deleted
    with pytest.warns(UserWarning, match="checksum mismatch"):
        rebuilt, _ = load_or_train("model0")
    assert counted_training == [1, 1] and torch.equal(rebuilt.W, model.W)


@pytest.mark.parametrize(
    "damage", ["wrong shape", "missing key", "float64 weights", "bad history", "short history"]
)
def test_well_formed_entry_with_wrong_contents_is_rebuilt(quick_cache, counted_training, damage):
    load_or_train("model0")
    path = cache_path("model0")
    entry = {k: v for k, v in torch.load(path, weights_only=True).items() if k != "sha256"}
    state, history = dict(entry["state_dict"]), [dict(r) for r in entry["history"]]
    if damage == "wrong shape":
        state["fc2.weight"] = state["fc2.weight"][:10]
    elif damage == "missing key":
        del state["fc3.bias"]
    elif damage == "float64 weights":
        state["fc1.weight"] = state["fc1.weight"].double()
    elif damage == "bad history":
        history[0]["erank"] = "seven hundred"
    else:
        history = []
    torch.save(cache.seal({**entry, "state_dict": state, "history": history}), path)
    with pytest.warns(UserWarning, match="corrupt or stale"):
        assert not is_cached("model0")  # `list` no longer says "cached"
    with pytest.warns(UserWarning, match="corrupt or stale"):
        load_or_train("model0")
    assert counted_training == [1, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert is_cached("model0")


def deny_reading(monkeypatch, path):
    """chmod 000 as seen by a user without override rights (root reads anyway)."""
    real = type(path).read_bytes

    def read_bytes(self):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(type(path), "read_bytes", read_bytes)


def test_unreadable_entry_is_an_error_naming_it_and_is_kept(
    quick_cache, counted_training, monkeypatch
):
    load_or_train("model0")
    path = cache_path("model0")
    before = path.read_bytes()
    deny_reading(monkeypatch, path)
    for call in (lambda: is_cached("model0"), lambda: load_or_train("model0")):
        with pytest.raises(
            cache.CacheError, match=rf"^cannot read cache entry {path}: Permission denied"
        ):
            call()
    monkeypatch.undo()
    assert path.read_bytes() == before and counted_training == [1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file")
def test_chmod_000_entry_is_an_error_and_is_kept(quick_cache, counted_training):
    load_or_train("model0")
    path = cache_path("model0")
    path.chmod(0)
    try:
        with pytest.raises(cache.CacheError, match="Permission denied"):
            load_or_train("model0")
    finally:
        path.chmod(0o644)
    assert is_cached("model0") and counted_training == [1]


def test_unwritable_cache_is_found_before_any_training(tmp_path, monkeypatch, counted_training):
    monkeypatch.setenv("LOWRANK_QUICK", "1")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(
        "LOWRANK_CACHE", str(tmp_path / "file" / "cache")
    )  # not a folder, even for root
    with pytest.raises(
        cache.CacheError, match=rf"^cannot write to the cache folder {tmp_path}/file/cache: "
    ):
        load_or_train("model0")
    assert counted_training == []


@pytest.mark.parametrize(
    "value, quick",
    [
        ("1", True),
        ("on", True),
        ("Y", True),
        ("yes", True),
        ("true", True),
        ("", False),
        ("0", False),
        ("off", False),
        ("no", False),
        ("false", False),
    ],
)
def test_quick_mode_accepts_the_usual_spellings(monkeypatch, value, quick):
    monkeypatch.setenv("LOWRANK_QUICK", value)
    assert quick_mode() is quick


@pytest.mark.parametrize("value", ["2", "maybe", "quick"])
def test_quick_mode_rejects_anything_else(monkeypatch, value):
    monkeypatch.setenv("LOWRANK_QUICK", value)
    with pytest.raises(ValueError, match=rf"^LOWRANK_QUICK must be one of .*, got '{value}'$"):
        quick_mode()


def test_second_process_waits_for_the_first_and_loads(quick_cache, counted_training, monkeypatch):
    training, finish = threading.Event(), threading.Event()
    real_train = experiments.train

    def slow_train(*args, **kw):
        training.set()
        assert finish.wait(60)
        return real_train(*args, **kw)

    monkeypatch.setattr(experiments, "train", slow_train)
    results = {}
    first = threading.Thread(target=lambda: results.update(first=load_or_train("model0")))
    first.start()
    assert training.wait(60)
    second = threading.Thread(target=lambda: results.update(second=load_or_train("model0")))
    second.start()
    second.join(1.0)
    assert second.is_alive()  # waiting on the entry's lock, not training
    finish.set()
    first.join(60), second.join(60)
    assert counted_training == [1]  # trained once
    assert torch.equal(results["first"][0].W, results["second"][0].W)


@pytest.mark.parametrize("name", ["lowrank10", "dropout0", "classes3"])
def test_every_kind_of_entry_validates_after_training(quick_cache, counted_training, name):
    load_or_train(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert is_cached(name)
        load_or_train(name)
    assert counted_training == [1]


def test_seeds_are_part_of_the_cache_key_and_the_file_name(quick_cache, counted_training):
    assert cache_path("model0", seed=0) != cache_path("model0", seed=1)
    assert "-s1-" in cache_path("model0", seed=1).name
    a, _ = load_or_train("model0", seed=0)
    b, _ = load_or_train("model0", seed=1)
    assert counted_training == [1, 1] and not torch.equal(a.W, b.W)
    assert is_cached("model0", 0) and is_cached("model0", 1) and not is_cached("model0", 2)
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 2\*\*32\) .*, got -1$"):
        config_for("model0", seed=-1)


@pytest.mark.parametrize("seed", [2**32, 2**64])
def test_a_seed_beyond_32_bits_is_refused_before_anything_is_written(quick_cache, seed):
    # 2**32 would silently train seed 0 again; 2**64 overflowed in torch after the lock was made
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 2\*\*32\)"):
        load_or_train("model0", seed=seed)
    assert not quick_cache.exists() or not any(quick_cache.iterdir())


def test_every_family_has_its_seeds(monkeypatch):
    monkeypatch.setenv("LOWRANK_QUICK", "0")
    monkeypatch.setattr(
        experiments, "_history", lambda name, seed, train=True: None
    )  # nothing trained
    for name in experiments.EXPERIMENTS:
        seeds = experiments.planned_seeds(name)
        if experiments._sweep_of(name):
            assert seeds == [experiments.TUNING_SEED]  # a tuning seed until the sweep is done
            assert experiments.reported_seeds(name) == []
        elif name in experiments.DESCRIPTIVE:
            assert len(seeds) >= 2, name
        elif name.startswith(experiments.FEWER):  # paired tests that can reject at 5%
            assert seeds == list(range(6)), name
        else:  # the baseline, the groups of Step 4's verdicts
            assert seeds == list(range(8)), name
    monkeypatch.setenv("LOWRANK_QUICK", "1")
    assert all(
        experiments.planned_seeds(name) in ([0, 1], [experiments.TUNING_SEED])
        for name in experiments.EXPERIMENTS
    )  # two seeds


def test_one_factor_ablations_change_one_factor(monkeypatch):
    monkeypatch.setenv("LOWRANK_QUICK", "0")
    base = experiments.EXPERIMENTS["model0"]
    assert experiments.EXPERIMENTS["baseline20"] == experiments.replace(base, epochs=20)
    for penalty, names in experiments.SWEEPS.items():
        assert len(names) >= 5
        for name in names:
            c = experiments.EXPERIMENTS[name]
            assert experiments.replace(c, penalty=None, lam=0.0) == base and c.penalty == penalty


def test_the_class_experiment_gives_every_class_count_the_same_images_and_steps(monkeypatch):
    monkeypatch.setenv("LOWRANK_QUICK", "0")
    for C in experiments.CLASS_COUNTS:
        c = experiments.EXPERIMENTS[f"classes{C}"]
        assert experiments.replace(c, classes=10) == experiments.EXPERIMENTS["classes10"]
        assert c.random_digits and c.train_subset == experiments.CLASS_IMAGES
    for C in experiments.FROZEN_COUNTS:
        frozen = experiments.EXPERIMENTS[f"frozen{C}"]
        assert (
            experiments.replace(frozen, freeze_head=False) == experiments.EXPERIMENTS[f"classes{C}"]
        )


def test_fine_tuning_and_factorised_training_get_the_same_epochs():
    for r in experiments.FACTOR_RANKS:
        tuned, scratch = (experiments.EXPERIMENTS[f"{k}{r}"] for k in ("finetune", "lowrank"))
        assert tuned.start.epochs + tuned.epochs == scratch.epochs


def test_the_sweep_member_with_the_best_validation_accuracy_is_chosen_and_gets_more_seeds(
    quick_cache, monkeypatch
):
    monkeypatch.setattr(experiments, "QUICK_SEEDS", 2)
    names = experiments.SWEEPS["l2"]
    accuracy = dict(zip(names, (0.97, 0.975, 0.98, 0.96, 0.95), strict=True))
    asked = []
    monkeypatch.setattr(
        experiments,
        "_history",
        lambda name, seed, train=True: (
            asked.append(seed) or [{"val_acc": accuracy[name], "val_loss": 0.1}]
        ),
    )
    assert experiments.tuned("l2") == names[2]
    assert set(asked) == {experiments.TUNING_SEED}  # chosen on the tuning seed alone
    assert experiments.planned_seeds(names[2]) == [experiments.TUNING_SEED, 0, 1]
    assert experiments.reported_seeds(names[2]) == [0, 1]  # ... which is never reported
    assert experiments.planned_seeds(names[3]) == [experiments.TUNING_SEED]
    accuracy[names[3]] = 0.98  # a tie goes to the lower validation loss, then the first
    assert experiments.tuned("l2") == names[2]
    with pytest.raises(ValueError, match=r"^penalty must be one of l2, l1, nuclear, got 'l3'$"):
        experiments.tuned("l3")


def test_fine_tuning_starts_from_the_truncated_model_with_the_same_seed(
    quick_cache, counted_training
):
    from lowrank.train import truncated_start

    parent, _ = load_or_train("model0", seed=1)
    tuned_model, history = load_or_train("finetune5", seed=1)
    assert counted_training == [1, 1] and tuned_model.fc2.rank == 5 and len(history) == 1
    start = truncated_start(parent, 5)
    U, S, Vh = torch.linalg.svd(parent.W.double())
    assert torch.allclose(start.W.double(), U[:, :5] * S[:5] @ Vh[:5], atol=1e-5)  # W_5 exactly
    assert torch.equal(start.fc1.weight, parent.fc1.weight)
    assert not torch.equal(tuned_model.fc1.weight, parent.fc1.weight)  # and then trained on


def test_a_verified_entry_is_not_read_again_until_the_file_changes(
    quick_cache, counted_training, monkeypatch
):
    load_or_train("l2-1.0e-04", seed=0)
    reads = []
    real = experiments.load_entry
    monkeypatch.setattr(
        experiments, "load_entry", lambda *a, **k: reads.append(a[0]) or real(*a, **k)
    )
    assert experiments._history("l2-1.0e-04", 0, train=False) is not None and reads == []
    path = cache_path("l2-1.0e-04")
    path.write_bytes(b"not a torch file")  # changed on disk: read again, found corrupt
    with pytest.warns(UserWarning, match="corrupt or stale"):
        assert experiments._history("l2-1.0e-04", 0, train=False) is None
    assert reads == [path]


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 8832 vs 8726"),
        OSError(28, "No space left on device"),
    ],
)
def test_a_full_disk_is_one_line_naming_the_entry_and_the_room_it_needs(
    quick_cache, counted_training, monkeypatch, error
):
    def full_disk(obj, f):
        f.write(b"half an entry")
        raise error

    monkeypatch.setattr(experiments, "QUICK_HIDDEN", 1000)  # the real net's checkpoint
    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda p: SimpleNamespace(free=2 * 10**5))
    path = cache_path("model0").with_suffix(".partial.pt")  # the first file written
    with pytest.raises(cache.CacheError) as caught:
        load_or_train("model0")
    why = "No space left on device" if isinstance(error, OSError) else "the write failed"
    assert str(caught.value) == (
        f"cannot write cache entry {path}: {why}; it needs about 21.6 MB and its disk has "
        "0.2 MB free: make room, or set LOWRANK_CACHE to a folder on a disk with room "
        "(nothing was left half-written)"
    )
    assert sorted(p.name for p in quick_cache.iterdir() if not p.name.endswith(".lock")) == []


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_leftovers_of_killed_processes_are_removed_and_progress_is_kept(tmp_path):
    dead, live = dead_pid(), os.getpid()
    files = {
        f".a-s0-full-k.pt.{dead}.tmp": "removed",  # a half-written entry of a killed process
        f".a-s0-full-k.partial.pt.{dead}.tmp": "removed",
        f".write-test.{dead}": "removed",
        f".b-s0-full-k.pt.{live}.tmp": "kept",  # a live process is writing it
        "c-s0-full-k.pt": "kept",
        "c-s0-full-k.partial.pt": "removed",  # superseded: its entry is complete
        "d-s0-full-k.partial.pt": "kept",  # the resume point of an interrupted training
        "e-s0-full-k.pt": "kept",
        "e-s0-full-k.partial.pt": "kept",  # a --force retraining holds its lock now
    }
    for name in files:
        (tmp_path / name).write_bytes(b"x" * 1000)
    with cache.entry_lock(tmp_path / "e-s0-full-k.pt"):
        removed = cache.remove_leftovers(tmp_path)
    gone = sorted(name for name, fate in files.items() if fate == "removed")
    assert sorted(path.name for path, _ in removed) == gone
    assert all(size == 1000 for _, size in removed)
    assert all((tmp_path / name).exists() == (fate == "kept") for name, fate in files.items())


def test_a_numpy_seed_is_the_same_seed():
    import numpy as np

    assert config_for("model0", np.int64(3)) == config_for("model0", 3)
    assert cache_path("model0", np.int64(3)) == cache_path("model0", 3)


def test_a_cached_record_is_read_without_loading_its_model(
    quick_cache, counted_training, monkeypatch
):
    from lowrank.ablations import records_for

    data = experiments.scoring_data(experiments.load_mnist())
    first = records_for("model0", data)
    assert [rec["seed"] for rec in first] == experiments.reported_seeds("model0")
    assert counted_training == [1] * len(first)

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded for a cached record")

    monkeypatch.setattr(experiments, "load_or_train", no_loading)
    again = records_for("model0", data)
    assert [rec["needed"] for rec in again] == [rec["needed"] for rec in first]
    assert experiments.history("model0", 1)[-1] == load_or_train("model0", seed=1)[1][-1]
    with pytest.raises(ValueError, match="^seed must be an integer in"):
        experiments.history("model0", -1)
