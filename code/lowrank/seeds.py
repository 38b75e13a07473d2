"""Seed sweeps: several seeds of one config trained together, as one batched network.

    from lowrank.seeds import train_seeds
    results = train_seeds(TrainConfig(epochs=5), seeds=range(5), data=load_mnist())
    model, history = results[2]          # as train(replace(config, seed=2), data) returns them

Each member keeps its own seed: its initialisation (torch.manual_seed(seed), then MnistFCNet),
its data order and its dropout stream are those of train() with that seed. Only the matrix
products are shared: one torch.bmm over the S members instead of S small products, so one
process keeps every core busy, where `--jobs` runs one model per core and leaves cores idle
when the number of models is not a multiple of the number of jobs.
"""

import torch

from lowrank.data import Mnist
from lowrank.model import MnistFCNet
from lowrank.train import TrainConfig, fit


def train_seeds(
    config: TrainConfig, seeds, data: Mnist, device: torch.device | str | None = None, progress: bool | None = None
) -> list[tuple[MnistFCNet, list[dict]]]:
    """Train config once per seed, all together; (model, history) per seed, in the order given.

    config.seed is ignored: `seeds` replaces it. Histories have train()'s records; their
    `seconds` and `train_seconds` are the time of the epoch for all members together.
    """
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (a repeated seed trains the same model twice), got {seeds!r}")
    nets, histories = fit(config, seeds, data, device, progress=progress)
    return list(zip(nets, histories))
