"""Training split into N shares of equal cost, one per machine (the publish workflow's matrix).

    python -m lowrank train --shard 2/4 --dry-run   # the pairs the 2nd of 4 shares would train
    python -m lowrank train --shard 2/4 --jobs 4    # train them, 4 at a time

Training runs in two stages. Stage 1 is every (experiment, seed) that is known before anything
is trained: each experiment's seeds, with a λ sweep's members at their tuning seed only. It is
what `--shard` splits, so every machine computes the same plan from the code alone. Stage 2 is
the extra seeds of the λ each sweep chooses on validation, known once its sweep is trained: a
plain `python -m lowrank train` after the shards trains them (4 models of 20 epochs).

A fine-tuning run starts from the trained model it names (the baseline with the same seed), so
it goes to the same share: shares are built from groups of pairs, a model and the fine-tuning
runs that start from it. Groups are dealt out longest first, each to the share that costs least
so far (Graham's LPT rule), which keeps the largest share within 4/3 of the best possible.
"""

import heapq
import re

from lowrank.experiments import EXPERIMENTS, _name_of, config_for, static_seeds

Job = tuple[str, int]  # (experiment, seed)


def cost(job: Job) -> float:
    """Relative training time: epochs x images x the cost of a step (a smaller batch costs more
    per image)."""
    import torch

    from lowrank.model import step_flops
    from lowrank.train import network

    c = config_for(*job)
    share = c.classes / 10  # about a tenth of MNIST's images per digit
    images = min(share, c.train_subset / 50_000) if c.train_subset else share
    with torch.device("meta"):  # shapes only, no weights
        flops = step_flops(network(c))
    return c.epochs * images * flops * (64 / c.batch_size) ** 0.5


def stage1(names: list[str] | None = None) -> list[Job]:
    """Every (experiment, seed) of names (default: all) known before anything is trained."""
    return [(name, seed) for name in names or EXPERIMENTS for seed in static_seeds(name)]


def groups(jobs: list[Job]) -> list[list[Job]]:
    """jobs grouped so that a fine-tuning run is with the model it starts from (same seed)."""
    by_root: dict[Job, list[Job]] = {}
    for name, seed in jobs:
        start = config_for(name, seed).start
        root = (_name_of(start), seed) if start is not None else (name, seed)
        by_root.setdefault(root, []).append((name, seed))
    return list(by_root.values())


def split(jobs: list[Job], n: int) -> list[list[Job]]:
    """jobs dealt into n shares of about equal cost; deterministic (ties: the order of jobs)."""
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    costed = [(sum(cost(job) for job in g), i, g) for i, g in enumerate(groups(jobs))]
    costed.sort(key=lambda c: (-c[0], c[1]))  # longest first
    shares: list[list[Job]] = [[] for _ in range(n)]
    heap = [(0.0, k) for k in range(n)]  # (cost so far, share): the cheapest share on top
    for c, _, group in costed:
        total, k = heapq.heappop(heap)
        shares[k].extend(group)
        heapq.heappush(heap, (total + c, k))
    order = {job: i for i, job in enumerate(jobs)}
    return [sorted(share, key=order.__getitem__) for share in shares]


def shard(jobs: list[Job], i: int, n: int) -> list[Job]:
    """The i-th (1-based) of n shares of jobs."""
    if not (isinstance(i, int) and 1 <= i <= n):
        raise ValueError(f"i must be an integer with 1 <= i <= {n}, got {i!r}")
    return split(jobs, n)[i - 1]


def parse(text: str) -> tuple[int, int]:
    """'I/N' as (I, N), with 1 <= I <= N."""
    match = re.fullmatch(r"([0-9]+)/([0-9]+)", text.strip())
    if not (match and 1 <= int(match[1]) <= int(match[2])):
        raise ValueError(f"--shard must be I/N with integers 1 <= I <= N, got {text!r}")
    return int(match[1]), int(match[2])
