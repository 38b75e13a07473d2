"""Command line: train, list and inspect the cached experiments.

    python -m lowrank list
    python -m lowrank train model0 [--force]      # no name: all; --jobs N: N at a time
    python -m lowrank show model0
"""

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from lowrank.experiments import EXPERIMENTS, cache_path, describe, is_cached, load_or_train, quick_mode


def format_history(history: list[dict]) -> str:
    """The per-epoch history as an aligned text table."""
    header = f"{'epoch':>5} {'lr':>9} {'train loss':>10} {'test loss':>9} {'test acc':>8} {'erank':>8} {'srank':>7} {'seconds':>7}"
    rows = [
        f"{r['epoch']:>5} {r['lr']:>9.3g} {r['train_loss']:>10.4f} {r['test_loss']:>9.4f} "
        f"{100 * r['test_acc']:>7.2f}% {r['erank']:>8.2f} {r['srank']:>7.2f} {r['seconds']:>7.1f}"
        for r in history
    ]
    return "\n".join([header, *rows])


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _train_one(name: str, force: bool) -> str:
    _, history = load_or_train(name, force=force, progress=False)
    last = history[-1]
    return f"{name}: test acc {100 * last['test_acc']:.2f}%, effective rank {last['erank']:.2f} ({cache_path(name)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lowrank", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the experiments, their configs and whether they are cached")
    train_p = sub.add_parser("train", help="train (or load) experiments; all when none is named")
    train_p.add_argument("names", nargs="*", metavar="name", help=f"one of {', '.join(EXPERIMENTS)}")
    train_p.add_argument("--force", action="store_true", help="retrain even if cached")
    train_p.add_argument("--jobs", type=int, default=1, metavar="N",
                         help="train N experiments at once, each on its share of the cores")
    show_p = sub.add_parser("show", help="the per-epoch history of a trained experiment")
    show_p.add_argument("name", help=f"one of {', '.join(EXPERIMENTS)}")
    args = parser.parse_args(argv)

    names = args.names or list(EXPERIMENTS) if args.command == "train" else []
    names += [args.name] if args.command == "show" else []
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"name must be one of {', '.join(EXPERIMENTS)}, got {unknown[0]!r}")
    if quick_mode():
        print("quick mode (LOWRANK_QUICK=1): tiny experiments for testing, not real results", file=sys.stderr)

    if args.command == "list":
        for name in EXPERIMENTS:
            state = "cached" if is_cached(name) else "not trained"
            print(f"{name:10} {state:11} {describe(name)}")
    elif args.command == "train":
        if args.jobs < 1:
            parser.error(f"--jobs must be an integer >= 1, got {args.jobs}")
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        with ProcessPoolExecutor(args.jobs, initializer=_set_threads, initargs=(threads,)) as pool:
            for line in pool.map(_train_one, names, [args.force] * len(names)):
                print(line, flush=True)
    else:
        if not is_cached(args.name):
            print(f"{args.name} is not trained yet: run python -m lowrank train {args.name}", file=sys.stderr)
            return 1
        _, history = load_or_train(args.name)
        print(f"{args.name}: {describe(args.name)}")
        print(format_history(history))
    return 0
