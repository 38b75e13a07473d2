"""The post's network, and the factorised layer that replaces its hidden W by U V."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from lowrank.checks import all_finite, check, check_int, check_matrix, is_real


class MnistFCNet(nn.Module):
    """784-1000-1000-10 feed-forward net: ReLU, dropout after each hidden layer,
    log-softmax output.

    With `rank=r` the middle layer is a LowRankLinear trained from scratch in factorised
    form; with `classes=C` the net has C outputs (for the digits 0 … C−1).
    """

    def __init__(self, hidden: int = 1000, dropout: float = 0.5,
                 rank: int | None = None, classes: int = 10):
        super().__init__()
        check_int(hidden, "hidden", 1)
        check_int(classes, "classes", 2, 10)
        ok = is_real(dropout) and 0 <= dropout < 1
        check(ok, "dropout", "a number in [0, 1)", repr(dropout))
        if rank is not None:
            check_int(rank, "rank", 1, hidden)
        self.fc1 = nn.Linear(784, hidden)
        # W, the matrix we compress
        if rank is None:
            self.fc2 = nn.Linear(hidden, hidden)
        else:
            self.fc2 = LowRankLinear.init(hidden, hidden, rank)
        self.fc3 = nn.Linear(hidden, classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.relu(self.fc1(x)))
        x = self.dropout(F.relu(self.fc2(x)))
        return F.log_softmax(self.fc3(x), dim=1)

    @property
    def W(self) -> torch.Tensor:
        """The hidden-to-hidden weight (out x in); for a factorised fc2, the product
        U V."""
        if isinstance(self.fc2, LowRankLinear):
            return self.fc2.U @ self.fc2.V
        return self.fc2.weight


class LowRankLinear(nn.Module):
    """x -> x V^T U^T + b, a linear layer whose m x n weight is stored as U (m x r)
    times V (r x n).

    It holds r (m + n) + m numbers instead of m n + m, and costs r (m + n) multiply-adds
    per input instead of m n.
    """

    def __init__(self, U: torch.Tensor, V: torch.Tensor,
                 bias: torch.Tensor | None = None):
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
    compressed = copy.deepcopy(model)
    compressed.fc2 = LowRankLinear(U, V, model.fc2.bias)
    return compressed.eval()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             batch_size: int = 10_000) -> tuple[float, float]:
    """Mean NLL loss and accuracy (in [0, 1]) of `model` on (x, y), in eval mode (no
    dropout)."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size])
        loss += F.nll_loss(out, y[i : i + batch_size], reduction="sum").item()
        correct += (out.argmax(1) == y[i : i + batch_size]).sum().item()
    model.train(was_training)
    return loss / len(x), correct / len(x)


class FactorisedEvaluator:
    """Test loss and accuracy of a trained net with W swapped for U V, for many (U, V)
    in a row.

    The first layer does not depend on W, so its output relu(fc1 x) is computed once;
    each call then costs r (m + n) per image instead of a full forward pass.
    """

    @torch.no_grad()
    def __init__(self, model: MnistFCNet, x: torch.Tensor, y: torch.Tensor):
        # non-empty and finite: NaN images would score a plausible accuracy
        check_matrix(x, "x")
        tensor = isinstance(y, torch.Tensor)
        got = f"{y.dtype} of shape {tuple(y.shape)}" if tensor else type(y).__name__
        ok = tensor and y.shape == (len(x),) and not y.is_floating_point()
        check(ok, "y", f"{len(x)} integer labels", got)
        self.model, self.y = model, y
        self.h = F.relu(model.fc1(x))  # dropout is the identity at evaluation

    @torch.no_grad()
    def __call__(self, U: torch.Tensor, V: torch.Tensor) -> tuple[float, float]:
        m, n = self.model.fc3.in_features, self.h.shape[1]
        check_matrix(U, "U"), check_matrix(V, "V")
        ok = U.shape[0] == m and V.shape[1] == n and U.shape[1] == V.shape[0]
        check(ok, "U, V", f"of shapes ({m}, r) and (r, {n})",
              f"{tuple(U.shape)} and {tuple(V.shape)}")
        check(U.dtype == V.dtype == self.h.dtype, "U, V",
              f"{self.h.dtype} like the model", f"{U.dtype} and {V.dtype}")
        z = F.relu((self.h @ V.T) @ U.T + self.model.fc2.bias)
        return self._score(z)

    @torch.no_grad()
    def dense(self) -> tuple[float, float]:
        """The uncompressed network's loss and accuracy."""
        return self._score(F.relu(self.model.fc2(self.h)))

    def _score(self, z: torch.Tensor) -> tuple[float, float]:
        out = F.log_softmax(self.model.fc3(z), dim=1)
        accuracy = (out.argmax(1) == self.y).sum().item() / len(self.y)
        return F.nll_loss(out, self.y).item(), accuracy
