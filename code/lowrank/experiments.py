"""The post's trained models, cached on disk and keyed by their config and the training code.

    model, history = load_or_train("model0")    # trains once (~1 min), then loads in a second

Cache: .cache/lowrank/ under the repository, or $LOWRANK_CACHE. LOWRANK_QUICK=1 shrinks every
experiment to one epoch on 5,000 images (for tests); quick and full runs never share an entry.
"""

import hashlib
import json
import os
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from lowrank.data import REPO_ROOT, load_mnist
from lowrank.model import MnistFCNet
from lowrank.train import TrainConfig, train

EXPERIMENTS: dict[str, TrainConfig] = {
    # The draft's baseline, exactly: lr 1e-3, gamma 0.7, batch 64, dropout 0.5, 5 epochs.
    "model0": TrainConfig(lr=1e-3, gamma=0.7, batch_size=64, dropout=0.5, epochs=5),
    # L2 penalty, smaller batch, higher lr, 20 epochs (values: see TUNING).
    "model6": TrainConfig(lr=2e-3, gamma=0.7, batch_size=32, dropout=0.5, epochs=20, penalty="l2", lam=1e-4),
    # L1 penalty, less dropout, higher gamma, 20 epochs (values: see TUNING).
    "model10": TrainConfig(lr=1e-3, gamma=0.9, batch_size=64, dropout=0.2, epochs=20, penalty="l1", lam=5e-5),
}

TUNING = """How the values the draft leaves open were chosen (seed 0, CPU, full MNIST).

The draft names only the direction of each change. We took the simplest reading of it:
model6 halves the batch (64 -> 32) and doubles the learning rate (1e-3 -> 2e-3); model10 lowers
dropout from 0.5 to 0.2 and raises gamma from 0.7 to 0.9. Only the penalty strength lambda
was then searched, against the draft's table: every model >= 98.0% test accuracy, effective
rank model10 < model6 < model0, near its ~111 / ~396 / ~729.

model6 (L2): lambda 5e-5 reached effective rank 574 after 4 epochs (97.3%), falling too slowly;
2e-4 reached 348 after 8 epochs at 97.95% (heading below 330, accuracy borderline);
1e-4 gave 403.3 and 98.31% after 20 epochs. Chosen: 1e-4.
model10 (L1): lambda 1e-5 reached 319 after 7 epochs, levelling off far above 111; 3e-5 gave
143.4 and 98.53% after 20 epochs; 5e-5 gave 117.8 and 98.43%. Chosen: 5e-5.
(The 5e-5 and 2e-4 L2 runs and the 1e-5 L1 run used unfused Adam, an earlier version of the
loop; the chosen configs were trained by the code in this package.)
"""

# Going further: model0's schedule with the middle layer trained as U V of rank r, and with
# other dropout probabilities.
for r in (10, 20, 50, 100):
    EXPERIMENTS[f"lowrank{r}"] = replace(EXPERIMENTS["model0"], rank=r)
for p in (0.0, 0.25):
    EXPERIMENTS[f"dropout{int(100 * p)}"] = replace(EXPERIMENTS["model0"], dropout=p)

DESCRIPTIONS = {
    "model0": "baseline",
    "model6": "L2 penalty, smaller batch size, higher learning rate",
    "model10": "L1 penalty, less dropout, higher γ",
    **{f"lowrank{r}": f"baseline with W trained as U V of rank {r}" for r in (10, 20, 50, 100)},
    **{f"dropout{p}": f"baseline with dropout {p / 100:g}" for p in (0, 25)},
}

QUICK_EPOCHS, QUICK_SUBSET = 1, 5000


def quick_mode() -> bool:
    """True when LOWRANK_QUICK is set to 1/true/yes: results are for testing, not for reading."""
    return os.environ.get("LOWRANK_QUICK", "").strip().lower() in ("1", "true", "yes")


def config_for(name: str) -> TrainConfig:
    """The config that `load_or_train(name)` trains, shrunk in quick mode."""
    if name not in EXPERIMENTS:
        raise ValueError(f"name must be one of {', '.join(EXPERIMENTS)}, got {name!r}")
    config = EXPERIMENTS[name]
    return replace(config, epochs=QUICK_EPOCHS, train_subset=QUICK_SUBSET) if quick_mode() else config


def describe(name: str) -> str:
    """One line: the draft's description and the exact hyperparameters."""
    c = config_for(name)
    penalty = f", {c.penalty.upper()} λ={c.lam:g}" if c.penalty else ""
    return (f"{DESCRIPTIONS[name]} (lr {c.lr:g}, γ {c.gamma:g}, batch {c.batch_size}, "
            f"dropout {c.dropout:g}, {c.epochs} epochs{penalty})")


def cache_dir() -> Path:
    return Path(os.environ.get("LOWRANK_CACHE") or REPO_ROOT / ".cache" / "lowrank")


TRAINING_CODE = ("data", "model", "rank", "train")  # the modules whose source determines a trained model


def training_sources() -> dict[str, str]:
    """The source files of TRAINING_CODE, read from disk (lowrank.train is shadowed by the function)."""
    here = Path(__file__).parent
    return {name: (here / f"{name}.py").read_text() for name in TRAINING_CODE}


def code_hash() -> str:
    """Hash of the source that determines a trained model: any change there retrains."""
    return hashlib.sha256(json.dumps(training_sources(), sort_keys=True).encode()).hexdigest()


def cache_key(config: TrainConfig) -> str:
    payload = json.dumps({"config": config.to_dict(), "code": code_hash(), "torch": torch.__version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def cache_path(name: str) -> Path:
    config = config_for(name)
    mode = "quick" if quick_mode() else "full"
    return cache_dir() / f"{name}-{mode}-{cache_key(config)}.pt"


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old entry or the new one, never half of one
    finally:
        tmp.unlink(missing_ok=True)


def _load_entry(path: Path, key: str, epochs: int | None) -> dict | None:
    """The cache entry at path if it is intact and belongs to `key`, else None (with a warning)."""
    if not path.exists():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        ok = isinstance(entry, dict) and entry.get("key") == key
        ok = ok and (epochs is None or len(entry["history"]) == epochs)
        if not ok:
            raise ValueError("entry does not match its config")
        return entry
    except Exception as e:
        warnings.warn(f"cache entry {path} is corrupt or stale ({type(e).__name__}: {e}); retraining", stacklevel=3)
        path.unlink(missing_ok=True)
        return None


def is_cached(name: str) -> bool:
    """Whether `load_or_train(name)` would load rather than train (intact entry present)."""
    config = config_for(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = cache_path(name)
        return path.exists() and _load_entry(path, cache_key(config), config.epochs) is not None


def load_or_train(name: str, force: bool = False, progress: bool | None = None) -> tuple[MnistFCNet, list[dict]]:
    """The trained model `name` and its per-epoch history, from the cache or trained now.

    Training writes a checkpoint after every epoch, so an interrupted run resumes from its last
    finished epoch. `force=True` retrains from scratch.
    """
    config = config_for(name)
    key, path = cache_key(config), cache_path(name)
    partial = path.with_suffix(".partial.pt")
    if force:
        path.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    entry = _load_entry(path, key, config.epochs)
    if entry is None:
        resume = _load_entry(partial, key, None)
        trained, history = train(
            config, load_mnist(), resume=resume and resume["checkpoint"], progress=progress,
            on_epoch=lambda ckpt: _atomic_save({"key": key, "history": ckpt["history"], "checkpoint": ckpt}, partial),
        )
        entry = {"key": key, "config": config.to_dict(), "history": history, "state_dict": trained.state_dict()}
        _atomic_save(entry, path)
        partial.unlink(missing_ok=True)
    model = MnistFCNet(config.hidden, config.dropout, config.rank)
    model.load_state_dict(entry["state_dict"])
    return model.eval(), entry["history"]
