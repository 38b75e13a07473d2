"""Training with Adam and StepLR, recording the effective rank of W after every epoch.

    from lowrank import TrainConfig, load_mnist, train
    model, history = train(TrainConfig(epochs=5), load_mnist())

The step is MnistFCNet's forward and backward pass written out by hand for S stacked copies
(StackedNets); train() trains one, lowrank.seeds.train_seeds several seeds at once.
"""

import copy
import hashlib
import math
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from lowrank.data import Mnist
from lowrank.model import MnistFCNet, evaluate, factorised
from lowrank.rank import spectral_ranks


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
    classes: int = 10  # train (and evaluate) on the digits 0 … classes − 1 only
    # fine-tuning: start from the model that `start` trains (same seed), W truncated to `rank`
    start: "TrainConfig | None" = None

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
            "classes": isinstance(self.classes, int) and 2 <= self.classes <= 10,
            "start": self.start is None or (
                isinstance(self.start, TrainConfig) and self.start.rank is None and self.rank is not None
                and (self.start.seed, self.start.hidden, self.start.classes) == (self.seed, self.hidden, self.classes)),
        }
        allowed = {
            "lr": "> 0", "gamma": "in (0, 1]", "batch_size": "an integer >= 1",
            "epochs": "an integer >= 1", "dropout": "in [0, 1)", "penalty": "None, 'l1' or 'l2'",
            "lam": ">= 0 (and 0 when penalty is None)", "train_subset": "None or >= 1",
            "rank": f"None or an integer in [1, {self.hidden}]", "classes": "an integer in [2, 10]",
            "start": "None or the TrainConfig of a dense model with this seed, hidden and classes "
                     "(and rank set: the rank to truncate it to)",
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
    The training step adds exactly this gradient by hand (StackedNets._add_penalty_grads).
    """
    middle = [model.fc2.weight] if isinstance(model.fc2, nn.Linear) else [model.fc2.U, model.fc2.V]
    weights = [model.fc1.weight, *middle, model.fc3.weight]
    if penalty is None or lam == 0:
        return torch.zeros((), device=weights[0].device)
    if penalty == "l1":
        return lam * sum(w.abs().sum() for w in weights)
    return lam * sum(w.square().sum() for w in weights)


def truncated_start(model: MnistFCNet, rank: int) -> MnistFCNet:
    """A copy of the trained `model` with W = A Σ Bᵀ replaced by its rank-r truncation, stored as
    U = A_r Σ_r^½ and V = Σ_r^½ B_rᵀ: the factors share Σ evenly, so that Adam starts them at one scale.
    """
    A, S, Bh = torch.linalg.svd(model.W.detach().double(), full_matrices=False)
    root = S[:rank].sqrt()
    U, V = (A[:, :rank] * root).float(), (root[:, None] * Bh[:rank]).float()
    return factorised(model, U, V).train()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def dropout_seed(seed: int) -> int:
    """The seed of a model's dropout generator: derived from `seed`, apart from its shuffle seed.

    (The CPU generator keeps only the low 32 bits of a seed, so seed + 2**32 would collide.)
    """
    return int.from_bytes(hashlib.sha256(f"dropout {seed}".encode()).digest()[:4], "little")


def kept_threshold(p: float) -> int:
    """The int32 threshold t of dropout with probability p: a unit is kept when its 32 random bits,
    read as an int32, are below t. Of the 2^32 values, the lowest round(2^32 (1 - p)) keep the unit,
    so q = P(kept) is within 2^-33 of 1 - p and equal to it when 2^32 p is an integer (p = 0.25, 0.5).
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1) (p = 0 draws no mask), got {p!r}")
    return round((1 - p) * 2**32) - 2**31


def kept_fraction(p: float) -> float:
    """q, the probability that dropout with probability p keeps a unit (1 for p = 0)."""
    return 1.0 if p == 0 else (kept_threshold(p) + 2**31) / 2**32


def dropout_bits(shape: tuple[int, ...], generator: torch.Generator, out: torch.Tensor | None = None) -> torch.Tensor:
    """32 random bits per entry, as int32: the generator's 64-bit words split in two (no float is formed).

    `out`, an int64 tensor of (prod(shape) + 1) // 2 words, is filled in place of a new one.
    """
    n = math.prod(shape)
    words = torch.empty((n + 1) // 2, dtype=torch.int64, device=generator.device) if out is None else out
    return words.random_(-(2**63), None, generator=generator).view(torch.int32)[:n].view(shape)  # all 64 bits


def dropout_mask(shape: tuple[int, ...], p: float, generator: torch.Generator) -> torch.Tensor:
    """The inverted-dropout mask: 1/q with probability q, else 0, so that E[mask] = 1 exactly.

    The training step draws the same bits and keeps the same units, but applies the mask as 0/1
    and leaves its 1/q to the next matrix product (StackedNets). For a 64 x 1000 mask on one
    thread here, the bits cost 0.1 ms, against 0.75 ms for nn.Dropout's bernoulli_.
    """
    if p == 0:
        return torch.ones(shape, device=generator.device)  # 2^32 kept values: no int32 threshold exists
    return (dropout_bits(shape, generator) < kept_threshold(p)).float().div_(kept_fraction(p))


class StackedNets:
    """S MnistFCNets of one shape, stored member-first as stacked tensors and trained by one batched step.

    The forward and backward passes are written out with batched matrix products (torch.bmm over
    the S members), the same maths as autograd through MnistFCNet with the same masks
    (tests/test_train.py checks the gradients against it). Written by hand, every weight gradient
    goes straight into Adam's buffer (no autograd graph, no accumulation pass, no allocation).
    Dropout keeps a unit with probability q and applies its 0/1 mask in one pass; the 1/q of
    inverted dropout rides on the next matrix product (its alpha) and, going back, on the gradient
    that reaches the layer's weights and inputs. For p = 0.5, 1/q = 2 is a power of two, so this
    gives the same floats as multiplying by a {0, 2} mask. The mask is never stored: the unit was
    on exactly where h > 0. All parameters live in one flat tensor (each a view of it), so Adam,
    elementwise, is one kernel over one tensor. train() is the case S = 1.

    Member s starts exactly as train() starts with seed s (torch.manual_seed(s), then
    MnistFCNet, or the weights of start[s] when fine-tuning) and draws its data order and its
    dropout masks from generators of its own.
    """

    def __init__(self, config: TrainConfig, seeds: list[int], device: torch.device,
                 start: list[MnistFCNet] | None = None):
        self.config, self.seeds, self.device = config, list(seeds), device
        nets = []
        for seed in self.seeds:
            torch.manual_seed(seed)
            nets.append(MnistFCNet(config.hidden, config.dropout, config.rank, config.classes))
        if start is not None:  # fine-tuning: member s starts from start[s]
            for net, begin in zip(nets, start, strict=True):
                net.load_state_dict(begin.state_dict())
        self.template = nets[0]
        self.flat, self.params = _flatten(nets, device)
        # fused: one kernel per step; Adam is elementwise, so the flat tensor of S members
        # is S independent Adams on every parameter
        self.optimizer = torch.optim.Adam([self.flat], lr=config.lr, fused=True)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=config.gamma)
        self.shuffles = [torch.Generator().manual_seed(s) for s in self.seeds]
        self.droppers = [torch.Generator(device).manual_seed(dropout_seed(s)) for s in self.seeds]
        self.scale = 1 / kept_fraction(config.dropout)  # 1/q: 2 for p = 0.5
        self._words: torch.Tensor | None = None  # the random bits of a mask, S x words, reused

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def member(self, s: int) -> MnistFCNet:
        """Member s as an MnistFCNet of its own (a copy, on this device, in eval mode)."""
        net = copy.deepcopy(self.template).to(self.device)
        net.load_state_dict({name: p[s].reshape(net.get_parameter(name).shape) for name, p in self.params.items()})
        return net.eval()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One Adam step of every member on its batch (x: S x B x 784, y: S x B); the mean NLL of each."""
        # h1, h2 below are relu(a) times the 0/1 mask; the dropped-out layer's output is c h
        P, rank, c = self.params, self.config.rank, self.scale
        h1 = self._relu_dropout(torch.baddbmm(P["fc1.bias"], x, P["fc1.weight"].mT))
        if rank is None:
            a2 = torch.baddbmm(P["fc2.bias"], h1, P["fc2.weight"].mT, alpha=c)
        else:
            t = torch.bmm(h1, P["fc2.V"].mT)  # never form U V
            a2 = torch.baddbmm(P["fc2.bias"], t, P["fc2.U"].mT, alpha=c)
        h2 = self._relu_dropout(a2)
        logp = torch.log_softmax(torch.baddbmm(P["fc3.bias"], h2, P["fc3.weight"].mT, alpha=c), dim=2)
        nll = -logp.gather(2, y.unsqueeze(2)).mean(dim=(1, 2))

        # backward of the mean NLL over the batch: d nll / d z = (softmax(z) - onehot(y)) / B
        dz = logp.exp_().scatter_add_(2, y.unsqueeze(2), torch.full(y.unsqueeze(2).shape, -1.0, device=y.device))
        dz.div_(x.shape[1])
        da2 = self._dense_grads("fc3", dz, h2)
        if rank is None:
            dh1 = self._dense_grads("fc2", da2, h1)
        else:
            torch.sum(da2, dim=1, keepdim=True, out=P["fc2.bias"].grad)
            da2.mul_(c)  # d/dt and d/dU of c t U^T + b
            torch.bmm(da2.mT, t, out=P["fc2.U"].grad)
            dt = torch.bmm(da2, P["fc2.U"])
            torch.bmm(dt.mT, h1, out=P["fc2.V"].grad)
            dh1 = self._relu_dropout_grad(torch.bmm(dt, P["fc2.V"]), h1)
        self._dense_grads("fc1", dh1, x, inputs_grad=False)  # x needs no gradient
        self._add_penalty_grads()
        self.optimizer.step()
        return nll

    def _relu_dropout(self, a: torch.Tensor) -> torch.Tensor:
        """relu(a) times dropout's 0/1 mask (member s's bits from its own generator), in place."""
        h = a.clamp_min_(0)
        if self.config.dropout == 0:
            return h
        S, B, n = h.shape
        if self._words is None or self._words.shape[1] != (B * n + 1) // 2:
            self._words = torch.empty(S, (B * n + 1) // 2, dtype=torch.int64, device=h.device)
        for s, g in enumerate(self.droppers):
            dropout_bits((B, n), g, out=self._words[s])
        bits = self._words.view(torch.int32)[:, : B * n].view(S, B, n)
        return h.mul_(bits < kept_threshold(self.config.dropout))

    @staticmethod
    def _relu_dropout_grad(dh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """dh where the unit was on (h > 0), else 0: the gradient of relu and of the 0/1 mask.

        h > 0 exactly where a > 0 and the unit was kept, so ReLU's own backward kernel
        (threshold_backward, 0 at a = 0 as in autograd) applies both in one pass.
        """
        return torch.ops.aten.threshold_backward(dh, h, 0)

    def _dense_grads(self, layer: str, da: torch.Tensor, inputs: torch.Tensor,
                     inputs_grad: bool = True) -> torch.Tensor | None:
        """Into .grad: the weight and bias gradients of a = c inputs W^T + b, given da = d nll/d a.

        Returns d nll/d a of the layer below (through its relu and mask), unless inputs_grad is
        False; c, the 1/q of the mask on `inputs`, is 1 for the first layer (x has no mask).
        """
        torch.sum(da, dim=1, keepdim=True, out=self.params[f"{layer}.bias"].grad)
        if inputs_grad and self.scale != 1:
            da = da.mul(self.scale)  # c da: d/dW = (c da)^T inputs, d/d inputs = (c da) W
        weight = self.params[f"{layer}.weight"]
        torch.bmm(da.mT, inputs, out=weight.grad)
        return self._relu_dropout_grad(torch.bmm(da, weight), inputs) if inputs_grad else None

    def _add_penalty_grads(self) -> None:
        """The gradient of weight_penalty: 2 lam w (l2) or lam sign(w) (l1) on every weight, no bias."""
        penalty, lam = self.config.penalty, self.config.lam
        if penalty is None or lam == 0:
            return
        for name, w in self.params.items():
            if not name.endswith("bias"):
                w.grad.add_(w, alpha=2 * lam) if penalty == "l2" else w.grad.add_(w.sign(), alpha=lam)

    def state_dict(self) -> dict:
        """Everything needed to resume training bit-for-bit (CPU tensors)."""
        return dict(
            params={k: v.detach().cpu().clone() for k, v in self.params.items()},
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            shuffle_rng=[g.get_state() for g in self.shuffles], dropout_rng=[g.get_state() for g in self.droppers],
        )

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for k, v in state["params"].items():
                self.params[k].copy_(v)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for g, s in zip(self.shuffles, state["shuffle_rng"]):
            g.set_state(s)
        for g, s in zip(self.droppers, state["dropout_rng"]):
            g.set_state(s)


def _flatten(nets: list[MnistFCNet], device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One flat tensor (with a flat .grad) holding every parameter of the S nets, and each
    parameter as a contiguous member-first view of it (its .grad a view of the flat .grad).

    Biases are (S, 1, out) rows, so that baddbmm adds them to every image of a batch.
    """
    rows = lambda p: p.detach().reshape(1, -1) if p.ndim == 1 else p.detach()  # noqa: E731
    stacked = {name: torch.stack([rows(net.get_parameter(name)) for net in nets]) for name, _ in nets[0].named_parameters()}
    flat = torch.cat([p.reshape(-1) for p in stacked.values()]).to(device)
    flat.grad = torch.zeros_like(flat)
    params, start = {}, 0
    for name, p in stacked.items():
        params[name] = flat[start : start + p.numel()].view(p.shape)
        params[name].grad = flat.grad[start : start + p.numel()].view(p.shape)
        start += p.numel()
    return flat, params


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
    penalty), val_loss, val_acc, test_loss, test_acc, erank and srank of W, seconds (the whole
    epoch) and train_seconds (its training loop alone, without evaluation and SVDs). `on_epoch`
    receives a checkpoint after every epoch; passing one back as `resume` continues exactly
    where it stopped (parameters, optimiser, scheduler and random states are all restored).
    With config.start set, `start` is the model config.start trained (truncated_start cuts it).
    """
    nets, histories = fit(config, [config.seed], data, device, resume, on_epoch, progress,
                          None if start is None else [start])
    return nets[0], histories[0]


def fit(
    config: TrainConfig,
    seeds: list[int],
    data: Mnist,
    device: torch.device | str | None = None,
    resume: dict | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    progress: bool | None = None,
    start: list[MnistFCNet] | None = None,
) -> tuple[list[MnistFCNet], list[list[dict]]]:
    """Train one model per seed together (StackedNets); their models and histories, as train() returns them."""
    device = torch.device(device) if device is not None else default_device()
    progress = sys.stdout.isatty() if progress is None else progress
    if (config.start is None) != (start is None):
        raise ValueError("start must be given (the models config.start trained, one per seed) exactly "
                         f"when config.start is set, got start={'None' if start is None else 'models'} "
                         f"and config.start={'None' if config.start is None else 'a config'}")
    data = data.classes(config.classes)
    if config.train_subset is not None:
        data = data.subset(config.train_subset)
    begin = None if start is None else [truncated_start(model, config.rank) for model in start]
    nets = StackedNets(config, seeds, device, begin)
    histories: list[list[dict]] = [[] for _ in seeds]
    if resume is not None:
        nets.load_state_dict(resume["nets"])
        histories = [list(h) for h in resume["histories"]]

    x, y = data.train_x.to(device), data.train_y.to(device)
    splits = {"val": (data.val_x.to(device), data.val_y.to(device)),
              "test": (data.test_x.to(device), data.test_y.to(device))}
    for epoch in range(len(histories[0]) + 1, config.epochs + 1):
        start = time.perf_counter()
        lr = nets.lr
        train_losses = _train_epoch(nets, x, y, progress, epoch)
        train_seconds = time.perf_counter() - start
        nets.scheduler.step()
        for s, history in enumerate(histories):
            model = nets.member(s)
            record = dict(epoch=epoch, lr=lr, train_loss=train_losses[s])
            for split, (x_, y_) in splits.items():
                record[f"{split}_loss"], record[f"{split}_acc"] = evaluate(model, x_, y_)
            record["erank"], record["srank"] = spectral_ranks(model.W.detach())
            history.append(record)
        for history in histories:  # one clock for all members: they trained together
            history[-1].update(seconds=time.perf_counter() - start, train_seconds=train_seconds)
        if on_epoch is not None:
            on_epoch(dict(nets=nets.state_dict(), histories=[list(h) for h in histories], history=list(histories[0])))
    return [nets.member(s).cpu() for s in range(len(seeds))], histories


def _train_epoch(nets: StackedNets, x: torch.Tensor, y: torch.Tensor, progress: bool, epoch: int) -> list[float]:
    """One pass over (x, y) by every member, each in its own order; each member's mean NLL."""
    config = nets.config
    order = torch.stack([torch.randperm(len(x), generator=g) for g in nets.shuffles]).to(x.device)
    batches = range(0, len(x), config.batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", leave=False)
    total = torch.zeros(len(nets.seeds), device=x.device)
    for i in batches:
        idx = order[:, i : i + config.batch_size]
        total += nets.step(x[idx], y[idx]) * idx.shape[1]
    return (total / len(x)).tolist()
