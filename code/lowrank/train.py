"""Training with Adam and StepLR, recording the effective rank of W after every epoch.

    from lowrank import TrainConfig, load_mnist, train
    model, history = train(TrainConfig(epochs=5), load_mnist())

The step is autograd through MnistFCNet's own forward pass (lowrank.model), so changing the
network changes what is trained. Training always runs on TRAIN_THREADS intra-op threads:
the thread count changes the floats, and a trained model must depend only on its config.
"""

import hashlib
import math
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from numbers import Integral

import torch
import torch.nn.functional as F

from lowrank.checks import is_real
from lowrank.data import Mnist
from lowrank.mechanism import update_shares
from lowrank.model import MAX_DROPOUT, Dropout, MnistFCNet, evaluate, factorised, weights
from lowrank.rank import spectral_ranks

# One thread per model: the matrix products of a 64-image batch use a second thread poorly
# (make train runs one model per core instead), and every way of training (the post, make
# train, the CLI, train()) must give the same floats for the same config.
TRAIN_THREADS = 1

SEED_LIMIT = 2**32  # torch's CPU generator keeps the low 32 bits: seed 2**32 would be seed 0
INT_FIELDS = ("batch_size", "epochs", "seed", "train_subset", "hidden", "rank", "classes")
REAL_FIELDS = ("lr", "gamma", "dropout", "lam")
PENALTIES = (None, "l1", "l2", "nuclear")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (with the data and the training code)."""

    lr: float = 1e-3
    gamma: float = 0.7  # StepLR: lr is multiplied by gamma after every epoch
    batch_size: int = 64
    epochs: int = 5
    dropout: float = 0.5
    penalty: str | None = None  # None, "l1", "l2" or "nuclear"
    lam: float = 0.0  # penalty strength lambda (for "nuclear": the threshold of each epoch)
    seed: int = 0
    train_subset: int | None = None  # train on the first n images only (quick mode)
    hidden: int = 1000
    rank: int | None = None  # train the middle layer as U V of this rank (None: dense W)
    classes: int = 10  # train (and evaluate) on the digits 0 … classes − 1 only
    random_digits: bool = False  # ... or on `classes` digits drawn at random from the seed
    freeze_head: bool = False  # keep the output layer fc3 at its random initialisation
    # fine-tuning: start from the model that `start` trains (same seed), W truncated to `rank`
    start: "TrainConfig | None" = None

    def __post_init__(self):
        # types and ranges in one place; numpy integers and floats become Python ones, so
        # that equal configs have equal cache keys (to_dict is what the key hashes)
        for name in INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, Integral) and not isinstance(value, bool):
                object.__setattr__(self, name, int(value))
        for name in REAL_FIELDS:
            value = getattr(self, name)
            if is_real(value):
                object.__setattr__(self, name, float(value))

        def integer(value, low, high=math.inf):
            return type(value) is int and low <= value <= high

        def real(value, low, high):
            return type(value) is float and math.isfinite(value) and low <= value <= high

        checks = {
            "lr": real(self.lr, 0, math.inf) and self.lr > 0,
            "gamma": real(self.gamma, 0, 1) and self.gamma > 0,
            "batch_size": integer(self.batch_size, 1),
            "epochs": integer(self.epochs, 1),
            "dropout": real(self.dropout, 0, MAX_DROPOUT),
            "penalty": self.penalty in PENALTIES,
            "random_digits": type(self.random_digits) is bool,
            "freeze_head": type(self.freeze_head) is bool,
            "lam": real(self.lam, 0, math.inf) and (self.lam == 0 or self.penalty is not None),
            "seed": integer(self.seed, 0, SEED_LIMIT - 1),
            "train_subset": self.train_subset is None or integer(self.train_subset, 1),
            "hidden": integer(self.hidden, 1),
            "rank": self.rank is None or integer(self.rank, 1, self.hidden),
            "classes": integer(self.classes, 2, 10),
            "start": self.start is None
            or (
                isinstance(self.start, TrainConfig)
                and self.start.rank is None
                and self.rank is not None
                and (self.start.seed, self.start.hidden, self.start.classes)
                == (self.seed, self.hidden, self.classes)
                and self.start.random_digits == self.random_digits
            ),
        }
        allowed = {
            "lr": "a finite number > 0",
            "gamma": "a number in (0, 1]",
            "batch_size": "an integer >= 1",
            "epochs": "an integer >= 1",
            "dropout": "a number in [0, 1 - 2**-32] (dropout keeps a unit on 32 random bits)",
            "penalty": "None, 'l1', 'l2' or 'nuclear'",
            "random_digits": "True or False",
            "freeze_head": "True or False",
            "lam": "a finite number >= 0 (and 0 when penalty is None)",
            "seed": "an integer in [0, 2**32) (the random generators keep 32 bits of a seed)",
            "train_subset": "None or an integer >= 1",
            "hidden": "an integer >= 1",
            "rank": f"None or an integer in [1, {self.hidden}]",
            "classes": "an integer in [2, 10]",
            "start": "None or the TrainConfig of a dense model with this seed, hidden and classes "
            "(and rank set: the rank to truncate it to)",
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} must be {allowed[name]}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def network(config: TrainConfig) -> MnistFCNet:
    """A fresh MnistFCNet of the config's shape (initialised from torch's global generator)."""
    return MnistFCNet(config.hidden, config.dropout, config.rank, config.classes)


def initial_model(config: TrainConfig) -> MnistFCNet:
    """The network training starts from: torch seeded with the config's seed, then built."""
    torch.manual_seed(config.seed)
    return network(config)


def digits(config: TrainConfig) -> tuple[int, ...]:
    """The digits a config trains on, labelled 0 … C−1 in this order: 0 … C−1, or with
    random_digits C of the ten drawn from the seed (ascending)."""
    if not config.random_digits:
        return tuple(range(config.classes))
    g = torch.Generator().manual_seed(
        int.from_bytes(hashlib.sha256(f"digits {config.seed}".encode()).digest()[:4], "little")
    )
    return tuple(sorted(torch.randperm(10, generator=g)[: config.classes].tolist()))


def singular_value_threshold(W: torch.Tensor, tau: float) -> torch.Tensor:
    """The proximal step of tau ‖W‖_* (Cai, Candès & Shen 2010): W's singular values less
    tau, those below tau set to zero."""
    L, S, Rh = torch.linalg.svd(W.double(), full_matrices=False)
    return ((L * (S - tau).clamp(min=0)) @ Rh).to(W.dtype)


def weight_penalty(model: MnistFCNet, penalty: str | None, lam: float) -> torch.Tensor:
    """lam * sum over the weight matrices of sum |w| (l1) or sum w^2 (l2); biases are not
    penalised. For a factorised middle layer, its factors U and V are penalised in place of W.

    With l2 this adds 2 lam w to each weight's gradient before Adam rescales it, which is *not*
    the decoupled weight decay of AdamW (nor the SGD weight decay analysed by Galanti et al.).
    Training adds exactly this gradient (Training.step), without forming the penalty.
    ("nuclear" is not a gradient penalty: training thresholds W's singular values after every
    epoch, Training.threshold.)
    """
    ws = weights(model)
    if penalty not in ("l1", "l2") or lam == 0:
        return torch.zeros((), device=ws[0].device)
    if penalty == "l1":
        return lam * sum(w.abs().sum() for w in ws)
    return lam * sum(w.square().sum() for w in ws)


def truncated_start(model: MnistFCNet, rank: int) -> MnistFCNet:
    """A copy of the trained `model` with W = L Σ Rᵀ replaced by its rank-r truncation,
    stored as U = L_r Σ_r^½ and V = Σ_r^½ R_rᵀ: the factors share Σ evenly, so that Adam
    starts them at one scale."""
    L, S, Rh = torch.linalg.svd(model.W.detach().double(), full_matrices=False)
    root = S[:rank].sqrt()
    U, V = (L[:, :rank] * root).float(), (root[:, None] * Rh[:rank]).float()
    return factorised(model, U, V).train()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def dropout_seed(seed: int) -> int:
    """The seed of a model's dropout generator: derived from `seed`, apart from its shuffle
    seed. (The CPU generator keeps only the low 32 bits of a seed, so seed + 2**32 would
    collide.)"""
    return int.from_bytes(hashlib.sha256(f"dropout {seed}".encode()).digest()[:4], "little")


@contextmanager
def threads(n: int):
    """torch's intra-op thread count set to n for the duration, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Training:
    """One model in training: the net, Adam, StepLR, its data order and its dropout stream.

    The model starts as torch.manual_seed(seed) then MnistFCNet (or the weights of `start`
    when fine-tuning). Its parameters get fresh gradients from autograd at every step, and
    the fused Adam updates them in one kernel. The L2 penalty's gradient 2 lam w is Adam's
    (coupled) weight_decay on the weights; the L1 penalty's, lam sign(w), is added to them.
    """

    def __init__(self, config: TrainConfig, device: torch.device, start: MnistFCNet | None = None):
        self.config = config
        self.model = initial_model(config)
        if start is not None:  # fine-tuning: start from these weights
            self.model.load_state_dict(start.state_dict())
        self.model.to(device).train()
        if config.freeze_head:
            self.model.fc3.requires_grad_(False)
        self.weights = [w for w in weights(self.model) if w.requires_grad]
        ids = {id(w) for w in self.weights}
        biases = [p for p in self.model.parameters() if id(p) not in ids and p.requires_grad]
        decay = 2 * config.lam if config.penalty == "l2" else 0.0
        groups = [dict(params=self.weights, weight_decay=decay), dict(params=biases)]
        self.optimizer = torch.optim.Adam(groups, lr=config.lr, fused=True)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, 1, config.gamma)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.dropout = torch.Generator(device).manual_seed(dropout_seed(config.seed))
        for layer in self.model.modules():
            if isinstance(layer, Dropout):
                layer.generator = self.dropout

    def threshold(self) -> None:
        """With the nuclear penalty, W's singular values less lam (once per epoch)."""
        if self.config.penalty == "nuclear" and self.config.lam:
            W = self.model.fc2.weight
            with torch.no_grad():
                W.copy_(singular_value_threshold(W, self.config.lam))

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One Adam step on the batch (x, y); the batch's mean NLL (without the penalty)."""
        self.optimizer.zero_grad(set_to_none=True)  # autograd writes fresh ones: no zeroing
        nll = F.nll_loss(self.model(x), y)
        nll.backward()
        if self.config.penalty == "l1" and self.config.lam:
            for w in self.weights:
                w.grad.add_(w.detach().sign(), alpha=self.config.lam)
        self.optimizer.step()
        return nll.detach()

    def epoch(
        self, x: torch.Tensor, y: torch.Tensor, progress: bool = False, number: int = 1
    ) -> float:
        """One pass over (x, y) in this model's own order; the epoch's mean NLL."""
        order = torch.randperm(len(x), generator=self.shuffle).to(x.device)
        B = self.config.batch_size
        batches = range(0, len(x), B)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"epoch {number}/{self.config.epochs}", leave=False)
        total = torch.zeros((), device=x.device)
        for i in batches:
            idx = order[i : i + B]
            total += self.step(x[idx], y[idx]) * len(idx)
        return total.item() / len(x)

    def state_dict(self) -> dict:
        """Everything needed to resume training bit for bit (CPU tensors)."""
        return dict(
            model={k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            shuffle_rng=self.shuffle.get_state(),
            dropout_rng=self.dropout.get_state(),
        )

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.shuffle.set_state(state["shuffle_rng"])
        self.dropout.set_state(state["dropout_rng"])

    def trained(self) -> MnistFCNet:
        """The model, on the CPU and in eval mode, its dropout detached from the stream."""
        for layer in self.model.modules():
            if isinstance(layer, Dropout):
                layer.generator = None
        return self.model.cpu().eval()


def train(
    config: TrainConfig,
    data: Mnist,
    device: torch.device | str | None = None,
    resume: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    progress: bool | None = None,
    start: MnistFCNet | None = None,
) -> tuple[MnistFCNet, list[dict]]:
    """Train MnistFCNet; return it (on the CPU, eval mode) and one record per epoch.

    Each record has epoch, lr, train_loss (mean NLL over the epoch's batches, without the
    penalty), val_loss, val_acc, test_loss, test_acc, erank and srank of W, for a dense W
    head_share and top_share of W − W₀ (lowrank.mechanism), seconds (the whole epoch) and
    train_seconds (its training loop alone, without evaluation and SVDs).
    `on_epoch` receives a checkpoint after every epoch; passing one back as `resume`
    continues exactly where it stopped (parameters, optimiser, scheduler and random states
    are all restored). With config.start set, `start` is the model config.start trained
    (truncated_start cuts it). Runs on TRAIN_THREADS threads whatever the caller's setting.
    """
    device = torch.device(device) if device is not None else default_device()
    progress = sys.stdout.isatty() if progress is None else progress
    if (config.start is None) != (start is None):
        given = "None" if start is None else "a model"
        wanted = "None" if config.start is None else "a config"
        raise ValueError(
            "start must be given (the model config.start trained) exactly when "
            f"config.start is set, got start={given} and config.start={wanted}"
        )
    data = data.digits(digits(config))
    if config.train_subset is not None:
        data = data.subset(config.train_subset)
    with threads(TRAIN_THREADS):
        begin = None if start is None else truncated_start(start, config.rank)
        run = Training(config, device, begin)
        W0 = run.model.W.detach().clone()  # before `resume` loads later weights
        history: list[dict] = []
        if resume is not None:
            run.load_state_dict(resume["training"])
            history = list(resume["history"])
        x, y = data.train_x.to(device), data.train_y.to(device)
        splits = {
            "val": (data.val_x.to(device), data.val_y.to(device)),
            "test": (data.test_x.to(device), data.test_y.to(device)),
        }
        for epoch in range(len(history) + 1, config.epochs + 1):
            began = time.perf_counter()
            record = dict(epoch=epoch, lr=run.lr, train_loss=run.epoch(x, y, progress, epoch))
            run.threshold()
            train_seconds = time.perf_counter() - began
            run.scheduler.step()
            for split, (x_, y_) in splits.items():
                record[f"{split}_loss"], record[f"{split}_acc"] = evaluate(run.model, x_, y_)
            W = run.model.W.detach()  # all zeros when a strong nuclear penalty removes it all
            record["erank"], record["srank"] = spectral_ranks(W) if W.any() else (0.0, 0.0)
            if config.rank is None:
                record.update(update_shares(run.model.W, W0, run.model.fc3.weight))
            record.update(seconds=time.perf_counter() - began, train_seconds=train_seconds)
            history.append(record)
            if on_epoch is not None:
                on_epoch(dict(training=run.state_dict(), history=list(history)))
        return run.trained(), history
