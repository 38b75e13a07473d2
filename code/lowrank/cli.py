"""Command line: train, list and inspect the cached experiments.

    python -m lowrank list
    python -m lowrank train model0 [--force]      # no name: all; --jobs N: N at a time
    python -m lowrank show model0

`train` shows one progress bar for the whole sweep (on a terminal) and prints each model's
line as it finishes. Ctrl-C or SIGTERM stops every job at once; each keeps the checkpoint of
its last finished epoch, and the same command resumes from there. Failures are one line.
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

from lowrank.experiments import (EXPERIMENTS, CacheError, cache_dir, cache_path, check_writable, describe,
                                 is_cached, load_or_train, quick_mode)


class TrainFailed(RuntimeError):
    """A model could not be trained; the message is one line naming it."""


def format_history(history: list[dict]) -> str:
    """The per-epoch history as an aligned text table."""
    header = f"{'epoch':>5} {'lr':>9} {'train loss':>10} {'test loss':>9} {'test acc':>8} {'erank':>8} {'srank':>7} {'seconds':>7}"
    rows = [
        f"{r['epoch']:>5} {r['lr']:>9.3g} {r['train_loss']:>10.4f} {r['test_loss']:>9.4f} "
        f"{100 * r['test_acc']:>7.2f}% {r['erank']:>8.2f} {r['srank']:>7.2f} {r['seconds']:>7.1f}"
        for r in history
    ]
    return "\n".join([header, *rows])


def one_line(e: BaseException) -> str:
    """An exception as one line: our own errors already say what failed, where and what to do."""
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"{e.strerror}: {e.filename}"
    text = str(e) if isinstance(e, (ValueError, RuntimeError)) and str(e) else f"{type(e).__name__}: {e}"
    return " ".join(text.split())


def _show_warnings_in_one_line() -> None:
    warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: finally blocks run, temporary files go, workers stop."""


def _interrupt(signum, frame):
    raise Terminated


def _train_one(name: str, force: bool) -> str:
    _, history = load_or_train(name, force=force, progress=False)
    last = history[-1]
    return f"{name}: test acc {100 * last['test_acc']:.2f}%, effective rank {last['erank']:.2f} ({cache_path(name)})"


def _watch_parent(parent: int) -> None:
    """Stop this worker when its parent dies (kill -9 leaves no one to stop it otherwise)."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    os._exit(1)  # still here: stuck in C code


def _worker(name: str, force: bool, threads: int, parent: int, conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    signal.signal(signal.SIGTERM, _interrupt)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _show_warnings_in_one_line()
    import torch

    torch.set_num_threads(threads)
    try:
        conn.send((True, _train_one(name, force)))
    except KeyboardInterrupt:
        pass
    except Exception as e:
        conn.send((False, f"{name}: {one_line(e)}"))


def _train_in_pool(names: list[str], force: bool, jobs: int, done) -> None:
    """Train names, `jobs` at a time, each in a process of its own; done(line) as each ends."""
    # fork: a worker starts watching its parent at once (a spawned one would first spend
    # seconds importing torch, orphaned if the parent dies then); safe because this
    # process has not run torch yet, so no thread pool is copied half-way
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending, running = list(names), {}  # sentinel -> (name, process, connection)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                name = pending.pop(0)
                receive, send = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_worker, args=(name, force, threads, os.getpid(), send), daemon=True)
                p.start()
                send.close()
                running[p.sentinel] = (name, p, receive)
            for sentinel in multiprocessing.connection.wait(list(running)):
                name, p, receive = running.pop(sentinel)
                ok, line = receive.recv() if receive.poll() else (False, f"{name}: worker died (exit code {p.exitcode})")
                p.join()
                if not ok:
                    raise TrainFailed(line)
                done(line)
    finally:  # error, Ctrl-C or SIGTERM: stop the others now; their last epochs are on disk
        for _, p, _ in running.values():
            p.terminate()
        for _, p, _ in running.values():
            p.join()


def train_all(names: list[str], force: bool, jobs: int) -> None:
    """Train (or load) names; one progress bar on a terminal, one line per model as it ends."""
    from tqdm.auto import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: the workers are forked from this process
    check_writable(cache_dir())
    jobs = max(1, min(jobs, len(names), os.cpu_count() or 1))
    with tqdm(total=len(names), unit="model", desc="models", disable=not sys.stderr.isatty()) as bar:
        def done(line):
            bar.write(line, file=sys.stdout)
            bar.update()

        if jobs == 1:  # no pool: a process of its own buys nothing
            for name in names:
                try:
                    done(_train_one(name, force))
                except Exception as e:
                    raise TrainFailed(f"{name}: {one_line(e)}") from None
        else:
            _train_in_pool(names, force, jobs, done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lowrank", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the experiments, their configs and whether they are cached")
    train_p = sub.add_parser("train", help="train (or load) experiments; all when none is named")
    train_p.add_argument("names", nargs="*", metavar="name", help=f"one of {', '.join(EXPERIMENTS)}")
    train_p.add_argument("--force", action="store_true", help="retrain even if cached")
    train_p.add_argument("--jobs", type=int, default=1, metavar="N",
                         help="train N experiments at once (at most one per model and core)")
    show_p = sub.add_parser("show", help="the per-epoch history of a trained experiment")
    show_p.add_argument("name", help=f"one of {', '.join(EXPERIMENTS)}")
    args = parser.parse_args(argv)

    names = args.names or list(EXPERIMENTS) if args.command == "train" else []
    names += [args.name] if args.command == "show" else []
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"name must be one of {', '.join(EXPERIMENTS)}, got {unknown[0]!r}")
    if args.command == "train" and args.jobs < 1:
        parser.error(f"--jobs must be an integer >= 1, got {args.jobs}")
    _show_warnings_in_one_line()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if quick_mode():
            print("quick mode (LOWRANK_QUICK=1): tiny experiments for testing, not real results", file=sys.stderr)
        return _run(args, names)
    except KeyboardInterrupt as e:
        print("interrupted: every finished epoch is kept in the cache; run the same command to resume",
              file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
    except Exception as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args, names: list[str]) -> int:
    if args.command == "list":
        for name in EXPERIMENTS:
            try:
                state = "cached" if is_cached(name) else "not trained"
            except CacheError as e:
                state = "unreadable"
                print(f"error: {one_line(e)}", file=sys.stderr)
            print(f"{name:10} {state:11} {describe(name)}")
    elif args.command == "train":
        train_all(names, args.force, args.jobs)
    else:
        if not is_cached(args.name):
            print(f"{args.name} is not trained yet: run python -m lowrank train {args.name}", file=sys.stderr)
            return 1
        _, history = load_or_train(args.name)
        print(f"{args.name}: {describe(args.name)}")
        print(format_history(history))
    return 0
