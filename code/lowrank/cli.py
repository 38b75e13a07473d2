"""Command line: train, list and inspect the cached experiments.

    python -m lowrank list                        # every experiment, its seeds and what is cached
    python -m lowrank train model0 [--force]      # every seed; no name: all; --jobs N: N at a time
    python -m lowrank train --shard 2/4 [--dry-run]   # the 2nd of 4 equal shares (lowrank.shards)
    python -m lowrank show model0 [--seed 3]
    python -m lowrank clean                       # remove what killed processes left behind

`train` trains each experiment with each of its seeds, one (experiment, seed) per job, the
longest first. It shows one progress bar for the whole sweep (on a terminal) and prints each
model's line as it finishes. A λ sweep's chosen member gets its extra seeds as soon as the
sweep's tuning runs are done. Ctrl-C or SIGTERM stops every job at once; each keeps the
checkpoint of its last finished epoch, and the same command resumes from there. Failures are
one line.

`--shard I/N` trains the I-th of N shares of equal cost of stage 1 only (lowrank.shards: what
is known before anything is trained); `--dry-run` prints what would be trained, one a line.
"""

import argparse
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import warnings

from lowrank.cache import CacheError, cache_dir, check_writable, remove_leftovers
from lowrank.experiments import (
    EXPERIMENTS,
    cache_path,
    config_for,
    describe,
    is_cached,
    load_or_train,
    planned_seeds,
    quick_mode,
)
from lowrank.shards import cost as _cost
from lowrank.shards import parse, shard, stage1


class TrainFailed(RuntimeError):
    """A model could not be trained; the message is one line naming it."""


def format_history(history: list[dict]) -> str:
    """The per-epoch history as an aligned text table."""
    header = (
        f"{'epoch':>5} {'lr':>9} {'train loss':>10} {'val loss':>8} {'val acc':>7} "
        f"{'test loss':>9} {'test acc':>8} {'erank':>8} {'srank':>7} {'seconds':>7}"
    )
    rows = [
        f"{r['epoch']:>5} {r['lr']:>9.3g} {r['train_loss']:>10.4f} {r['val_loss']:>8.4f} "
        f"{100 * r['val_acc']:>6.2f}% {r['test_loss']:>9.4f} {100 * r['test_acc']:>7.2f}% "
        f"{r['erank']:>8.2f} {r['srank']:>7.2f} {r['seconds']:>7.1f}"
        for r in history
    ]
    return "\n".join([header, *rows])


def one_line(e: BaseException) -> str:
    """An exception as one line: our own errors already say what failed, where and what to do."""
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"{e.strerror}: {e.filename}"
    text = (
        str(e)
        if isinstance(e, (ValueError, RuntimeError)) and str(e)
        else f"{type(e).__name__}: {e}"
    )
    return " ".join(text.split())


def _show_warnings_in_one_line() -> None:
    warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: finally blocks run, temporary files go, workers stop."""


def _interrupt(signum, frame):
    raise Terminated


Job = tuple[str, int]  # (experiment, seed)


def _train_one(job: Job, force: bool) -> str:
    name, seed = job
    _, history = load_or_train(name, force=force, progress=False, seed=seed)
    last = history[-1]
    return (
        f"{name} seed {seed}: val acc {100 * last['val_acc']:.2f}%, "
        f"test acc {100 * last['test_acc']:.2f}%, effective rank {last['erank']:.2f} "
        f"({cache_path(name, seed).name})"
    )


def _watch_parent(parent: int) -> None:
    """Stop this worker when its parent dies (kill -9 leaves no one to stop it otherwise)."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    os._exit(1)  # still here: stuck in C code


def _worker(job: Job, force: bool, threads: int, parent: int, conn) -> None:
    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # Ctrl-C reaches the whole group; the parent decides
    signal.signal(signal.SIGTERM, _interrupt)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _show_warnings_in_one_line()
    import torch

    torch.set_num_threads(threads)
    try:
        conn.send((True, _train_one(job, force)))
    except KeyboardInterrupt:
        pass
    except Exception as e:
        conn.send((False, f"{job[0]} seed {job[1]}: {one_line(e)}"))


def _train_in_pool(next_jobs, force: bool, jobs: int, done) -> None:
    """Train what next_jobs() lists, `jobs` at a time, each in a process of its own; done(line) as
    each ends. next_jobs() is asked again after every job: a finished job can add new ones."""
    # fork: a worker starts watching its parent at once (a spawned one would first spend
    # seconds importing torch, orphaned if the parent dies then); safe because this
    # process has not run torch yet, so no thread pool is copied half-way
    ctx = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    threads = max(1, (os.cpu_count() or 1) // jobs)
    started, running = set(), {}  # sentinel -> (job, process, connection)
    pending = [job for job in next_jobs() if job not in started]
    try:
        while pending or running:
            while pending and len(running) < jobs:
                job = pending.pop(0)
                started.add(job)
                receive, send = ctx.Pipe(duplex=False)
                p = ctx.Process(
                    target=_worker, args=(job, force, threads, os.getpid(), send), daemon=True
                )
                p.start()
                send.close()
                running[p.sentinel] = (job, p, receive)
            for sentinel in multiprocessing.connection.wait(list(running)):
                job, p, receive = running.pop(sentinel)
                try:
                    ok, line = receive.recv()
                except EOFError:  # it died without a word: killed (kill -9, out of memory)
                    p.join()
                    ok, line = False, _died(job, p.exitcode)
                p.join()
                if not ok:
                    raise TrainFailed(line)
                done(job, line)
            pending = [job for job in next_jobs() if job not in started]
    finally:  # error, Ctrl-C or SIGTERM: stop the others now; their last epochs are on disk
        for _, p, _ in running.values():
            p.terminate()
        for _, p, _ in running.values():
            p.join()


def _died(job: Job, exitcode: int | None) -> str:
    """The line for a worker that ended without reporting: which model, how, and what is kept."""
    how = f"exited with code {exitcode}"
    if exitcode is not None and exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-exitcode}"
    return (
        f"{job[0]} seed {job[1]}: its worker {how}; the epochs it finished are kept in "
        f"the cache, and so are the models the other workers finished: run the same command "
        f"to resume"
    )


def _jobs(plan: list[Job], force: bool, finished=frozenset()) -> list[Job]:
    """Every (experiment, seed) of plan still to train, the longest first (so that the last
    jobs are short and no core idles long); fine-tuning after the models it starts from."""
    jobs = [job for job in plan if job not in finished and (force or not is_cached(*job))]
    return sorted(jobs, key=lambda job: (config_for(*job).start is not None, -_cost(job)))


def train_all(
    names: list[str],
    force: bool,
    jobs: int,
    share: tuple[int, int] | None = None,
    dry_run: bool = False,
) -> None:
    """Train (or load) every seed of names, or with share=(i, n) the i-th of n equal shares of
    their stage 1; one progress bar on a terminal, one line per model as it ends. dry_run: print
    what would be trained, one (experiment, seed) a line, and train nothing."""
    from tqdm.auto import tqdm

    def plan() -> list[Job]:
        if share is not None:  # static: every machine of a matrix computes the same shares
            return shard(stage1(names), *share)
        return [(name, seed) for name in names for seed in planned_seeds(name)]

    if dry_run:
        for name, seed in _jobs(plan(), force):
            print(f"{name} seed {seed}")
        return
    tqdm.monitor_interval = 0  # no monitor thread: the workers are forked from this process
    first = _jobs(plan(), force)
    if first:  # a complete cache is only read: it may be read-only (a shared one, say)
        check_writable(cache_dir())
    jobs = max(1, min(jobs, len(first), os.cpu_count() or 1))
    finished: set[Job] = set()

    def next_jobs():  # each job once, also with --force
        return _jobs(plan(), force, finished)

    with tqdm(
        total=len(first), unit="model", desc="models", disable=not sys.stderr.isatty()
    ) as bar:

        def done(job, line):
            finished.add(job)
            bar.write(line, file=sys.stdout)
            bar.update()

        if jobs == 1:  # no pool: a process of its own buys nothing
            while todo := next_jobs():
                try:
                    line = _train_one(todo[0], force)
                except Exception as e:
                    raise TrainFailed(f"{todo[0][0]} seed {todo[0][1]}: {one_line(e)}") from None
                done(todo[0], line)
        else:
            _train_in_pool(next_jobs, force, jobs, done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lowrank", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the experiments, their configs and whether they are cached")
    train_p = sub.add_parser("train", help="train (or load) experiments; all when none is named")
    train_p.add_argument(
        "names", nargs="*", metavar="name", help=f"one of {', '.join(EXPERIMENTS)}"
    )
    train_p.add_argument("--force", action="store_true", help="retrain even if cached")
    train_p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="train N experiments at once (at most one per model and core)",
    )
    train_p.add_argument(
        "--shard",
        metavar="I/N",
        help="train only the I-th of N shares of equal cost of stage 1 (lowrank.shards)",
    )
    train_p.add_argument(
        "--dry-run", action="store_true", help="print what would be trained, one a line"
    )
    show_p = sub.add_parser("show", help="the per-epoch history of a trained experiment")
    show_p.add_argument("name", help=f"one of {', '.join(EXPERIMENTS)}")
    show_p.add_argument("--seed", type=int, default=0, metavar="S", help="which seed (default 0)")
    sub.add_parser("clean", help="remove what killed processes left in the cache (not progress)")
    args = parser.parse_args(argv)

    names = args.names or list(EXPERIMENTS) if args.command == "train" else []
    names += [args.name] if args.command == "show" else []
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"name must be one of {', '.join(EXPERIMENTS)}, got {unknown[0]!r}")
    if args.command == "train" and args.jobs < 1:
        parser.error(f"--jobs must be an integer >= 1, got {args.jobs}")
    share = None
    if args.command == "train" and args.shard is not None:
        try:
            share = parse(args.shard)
        except ValueError as e:
            parser.error(str(e))
    if args.command == "show" and not 0 <= args.seed < 2**32:
        parser.error(f"--seed must be an integer in [0, 2**32), got {args.seed}")
    _show_warnings_in_one_line()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if quick_mode():
            print(
                "quick mode (LOWRANK_QUICK=1): tiny experiments for testing, not real results",
                file=sys.stderr,
            )
        return _run(args, names, share)
    except KeyboardInterrupt as e:
        print(
            "interrupted: every finished epoch is kept in the cache; "
            "run the same command to resume",
            file=sys.stderr,
        )
        return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
    except Exception as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args, names: list[str], share: tuple[int, int] | None = None) -> int:
    if args.command == "list":
        for name in EXPERIMENTS:
            print(_list_line(name))
    elif args.command == "train":
        if not args.dry_run:  # a dry run writes nothing, removes nothing
            _remove_leftovers(quiet=True)
        train_all(names, args.force, args.jobs, share, args.dry_run)
    elif args.command == "clean":
        _remove_leftovers(quiet=False)
    else:
        if not is_cached(args.name, args.seed):
            not_yet = f"{args.name} seed {args.seed} is not trained yet"
            print(f"{not_yet}: {_how_to_train(args)}", file=sys.stderr)
            return 1
        _, history = load_or_train(args.name, seed=args.seed)
        print(f"{args.name} seed {args.seed}: {describe(args.name)}")
        print(format_history(history))
    return 0


def _remove_leftovers(quiet: bool) -> None:
    """Remove the temporary files and superseded checkpoints of killed processes; say so."""
    removed = remove_leftovers(cache_dir())
    for path, size in [] if quiet else removed:
        print(f"removed {path} ({size / 1e6:.1f} MB)")
    if removed or not quiet:
        total = sum(size for _, size in removed) / 1e6
        print(
            f"removed {len(removed)} leftovers of killed processes ({total:.1f} MB) from "
            f"{cache_dir()}",
            file=sys.stderr if quiet else sys.stdout,
        )


def _how_to_train(args) -> str:
    """The command that trains (args.name, args.seed), as it can be pasted into a shell."""
    seeds = planned_seeds(args.name)
    if args.seed in seeds:
        return f"run python -m lowrank train {args.name}"
    code = f"from lowrank import load_or_train; load_or_train('{args.name}', seed={args.seed})"
    return f'train trains its {_span(seeds)} only; for seed {args.seed} run python -c "{code}"'


def _span(seeds: list[int]) -> str:
    """'seed 3', 'seeds 0-7' or 'seeds 0-7, 1000': runs of consecutive seeds."""
    runs: list[list[int]] = []
    for seed in sorted(seeds):
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    text = ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"seed{'s' if len(seeds) > 1 else ''} {text}"


def _list_line(name: str) -> str:
    """name, its seeds, how many of them are cached, and its config (errors: on stderr, once
    each)."""
    try:
        seeds = planned_seeds(name)
    except CacheError as e:  # a λ sweep member that cannot be read: its choice is unknown
        print(f"error: {one_line(e)}", file=sys.stderr)
        seeds = [0]
    states = []
    for seed in seeds:
        try:
            states.append("cached" if is_cached(name, seed) else "not trained")
        except CacheError as e:
            states.append("unreadable")
            print(f"error: {one_line(e)}", file=sys.stderr)
    counts = ", ".join(
        f"{states.count(s)} {s}" for s in ("cached", "not trained", "unreadable") if s in states
    )
    return f"{name:15} {_span(seeds):16} {counts:22} {describe(name)}"
