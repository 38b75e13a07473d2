"""Compressing learnt weights using randomness.

Train a 784-1000-1000-10 network on MNIST, watch the effective rank of its hidden
1000x1000 weight W, and compress W by truncated SVD and by the randomized methods of
Halko, Martinsson & Tropp (2011).

    from lowrank import load_or_train, truncated_svd, randomized_low_rank, FactorisedEvaluator
"""

# ruff: noqa: E402 (the imports come after the Ctrl-C handler that covers them)
import signal
import sys


def _interrupted_while_starting(signum, frame):
    print("interrupted while starting: nothing was done", file=sys.stderr)
    raise SystemExit(128 + signum)  # 130, as the CLI's own Ctrl-C


# python -m lowrank: Ctrl-C while torch imports (seconds) is one line, not a traceback. Python
# sets argv[0] to "-m" while it imports the package; a program importing lowrank is left alone.
_STARTING = sys.argv[:1] == ["-m"]
if _STARTING:
    _previous_sigint = signal.signal(signal.SIGINT, _interrupted_while_starting)

from lowrank.data import Mnist, load_mnist
from lowrank.experiments import EXPERIMENTS, describe, is_cached, load_or_train, quick_mode
from lowrank.model import FactorisedEvaluator, LowRankLinear, MnistFCNet, evaluate, factorised
from lowrank.randomized import (
    Sketch,
    adaptive_range_finder,
    block_krylov_svd,
    compression_ratio,
    estimate_error,
    flip_signs,
    frobenius_error,
    hmt_expected_error,
    least_tolerance,
    randomized_low_rank,
    randomized_svd,
    range_finder,
    single_pass_svd,
    spectral_error,
    srft_range_finder,
    truncated_svd,
    with_spectrum,
)
from lowrank.rank import effective_rank, numerical_rank, stable_rank
from lowrank.train import TrainConfig, train

if _STARTING:
    signal.signal(signal.SIGINT, _previous_sigint)

__all__ = [
    "Mnist",
    "load_mnist",
    "MnistFCNet",
    "LowRankLinear",
    "factorised",
    "evaluate",
    "FactorisedEvaluator",
    "effective_rank",
    "stable_rank",
    "numerical_rank",
    "truncated_svd",
    "compression_ratio",
    "range_finder",
    "adaptive_range_finder",
    "srft_range_finder",
    "randomized_svd",
    "randomized_low_rank",
    "block_krylov_svd",
    "Sketch",
    "single_pass_svd",
    "estimate_error",
    "flip_signs",
    "with_spectrum",
    "spectral_error",
    "frobenius_error",
    "hmt_expected_error",
    "least_tolerance",
    "TrainConfig",
    "train",
    "EXPERIMENTS",
    "describe",
    "is_cached",
    "load_or_train",
    "quick_mode",
]
