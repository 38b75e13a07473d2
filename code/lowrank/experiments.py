"""The post's experiments: which exist, their configs and their seeds; each (experiment, seed)
trained once and then loaded from the cache (lowrank.cache).

    model, history = load_or_train("model0", seed=3)   # trains once (~1 min), then loads
    runs = load_seeds("model0")                         # [(model, history)] for each of its seeds
    load_seeds(tuned("l2"))                             # the L2 sweep's λ, chosen on validation

Cache: .cache/lowrank/ under the repository, or $LOWRANK_CACHE. LOWRANK_QUICK=1 shrinks every
experiment to hidden layers of 256 units, one epoch on 2,000 images, scored on 2,000 validation
and test images, and two seeds (for tests); quick and full runs never share an entry.
"""

import os
from dataclasses import replace
from numbers import Integral
from pathlib import Path

import torch

from lowrank.cache import (
    atomic_save,
    cache_dir,
    cache_key,
    check_writable,
    entry_lock,
    load_entry,
    remember,
    seal,
    verified_history,
)
from lowrank.data import Mnist, load_mnist
from lowrank.model import MnistFCNet
from lowrank.train import SEED_LIMIT, TrainConfig, initial_model, network, train

BASELINE = TrainConfig(lr=1e-3, gamma=0.7, batch_size=64, dropout=0.5, epochs=5)

EXPERIMENTS: dict[str, TrainConfig] = {
    # The draft's baseline, exactly: lr 1e-3, gamma 0.7, batch 64, dropout 0.5, 5 epochs.
    "model0": BASELINE,
    # L2 penalty, smaller batch, higher lr, 20 epochs (values: README, How model6 and model10
    # were tuned).
    "model6": TrainConfig(
        lr=2e-3, gamma=0.7, batch_size=32, dropout=0.5, epochs=20, penalty="l2", lam=1e-4
    ),
    # L1 penalty, less dropout, higher gamma, 20 epochs (values: README, How model6 and model10
    # were tuned).
    "model10": TrainConfig(
        lr=1e-3, gamma=0.9, batch_size=64, dropout=0.2, epochs=20, penalty="l1", lam=5e-5
    ),
    # the baseline trained as long as model6 and model10: training length as one factor
    "baseline20": replace(BASELINE, epochs=20),
}

# One factor at a time: the baseline with one penalty added, at strengths a factor 5 (L1, L2)
# or 3 (nuclear) apart, wide enough that validation accuracy falls at the strongest and the
# weakest is the baseline in all but name; L1's reaches two steps lower than the others, so
# that validation turns on both sides of its choice. The λ used is chosen on validation on a
# seed that is then not reported (tuned()); the nuclear penalty's λ is the threshold applied
# to W's singular values after every epoch.
LAMBDAS = {
    "l2": (8e-7, 4e-6, 2e-5, 1e-4, 5e-4),
    "l1": (1.6e-8, 8e-8, 4e-7, 2e-6, 1e-5, 5e-5, 2.5e-4),
    "nuclear": (0.05, 0.15, 0.5, 1.5, 4.5),
}
for penalty, lams in LAMBDAS.items():
    for lam in lams:
        EXPERIMENTS[f"{penalty}-{lam:.1e}"] = replace(BASELINE, penalty=penalty, lam=lam)
SWEEPS = {penalty: [f"{penalty}-{lam:.1e}" for lam in lams] for penalty, lams in LAMBDAS.items()}

# Going further: the baseline with the middle layer trained as U V of rank r from scratch, for
# 6 epochs; the baseline (5 epochs) truncated to rank r and fine-tuned in that form for one
# more epoch, continuing its learning-rate schedule: both get 6 epochs in all. Other dropout
# probabilities.
FACTOR_RANKS = (5, 10, 20, 50)
for r in FACTOR_RANKS:
    EXPERIMENTS[f"lowrank{r}"] = replace(BASELINE, rank=r, epochs=BASELINE.epochs + 1)
for r in FACTOR_RANKS:
    EXPERIMENTS[f"finetune{r}"] = replace(
        BASELINE, rank=r, epochs=1, start=BASELINE, lr=BASELINE.lr * BASELINE.gamma**BASELINE.epochs
    )
for p in (0.0, 0.25):
    EXPERIMENTS[f"dropout{int(100 * p)}"] = replace(BASELINE, dropout=p)

# The class-count experiment, controlled: C digits drawn at random for each seed, and for every
# C the same number of training images (CLASS_IMAGES, fewer than the two rarest digits have)
# and so the same number of optimizer steps; CLASS_EPOCHS epochs of them. "frozen{C}" is the
# intervention: the same, with the output layer kept at its random initialisation.
CLASS_COUNTS = tuple(range(2, 11))
FROZEN_COUNTS = (2, 5, 10)
CLASS_IMAGES, CLASS_EPOCHS = 8000, 6
CLASSES = replace(BASELINE, random_digits=True, train_subset=CLASS_IMAGES, epochs=CLASS_EPOCHS)
for C in CLASS_COUNTS:
    EXPERIMENTS[f"classes{C}"] = replace(CLASSES, classes=C)
for C in FROZEN_COUNTS:
    EXPERIMENTS[f"frozen{C}"] = replace(CLASSES, classes=C, freeze_head=True)

PENALTY_NAMES = {"l1": "L1", "l2": "L2", "nuclear": "nuclear-norm"}
DESCRIPTIONS = {
    "model0": "baseline",
    "model6": "L2 penalty, smaller batch size, higher learning rate",
    "model10": "L1 penalty, less dropout, higher γ",
    "baseline20": "baseline for 20 epochs",
    **{
        name: f"baseline + {PENALTY_NAMES[penalty]} penalty"
        for penalty, names in SWEEPS.items()
        for name in names
    },
    **{f"lowrank{r}": f"baseline with W trained as U V of rank {r}" for r in FACTOR_RANKS},
    **{
        f"finetune{r}": f"baseline truncated to rank {r}, fine-tuned 1 epoch as U V"
        for r in FACTOR_RANKS
    },
    **{f"dropout{p}": f"baseline with dropout {p / 100:g}" for p in (0, 25)},
    **{
        f"classes{C}": f"baseline on {C} random digits, {CLASS_IMAGES} images" for C in CLASS_COUNTS
    },
    **{f"frozen{C}": f"classes{C} with the output layer frozen" for C in FROZEN_COUNTS},
}

# Seeds: 8 for the baseline, the penalties, the class counts and the frozen heads, the
# comparisons of Step 4; 6 for the factorised and fine-tuned networks (6 pairs are the
# fewest with which the exact sign-flip test can reject at 5%: p ≥ 2/2^n); the 20-epoch
# baseline and the draft's model6 and model10 are descriptive and get 3 and 2, the dropout
# variants 2. A λ sweep's members are trained on TUNING_SEED only, which no table or verdict
# reports; the chosen one then gets SEEDS.
SEEDS, SEEDS_OTHER = 8, 6
DESCRIPTIVE = {"model6": 2, "model10": 2, "baseline20": 3, "dropout0": 2, "dropout25": 2}
FEWER = ("lowrank", "finetune")
TUNING_SEED = 1000
# two seeds: every paired test and interval of the post runs in the tests
QUICK_EPOCHS, QUICK_SUBSET, QUICK_SEEDS = 1, 2000, 2
QUICK_HIDDEN = 256  # W is 256 x 256: its SVDs are ~60 times cheaper than the real 1000 x 1000


TRUE, FALSE = ("1", "true", "yes", "y", "on"), ("", "0", "false", "no", "n", "off")


def quick_mode() -> bool:
    """True when LOWRANK_QUICK is 1/true/yes/y/on: results are for testing, not for reading."""
    value = os.environ.get("LOWRANK_QUICK", "")
    if value.strip().lower() not in TRUE + FALSE:  # a typo must not start a 10-minute run
        raise ValueError(
            f"LOWRANK_QUICK must be one of {'/'.join(TRUE)} or {'/'.join(FALSE[1:])} "
            f"or empty, got {value!r}"
        )
    return value.strip().lower() in TRUE


# quick mode scores its epochs and the post's analyses on this many validation and test images
QUICK_SCORING = 2000


def scoring_data(data: Mnist) -> Mnist:
    """`data` as the post scores its models, and as quick mode's training scores its epochs:
    whole, or in quick mode only the first 2,000 validation and test images."""
    if not quick_mode():
        return data
    n = QUICK_SCORING
    return replace(
        data,
        val_x=data.val_x[:n],
        val_y=data.val_y[:n],
        test_x=data.test_x[:n],
        test_y=data.test_y[:n],
    )


def check_name(name: str) -> None:
    if name not in EXPERIMENTS:
        raise ValueError(f"name must be one of {', '.join(EXPERIMENTS)}, got {name!r}")


def _with_seed(config: TrainConfig, seed: int) -> TrainConfig:
    """config, and the config it fine-tunes from, with `seed`."""
    return replace(config, seed=seed, start=config.start and _with_seed(config.start, seed))


def _shrunk(config: TrainConfig) -> TrainConfig:
    """config as quick mode trains it: QUICK_EPOCHS epochs on QUICK_SUBSET images, QUICK_HIDDEN
    units in each hidden layer (and so the config it fine-tunes from); unchanged in full mode."""
    if not quick_mode():
        return config
    start = config.start and _shrunk(config.start)
    return replace(
        config,
        epochs=min(config.epochs, QUICK_EPOCHS),
        train_subset=QUICK_SUBSET,
        hidden=QUICK_HIDDEN,
        start=start,
    )


def config_for(name: str, seed: int = 0) -> TrainConfig:
    """The config that `load_or_train(name, seed=seed)` trains, shrunk in quick mode."""
    check_name(name)
    if not (isinstance(seed, Integral) and not isinstance(seed, bool) and 0 <= seed < SEED_LIMIT):
        raise ValueError(
            f"seed must be an integer in [0, 2**32) (the random generators keep 32 bits of "
            f"a seed), got {seed!r}"
        )
    return _shrunk(_with_seed(EXPERIMENTS[name], int(seed)))


def initial_weight(name: str, seed: int = 0) -> torch.Tensor:
    """W₀, the W that `load_or_train(name, seed=seed)` starts training from."""
    return initial_model(config_for(name, seed)).W.detach()


def describe(name: str) -> str:
    """One line: the draft's description and the exact hyperparameters."""
    c = config_for(name)
    penalty = f", {c.penalty.upper()} λ={c.lam:g}" if c.penalty else ""
    digits = (
        f", {c.classes} digits drawn per seed"
        if c.random_digits
        else f", digits 0-{c.classes - 1}"
        if c.classes < 10
        else ""
    )
    digits += f", {c.train_subset} images" if c.train_subset and not quick_mode() else ""
    digits += ", output layer frozen" if c.freeze_head else ""
    start = f", from the truncated {_name_of(c.start)}" if c.start else ""
    return (
        f"{DESCRIPTIONS[name]} (lr {c.lr:g}, γ {c.gamma:g}, batch {c.batch_size}, "
        f"dropout {c.dropout:g}, {c.epochs} epochs{penalty}{digits}{start})"
    )


def _name_of(config: TrainConfig) -> str:
    """The experiment whose config (at seed 0) this is."""
    return next(
        name for name, c in EXPERIMENTS.items() if replace(config, seed=0) in (c, config_for(name))
    )


def _sweep_of(name: str) -> str | None:
    return next((penalty for penalty, names in SWEEPS.items() if name in names), None)


def tuned(penalty: str) -> str:
    """The λ sweep's member chosen on validation: the highest validation accuracy of its tuning
    seed (TUNING_SEED, never reported) after the last epoch (ties: the lower validation loss).
    Trains the sweep if needed."""
    if penalty not in SWEEPS:
        raise ValueError(f"penalty must be one of {', '.join(SWEEPS)}, got {penalty!r}")
    last = {name: _history(name, TUNING_SEED)[-1] for name in SWEEPS[penalty]}
    return max(SWEEPS[penalty], key=lambda name: (last[name]["val_acc"], -last[name]["val_loss"]))


def _seeds(n: int) -> list[int]:
    return list(range(min(n, QUICK_SEEDS) if quick_mode() else n))


def static_seeds(name: str) -> list[int]:
    """The seeds of `name` known before anything is trained: all of them, but a λ sweep's
    member has only its tuning seed (lowrank.shards splits these between machines)."""
    check_name(name)
    if _sweep_of(name):
        return [TUNING_SEED]
    if name.startswith(FEWER):
        return _seeds(SEEDS_OTHER)
    return _seeds(DESCRIPTIVE.get(name, SEEDS))


def planned_seeds(name: str) -> list[int]:
    """The seeds `load_seeds(name)` uses, as far as is known without training anything.

    A λ sweep's member gets its tuning seed; once every member of its sweep is cached, the
    one chosen on validation gets the reported seeds as well (`reported_seeds`).
    """
    check_name(name)
    penalty = _sweep_of(name)
    if penalty is not None:
        swept = all(
            _history(member, TUNING_SEED, train=False) is not None for member in SWEEPS[penalty]
        )
        if swept and tuned(penalty) == name:
            return [TUNING_SEED, *_seeds(SEEDS)]
    return static_seeds(name)


def reported_seeds(name: str) -> list[int]:
    """The seeds the post reports for `name`: its planned seeds less the tuning seed."""
    return [s for s in planned_seeds(name) if s != TUNING_SEED]


def settled_seeds(name: str) -> list[int]:
    """reported_seeds(name) once a λ sweep's choice is made (its tuning runs trained now where
    not cached): none for a λ the validation split did not choose."""
    if _sweep_of(name) is not None:
        tuned(_sweep_of(name))
    return reported_seeds(name)


def load_seeds(name: str, progress: bool | None = None) -> list[tuple[MnistFCNet, list[dict]]]:
    """(model, history) for each reported seed of `name` (not the tuning seed), trained now
    where not cached; none for a λ the validation split did not choose."""
    return [load_or_train(name, progress=progress, seed=s) for s in settled_seeds(name)]


def history(name: str, seed: int = 0) -> list[dict]:
    """The per-epoch history of (name, seed), trained now where not cached; its entry is read
    and verified once per process, and the weights are not kept."""
    check_name(name)
    config_for(name, seed)  # checks the seed
    return _history(name, seed)


def model_key(config: TrainConfig) -> str:
    """cache_key of a config as this mode trains it: quick mode's histories are scored on
    QUICK_SCORING images (scoring_data), which its key says."""
    return cache_key(config, scored=QUICK_SCORING if quick_mode() else None)


def cache_path(name: str, seed: int = 0) -> Path:
    config = config_for(name, seed)
    mode = "quick" if quick_mode() else "full"
    return cache_dir() / f"{name}-s{seed}-{mode}-{model_key(config)}.pt"


def _history(name: str, seed: int, train: bool = True) -> list[dict] | None:
    """The history of (name, seed): verified once per process; trained now if `train`, else None
    when there is no intact entry."""
    config = config_for(name, seed)
    path, key = cache_path(name, seed), model_key(config)
    if (history := verified_history(path, key)) is not None:
        return history
    if train:
        return load_or_train(name, seed=seed)[1]
    entry = load_entry(path, key, config)
    return None if entry is None else entry["history"]


def is_cached(name: str, seed: int = 0) -> bool:
    """Whether `load_or_train(name, seed=seed)` would load rather than train (intact entry present).

    A corrupt entry gives a warning and False; an unreadable one raises CacheError.
    """
    config = config_for(name, seed)
    return load_entry(cache_path(name, seed), model_key(config), config) is not None


def load_or_train(
    name: str, force: bool = False, progress: bool | None = None, seed: int = 0
) -> tuple[MnistFCNet, list[dict]]:
    """The trained model `name` with `seed` and its per-epoch history, from the cache or
    trained now.

    Training writes a checkpoint after every epoch, so an interrupted run resumes from its last
    finished epoch. `force=True` retrains from scratch. One process trains an entry at a time;
    another asking for it meanwhile waits and then loads it. A fine-tuning experiment first
    loads (or trains) the model it starts from, with the same seed.
    """
    config = config_for(name, seed)
    key, path = model_key(config), cache_path(name, seed)
    partial = path.with_suffix(".partial.pt")
    entry = None if force else load_entry(path, key, config)
    if entry is None:
        check_writable(path.parent)  # before an epoch of work, not after
        with entry_lock(path):
            entry = None if force else load_entry(path, key, config)  # trained while we waited?
            if entry is None:
                start = (
                    config.start
                    and load_or_train(_name_of(config.start), progress=progress, seed=seed)[0]
                )
                resume = None if force else load_entry(partial, key, config, complete=False)
                entry = _train_entry(config, key, path, partial, resume, progress, start)
    model = network(config)
    model.load_state_dict(entry["state_dict"])
    return model.eval(), entry["history"]


def _train_entry(config, key, path, partial, resume, progress, start) -> dict:
    def save_checkpoint(ckpt):
        atomic_save(seal({"key": key, "history": ckpt["history"], "checkpoint": ckpt}), partial)

    trained, history = train(
        config,
        scoring_data(load_mnist()),
        resume=resume and resume["checkpoint"],
        progress=progress,
        on_epoch=save_checkpoint,
        start=start,
    )
    entry = seal(
        {
            "key": key,
            "config": config.to_dict(),
            "history": history,
            "state_dict": trained.state_dict(),
        }
    )
    atomic_save(entry, path)
    remember(path, key, history)
    partial.unlink(missing_ok=True)
    return entry
