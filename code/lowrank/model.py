"""The post's network, and the factorised layer that replaces its hidden W by U V."""

import copy
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from lowrank.checks import all_finite, check, check_int, check_matrix, is_real

# The largest dropout probability: a unit is kept on 32 random bits (kept_threshold), so p
# above 1 - 2**-32 would keep none of them and scale by 1/0.
MAX_DROPOUT = 1 - 2**-32


class MnistFCNet(nn.Module):
    """784-1000-1000-10 feed-forward net: ReLU, dropout after each hidden layer,
    log-softmax output.

    With `rank=r` the middle layer is a LowRankLinear trained from scratch in factorised
    form; with `classes=C` the net has C outputs (for the digits 0 … C−1). This class is
    the only definition of the network: training is autograd through `forward`, and
    evaluation, the factorised evaluator and the cost model all call its parts.
    """

    def __init__(
        self, hidden: int = 1000, dropout: float = 0.5, rank: int | None = None, classes: int = 10
    ):
        super().__init__()
        check_int(hidden, "hidden", 1)
        check_int(classes, "classes", 2, 10)
        if rank is not None:
            check_int(rank, "rank", 1, hidden)
        self.fc1 = nn.Linear(784, hidden)
        # W, the matrix we compress
        if rank is None:
            self.fc2 = nn.Linear(hidden, hidden)
        else:
            self.fc2 = LowRankLinear.init(hidden, hidden, rank)
        self.fc3 = nn.Linear(hidden, classes)
        self.activation = nn.ReLU()
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after_W(self.fc2(self.before_W(x)))

    def before_W(self, x: torch.Tensor) -> torch.Tensor:
        """The input of W: the layers below fc2."""
        return self.dropout(self.activation(self.fc1(x)))

    def after_W(self, a: torch.Tensor) -> torch.Tensor:
        """Log-probabilities from W's output a = fc2(h): the layers above fc2."""
        return F.log_softmax(self.fc3(self.dropout(self.activation(a))), dim=1)

    @property
    def W(self) -> torch.Tensor:
        """The hidden-to-hidden weight (out x in); for a factorised fc2, the product
        U V."""
        if isinstance(self.fc2, LowRankLinear):
            return self.fc2.U @ self.fc2.V
        return self.fc2.weight


class Dropout(nn.Module):
    """Inverted dropout: in training, each unit is kept with probability q ≈ 1 − p and
    scaled by 1/q, so that the expected output is the input; the identity in eval mode.

    A unit is kept when 32 random bits of its own fall below an integer threshold
    (`kept_threshold`): for a 64 x 1000 batch on one thread this costs 0.1 ms, against
    0.75 ms for nn.Dropout's bernoulli_. The bits come from `generator` (the trainer gives
    each model its own), or from torch's default generator when it is None.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        ok = is_real(p) and 0 <= p <= MAX_DROPOUT
        check(ok, "dropout", "a number in [0, 1 - 2**-32]", repr(p))
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return h
        return h * dropout_mask(h.shape, self.p, self.generator, h.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def kept_threshold(p: float) -> int:
    """The int32 threshold t of dropout with probability p: a unit is kept when its 32
    random bits, read as an int32, are below t. Of the 2^32 values, the lowest
    round(2^32 (1 - p)) keep the unit, so q = P(kept) is within 2^-33 of 1 - p and equal
    to it when 2^32 p is an integer (p = 0.25, 0.5).
    """
    if not (is_real(p) and 0 < p <= MAX_DROPOUT):
        raise ValueError(f"p must be in (0, 1 - 2**-32] (p = 0 draws no mask), got {p!r}")
    return round((1 - p) * 2**32) - 2**31


def kept_fraction(p: float) -> float:
    """q, the probability that dropout with probability p keeps a unit (1 for p = 0)."""
    return 1.0 if p == 0 else (kept_threshold(p) + 2**31) / 2**32


def dropout_bits(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """32 random bits per entry, as int32: 64-bit words split in two (no float is formed)."""
    n = math.prod(shape)
    device = generator.device if generator is not None else device
    words = torch.empty((n + 1) // 2, dtype=torch.int64, device=device)
    words.random_(-(2**63), None, generator=generator)  # all 64 bits
    return words.view(torch.int32)[:n].view(shape)


def dropout_mask(
    shape: tuple[int, ...],
    p: float,
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The inverted-dropout mask: 1/q with probability q, else 0, so that E[mask] = 1."""
    if p == 0:  # 2^32 kept values: no int32 threshold exists
        return torch.ones(shape, device=generator.device if generator is not None else device)
    keep = dropout_bits(shape, generator, device) < kept_threshold(p)
    return torch.where(keep, 1 / kept_fraction(p), 0.0)


def weights(model: nn.Module) -> list[torch.Tensor]:
    """The model's weight matrices, input side first: every parameter but the biases
    (for a factorised layer, its factors U and V)."""
    return [p for name, p in model.named_parameters() if not name.endswith("bias")]


def step_flops(model: nn.Module) -> int:
    """Floating-point operations of one training step, per image: 2 per multiply-add of
    every weight's product in the forward pass and in its weight gradient, and of every
    input gradient but the first weight's (the images need none)."""
    sizes = [w.numel() for w in weights(model)]
    return 2 * (2 * sum(sizes) + sum(sizes[1:]))


class LowRankLinear(nn.Module):
    """x -> x V^T U^T + b, a linear layer whose m x n weight is stored as U (m x r)
    times V (r x n).

    It holds r (m + n) + m numbers instead of m n + m, and costs r (m + n) multiply-adds
    per input instead of m n.
    """

    def __init__(self, U: torch.Tensor, V: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        (m, r), _ = check_matrix(U, "U"), check_matrix(V, "V")  # finite, float32/64
        shapes = f"{tuple(U.shape)} and {tuple(V.shape)}"
        check(V.shape[0] == r, "U and V", "m x r and r x n", shapes)
        for name, t in {"V": V, "bias": bias if bias is not None else U}.items():
            got = f"{t.dtype} on {t.device}"
            check((t.dtype, t.device) == (U.dtype, U.device), name, "like U's", got)
        if bias is not None:
            check(bias.shape == (m,), "bias", f"of shape ({m},)", tuple(bias.shape))
            check(all_finite(bias), "bias", "finite", "NaN or inf entries")
        self.U = nn.Parameter(U.detach().clone())
        self.V = nn.Parameter(V.detach().clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    @classmethod
    def init(cls, m: int, n: int, r: int) -> "LowRankLinear":
        """A fresh rank-r layer n -> m, for training in factorised form.

        V and U start as PyTorch's default nn.Linear(n, r) and nn.Linear(r, m) weights
        (uniform in ±1/sqrt(fan_in)), so x -> U (V x) starts as two default linear
        layers without a nonlinearity between them; the bias starts as
        nn.Linear(n, m)'s.
        """
        V = nn.Linear(n, r, bias=False).weight
        U = nn.Linear(r, m, bias=False).weight
        b = nn.Linear(n, m).bias
        return cls(U, V, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x @ self.V.T) @ self.U.T  # never form U V: that would cost m n again
        return y if self.bias is None else y + self.bias

    @property
    def rank(self) -> int:
        return self.V.shape[0]


def factorised(model: MnistFCNet, U: torch.Tensor, V: torch.Tensor) -> MnistFCNet:
    """A copy of the trained `model` with W replaced by U V; `model` itself is left
    untouched."""
    check(isinstance(model, MnistFCNet), "model", "a MnistFCNet", type(model).__name__)
    check_factors(U, V, model)
    compressed = copy.deepcopy(model)
    compressed.fc2 = LowRankLinear(U, V, model.fc2.bias)
    return compressed.eval()


def check_factors(U: torch.Tensor, V: torch.Tensor, model: MnistFCNet) -> None:
    """Raise a one-line ValueError unless U (m x r) and V (r x n) are finite and can stand in
    for the model's m x n weight W: its shape, dtype and device."""
    check_matrix(U, "U"), check_matrix(V, "V")
    fc2 = model.fc2  # not model.W: a factorised fc2 would multiply out U V for it
    like = fc2.U if isinstance(fc2, LowRankLinear) else fc2.weight
    m, n = like.shape[0], (fc2.V if isinstance(fc2, LowRankLinear) else fc2.weight).shape[1]
    ok = U.shape[0] == m and V.shape[1] == n and U.shape[1] == V.shape[0]
    got = f"{tuple(U.shape)} and {tuple(V.shape)}"
    check(ok, "U, V", f"of shapes ({m}, r) and (r, {n})", got)
    wanted = f"{like.dtype} on {like.device} like the model"
    got = f"{U.dtype} on {U.device} and {V.dtype} on {V.device}"
    check(
        {(U.dtype, U.device), (V.dtype, V.device)} == {(like.dtype, like.device)},
        "U, V",
        wanted,
        got,
    )


@contextmanager
def evaluation(model: nn.Module):
    """`model` in eval mode (no dropout) for the duration, then back in its own mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def check_images_and_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise a one-line ValueError unless x is a finite (N, inputs) float matrix and y its N
    integer labels in 0 … C−1, for the model's inputs and C outputs (when it has fc1, fc3).

    Cheap next to a forward pass (a min and max of each): evaluation runs after every epoch.
    """
    # non-empty and finite: NaN images would score a plausible accuracy, none would divide by 0
    _, width = check_matrix(x, "x")
    fc1, fc3 = getattr(model, "fc1", None), getattr(model, "fc3", None)
    if isinstance(fc1, nn.Linear):
        check(width == fc1.in_features, "x", f"of width {fc1.in_features}", f"width {width}")
    tensor = isinstance(y, torch.Tensor)
    got = f"{y.dtype} of shape {tuple(y.shape)}" if tensor else type(y).__name__
    ok = tensor and y.shape == (len(x),) and not y.is_floating_point() and y.dtype != torch.bool
    check(ok, "y", f"{len(x)} integer labels", got)
    if isinstance(fc3, nn.Linear):
        C = fc3.out_features
        lo, hi = (int(v) for v in torch.aminmax(y))
        check(0 <= lo and hi < C, "y", f"labels in 0 … {C - 1}", f"labels in {lo} … {hi}")


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 10_000
) -> tuple[float, float]:
    """Mean NLL loss and accuracy (in [0, 1]) of `model` on (x, y), in eval mode (no
    dropout)."""
    check_int(batch_size, "batch_size", 1)
    check_images_and_labels(model, x, y)
    loss, correct = 0.0, 0
    with evaluation(model):
        for i in range(0, len(x), batch_size):
            out = model(x[i : i + batch_size])
            loss += F.nll_loss(out, y[i : i + batch_size], reduction="sum").item()
            correct += (out.argmax(1) == y[i : i + batch_size]).sum().item()
    return loss / len(x), correct / len(x)


class FactorisedEvaluator:
    """Test loss and accuracy of a trained net with W swapped for U V, for many (U, V)
    in a row.

    The layers below W do not depend on it, so W's input h = model.before_W(x) is
    computed once; each call then costs r (m + n) per image for W and the layers above
    it (model.after_W), instead of a full forward pass.
    """

    @torch.no_grad()
    def __init__(self, model: MnistFCNet, x: torch.Tensor, y: torch.Tensor):
        check_images_and_labels(model, x, y)
        self.model, self.y = model, y
        self.shape = tuple(model.W.shape)
        with evaluation(model):
            self.h = model.before_W(x)

    @torch.no_grad()
    def __call__(self, U: torch.Tensor, V: torch.Tensor) -> tuple[float, float]:
        check_factors(U, V, self.model)
        return self._score((self.h @ V.T) @ U.T + self.model.fc2.bias)

    @torch.no_grad()
    def dense(self) -> tuple[float, float]:
        """The uncompressed network's loss and accuracy."""
        return self._score(self.model.fc2(self.h))

    def _score(self, a: torch.Tensor) -> tuple[float, float]:
        with evaluation(self.model):
            out = self.model.after_W(a)
        accuracy = (out.argmax(1) == self.y).sum().item() / len(self.y)
        return F.nll_loss(out, self.y).item(), accuracy
