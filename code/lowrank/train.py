"""Training with Adam and StepLR, recording the effective rank of W after every epoch.

    from lowrank import TrainConfig, load_mnist, train
    model, history = train(TrainConfig(epochs=5), load_mnist())
"""

import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lowrank.data import Mnist
from lowrank.model import MnistFCNet, evaluate
from lowrank.rank import effective_rank, stable_rank


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (with the data and the training code)."""

    lr: float = 1e-3
    gamma: float = 0.7  # StepLR: lr is multiplied by gamma after every epoch
    batch_size: int = 64
    epochs: int = 5
    dropout: float = 0.5
    penalty: str | None = None  # None, "l1" or "l2"
    lam: float = 0.0  # penalty strength lambda
    seed: int = 0
    train_subset: int | None = None  # train on the first n images only (quick mode)
    hidden: int = 1000
    rank: int | None = None  # train the middle layer as U V of this rank (None: dense W)

    def __post_init__(self):
        checks = {
            "lr": self.lr > 0,
            "gamma": 0 < self.gamma <= 1,
            "batch_size": isinstance(self.batch_size, int) and self.batch_size >= 1,
            "epochs": isinstance(self.epochs, int) and self.epochs >= 1,
            "dropout": 0 <= self.dropout < 1,
            "penalty": self.penalty in (None, "l1", "l2"),
            "lam": self.lam >= 0 and (self.lam == 0 or self.penalty is not None),
            "train_subset": self.train_subset is None or self.train_subset >= 1,
            "rank": self.rank is None or 1 <= self.rank <= self.hidden,
        }
        allowed = {
            "lr": "> 0", "gamma": "in (0, 1]", "batch_size": "an integer >= 1",
            "epochs": "an integer >= 1", "dropout": "in [0, 1)", "penalty": "None, 'l1' or 'l2'",
            "lam": ">= 0 (and 0 when penalty is None)", "train_subset": "None or >= 1",
            "rank": f"None or an integer in [1, {self.hidden}]",
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} must be {allowed[name]}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def weight_penalty(model: MnistFCNet, penalty: str | None, lam: float) -> torch.Tensor:
    """lam * sum over the three weight matrices of sum |w| (l1) or sum w^2 (l2); biases are not penalised.

    For a factorised middle layer, its factors U and V are penalised in place of W.

    With l2 this adds 2 lam w to each weight's gradient before Adam rescales it, which is *not*
    the decoupled weight decay of AdamW (nor the SGD weight decay analysed by Galanti et al.).
    """
    middle = [model.fc2.weight] if isinstance(model.fc2, nn.Linear) else [model.fc2.U, model.fc2.V]
    weights = [model.fc1.weight, *middle, model.fc3.weight]
    if penalty is None or lam == 0:
        return torch.zeros((), device=weights[0].device)
    if penalty == "l1":
        return lam * sum(w.abs().sum() for w in weights)
    return lam * sum(w.square().sum() for w in weights)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(
    config: TrainConfig,
    data: Mnist,
    device: torch.device | str | None = None,
    resume: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    progress: bool | None = None,
) -> tuple[MnistFCNet, list[dict]]:
    """Train MnistFCNet; return it (on the CPU, eval mode) and one record per epoch.

    Each record has epoch, lr, train_loss (mean NLL over the epoch's batches, without the
    penalty), test_loss, test_acc, erank and srank of W, and seconds. `on_epoch` receives a
    checkpoint after every epoch; passing one back as `resume` continues exactly where it
    stopped (model, optimiser, scheduler and random states are all restored).
    """
    device = torch.device(device) if device is not None else default_device()
    progress = sys.stdout.isatty() if progress is None else progress
    if config.train_subset is not None:
        data = data.subset(config.train_subset)

    torch.manual_seed(config.seed)
    model = MnistFCNet(config.hidden, config.dropout, config.rank).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)  # one fused kernel per step, not a loop over parameters
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=config.gamma)
    shuffle = torch.Generator().manual_seed(config.seed)
    history: list[dict] = []
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        shuffle.set_state(resume["shuffle_rng"])
        torch.set_rng_state(resume["torch_rng"])
        if device.type == "cuda" and resume.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(resume["cuda_rng"], device)  # dropout on the GPU draws from here
        history = list(resume["history"])

    x, y = data.train_x.to(device), data.train_y.to(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    for epoch in range(len(history) + 1, config.epochs + 1):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss = _train_epoch(model, optimizer, x, y, config, shuffle, progress, epoch)
        scheduler.step()
        test_loss, test_acc = evaluate(model, test_x, test_y)
        W = model.W.detach()
        history.append(
            dict(epoch=epoch, lr=lr, train_loss=train_loss, test_loss=test_loss, test_acc=test_acc,
                 erank=effective_rank(W), srank=stable_rank(W), seconds=time.perf_counter() - start)
        )
        if on_epoch is not None:
            on_epoch(checkpoint(model, optimizer, scheduler, shuffle, history, device))
    return model.cpu().eval(), history


def _train_epoch(model, optimizer, x, y, config, shuffle, progress, epoch) -> float:
    model.train()
    order = torch.randperm(len(x), generator=shuffle).to(x.device)
    batches = range(0, len(x), config.batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", leave=False)
    total = torch.zeros((), device=x.device)
    for i in batches:
        idx = order[i : i + config.batch_size]
        optimizer.zero_grad(set_to_none=False)  # reuse the gradient buffers: reallocating them costs ~2x here
        nll = F.nll_loss(model(x[idx]), y[idx])
        (nll + weight_penalty(model, config.penalty, config.lam)).backward()
        optimizer.step()
        total += nll.detach() * len(idx)
    return total.item() / len(x)


def checkpoint(model: nn.Module, optimizer, scheduler, shuffle: torch.Generator, history: list[dict],
               device: torch.device) -> dict:
    """Everything needed to resume training bit-for-bit after the last finished epoch."""
    return dict(
        model={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        shuffle_rng=shuffle.get_state(),
        torch_rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        history=list(history),
    )
