"""Training throughput: our loop against a plain PyTorch loop, the PyTorch MNIST example and the
machine's matmul limit; a 5-seed sweep batched against `--jobs 2`.

    make bench-train            # or: .venv/bin/python bench/train_speed.py [--repeats 3] [--quick]

All figures come from one run, each a median of --repeats repetitions, the loops interleaved so
that noise from other work on the machine hits them alike:
  ours     lowrank.train's loop (StackedNets with one member: hand-written batched step);
  old      the package's loop before it (autograd, nn.Dropout, fused Adam, kept grad buffers);
  plain    a plain, well-written loop: tensors materialised once, nn.Dropout, torch.optim.Adam;
  example  github.com/pytorch/examples/tree/main/mnist: a DataLoader with per-image transforms.
All train model0's config (batch 64, dropout 0.5, Adam lr 1e-3); ours, old and plain also run
the per-epoch evaluation and the two SVDs of W, timed separately. The seed sweep trains five
seeds of model0 (--sweep-subset images, --sweep-epochs epochs, per-epoch evaluation included) batched in one
process with lowrank.seeds.train_seeds, and as `python -m lowrank train --jobs 2` does it: two
processes of one thread, one model each, with the new loop and with the old one.
Writes bench/results/train_speed.json and a table of it, train_speed.md (or into --out).
On a machine shared with other work, --threads 1 gives steadier ratios (see OMP_WAIT_POLICY below).
"""

import argparse
import json
import os
import platform
import statistics
import time

# Idle OpenMP threads sleep instead of spinning. On a machine shared with other work, spinning
# threads of a 2-thread loop wait for a descheduled partner: measured here under load, 750
# images/s with the default policy against 3,700 with PASSIVE. Set before torch loads OpenMP;
# it applies to every loop and worker alike. Override by setting OMP_WAIT_POLICY yourself.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from lowrank import MnistFCNet, TrainConfig, effective_rank, evaluate, load_mnist, stable_rank
from lowrank.data import data_root
from lowrank.seeds import train_seeds
from lowrank.train import StackedNets, _train_epoch

# multiply-adds x 2 per image: forward through the three layers, weight gradients of all three,
# input gradients of layers 2 and 3 (layer 1's input gradient is never needed).
LAYERS = [(784, 1000), (1000, 1000), (1000, 10)]
FLOP_PER_IMAGE = 2 * (2 * sum(m * n for m, n in LAYERS) + sum(m * n for m, n in LAYERS[1:]))
BASELINE = TrainConfig()  # model0: lr 1e-3, gamma 0.7, batch 64, dropout 0.5
OUT = Path(__file__).resolve().parent / "results"


def matmul_flops(m: int, k: int, n: int, repeats: int = 20) -> float:
    """Best float32 FLOP/s of an (m x k) @ (k x n) product over `repeats` (a bound: noise only slows it)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / min(times)


def evaluation_seconds(model, data) -> float:
    """The per-epoch evaluation every loop here runs: test loss and accuracy, erank and srank of W."""
    start = time.perf_counter()
    evaluate(model, data.test_x, data.test_y)
    W = model.W.detach()
    effective_rank(W), stable_rank(W)
    return time.perf_counter() - start


# --- the loops -------------------------------------------------------------------------------

def ours(data, steps: int | None = None):
    """lowrank.train's loop for one epoch: a callable that runs it, and the model to evaluate."""
    nets = StackedNets(BASELINE, [0], torch.device("cpu"))
    x, y = _head(data, steps)
    return (lambda: _train_epoch(nets, x, y, False, 1)), (lambda: nets.member(0)), nets.step


def autograd_loop(data, old: bool, steps: int | None = None, seed: int = 0):
    """The plain loop (old=False) or the package's previous loop (old=True), for one epoch."""
    torch.manual_seed(seed)
    model = MnistFCNet()
    # the old loop fused Adam and kept the gradient buffers; the plain loop takes the defaults
    optimizer = torch.optim.Adam(model.parameters(), lr=BASELINE.lr, fused=old or None)
    shuffle = torch.Generator().manual_seed(seed)
    x, y = _head(data, steps)

    def step(xb, yb):
        optimizer.zero_grad(set_to_none=not old)
        loss = F.nll_loss(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    def epoch():
        model.train()
        order = torch.randperm(len(x), generator=shuffle)
        total = torch.zeros(())
        for i in range(0, len(x), BASELINE.batch_size):
            idx = order[i : i + BASELINE.batch_size]
            total += step(x[idx], y[idx]).detach() * len(idx)
        return total.item() / len(x)

    return epoch, (lambda: model), step


def _head(data, steps):
    n = len(data.train_x) if steps is None else steps * BASELINE.batch_size
    return data.train_x[:n], data.train_y[:n]


def example_epoch(max_batches: int | None) -> tuple[float, int]:
    """One epoch as in pytorch/examples/mnist/main.py: seconds and images seen."""
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    dataset = datasets.MNIST(data_root(), train=True, download=False, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
    torch.manual_seed(0)
    model = MnistFCNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    seen, start = 0, time.perf_counter()
    for i, (data, target) in enumerate(loader):
        if max_batches is not None and i == max_batches:
            break
        optimizer.zero_grad()
        loss = F.nll_loss(model(data.view(-1, 784)), target)
        loss.backward()
        optimizer.step()
        seen += len(data)
    return time.perf_counter() - start, seen


def timed_epochs(data, repeats: int, steps: int | None, example_batches: int | None) -> dict:
    """Per loop: training images/s (loop alone) and seconds of evaluation, medians over repeats."""
    loops = {"ours": lambda: ours(data, steps), "old": lambda: autograd_loop(data, True, steps),
             "plain": lambda: autograd_loop(data, False, steps)}
    train_s = {name: [] for name in loops}
    eval_s = {name: [] for name in loops}
    example = []
    images = len(_head(data, steps)[0])
    for _ in range(repeats):  # interleaved, so that machine noise hits all alike
        for name, make in loops.items():
            epoch, model, _ = make()
            start = time.perf_counter()
            epoch()
            train_s[name].append(time.perf_counter() - start)
            eval_s[name].append(evaluation_seconds(model(), data))
        seconds, seen = example_epoch(example_batches)
        example.append(seen / seconds)
    med = statistics.median
    result = {name: dict(images_per_s=images / med(train_s[name]), train_seconds=med(train_s[name]),
                         eval_seconds=med(eval_s[name]),
                         epoch_images_per_s=images / med(t + e for t, e in zip(train_s[name], eval_s[name])))
              for name in loops}
    result["example"] = dict(images_per_s=med(example))
    result["images"] = images
    # ratios within each repetition (the loops ran back to back), then their median: robust to
    # the load of a shared machine drifting between repetitions
    result["ours_over_per_repeat"] = {
        name: med(other / mine for mine, other in zip(train_s["ours"], train_s[name])) for name in ("old", "plain")}
    result["ours_over_per_repeat"]["example"] = med(images / t / x for t, x in zip(train_s["ours"], example))
    result["ours_over_per_repeat"]["plain_whole_epoch"] = med(
        (tp + ep) / (to + eo) for to, eo, tp, ep in zip(train_s["ours"], eval_s["ours"], train_s["plain"], eval_s["plain"]))
    return result


# --- the profile of one step -----------------------------------------------------------------

def step_profile(data, top: int = 5, steps: int = 30) -> dict:
    """Top ops by self CPU time over `steps` steps of each loop, in ms per step."""
    from torch.profiler import ProfilerActivity, profile

    out = {}
    x, y = data.train_x[: 64 * (steps + 5)], data.train_y[: 64 * (steps + 5)]
    for name, make in [("plain", lambda: autograd_loop(data, False)), ("old", lambda: autograd_loop(data, True)),
                       ("ours", lambda: ours(data))]:
        _, _, step = make()
        batch = (lambda i: (x[i : i + 64][None], y[i : i + 64][None])) if name == "ours" else (
            lambda i: (x[i : i + 64], y[i : i + 64]))
        for i in range(0, 64 * 5, 64):  # warm up: allocator, Adam state
            step(*batch(i))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for i in range(64 * 5, 64 * (steps + 5), 64):
                step(*batch(i))
            per_step = (time.perf_counter() - start) / steps
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        out[name] = dict(ms_per_step=1e3 * per_step, top=[
            dict(op=e.key, ms_per_step=e.self_cpu_time_total / 1e3 / steps,
                 share=e.self_cpu_time_total / total) for e in events[:top]])
    return out


# --- the seed sweep --------------------------------------------------------------------------

def _jobs_threads() -> int:
    return max(1, (os.cpu_count() or 1) // 2)  # cli.py's share of the cores for each of --jobs 2


def _set_threads(n: int) -> None:
    torch.set_num_threads(n)


def _train_new(config: TrainConfig) -> float:
    from lowrank import train

    return train(config, load_mnist(), device="cpu", progress=False)[1][-1]["test_acc"]


def _train_old(config: TrainConfig) -> float:
    """The previous package loop (autograd, nn.Dropout) with the same per-epoch evaluation."""
    data = load_mnist()
    data = data if config.train_subset is None else data.subset(config.train_subset)
    epoch, model, _ = autograd_loop(data, True, seed=config.seed)
    for _ in range(config.epochs):
        epoch()
        evaluation_seconds(model(), data)
    return evaluate(model(), data.test_x, data.test_y)[1]


def sweep_seconds(config: TrainConfig, seeds: list[int], repeats: int) -> dict:
    """Wall time of the sweep: batched in this process, and by two one-thread processes (new, old loop)."""
    configs = [replace(config, seed=s) for s in seeds]
    times = {"batched": [], "jobs2_new": [], "jobs2_old": []}
    accs = {}
    threads = torch.get_num_threads()
    for _ in range(repeats):
        torch.set_num_threads(os.cpu_count() or 1)  # one process with every core, as `--jobs 1` would
        start = time.perf_counter()
        accs["batched"] = [h[-1]["test_acc"] for _, h in train_seeds(config, seeds, load_mnist(), "cpu", False)]
        times["batched"].append(time.perf_counter() - start)
        torch.set_num_threads(threads)
        for name, fn in [("jobs2_new", _train_new), ("jobs2_old", _train_old)]:
            start = time.perf_counter()  # includes starting the workers and loading MNIST, as the CLI does
            with ProcessPoolExecutor(2, initializer=_set_threads, initargs=(_jobs_threads(),)) as pool:
                accs[name] = list(pool.map(fn, configs))
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    per_repeat = {f"batched_over_{k}": statistics.median(b / o for b, o in zip(times["batched"], times[k]))
                  for k in ("jobs2_new", "jobs2_old")}
    return dict(seconds=med, all_seconds=times, test_acc=accs, per_repeat=per_repeat,
                ratio_to_jobs2_new=med["batched"] / med["jobs2_new"], ratio_to_jobs2_old=med["batched"] / med["jobs2_old"])


def sweep_fractions(results: dict) -> dict[str, float]:
    """The share of the matmul bound that each way of running the sweep keeps the whole machine at."""
    sweep = results["sweep"]
    config = sweep["config"]
    flop = len(sweep["seeds"]) * config["epochs"] * config["train_subset"] * results["flop_per_image"]
    bound = results["matmul_gflops"]["bound"] * 1e9
    return {label: flop / sweep["seconds"][k] / bound
            for label, k in [("batched", "batched"), ("--jobs 2", "jobs2_new"), ("--jobs 2, old loop", "jobs2_old")]}


def markdown(results: dict) -> str:
    """A short table of a run's figures, from its JSON."""
    e, ratios, sweep = results["epochs"], results["ratios"], results["sweep"]
    per, sec = e["ours_over_per_repeat"], sweep["seconds"]
    lines = [
        "# Training speed (written by bench/train_speed.py from train_speed.json)",
        "",
        f"torch {results['torch']}, {results['threads']} thread(s), {results['cpus']} CPUs, load average "
        f"{results['load_average_start']:.1f} at the start and {results['load_average_end']:.1f} at the end, "
        f"OMP_WAIT_POLICY={results['omp_wait_policy']}; medians of {results['repeats']} repetitions"
        + (" (--quick: figures mean nothing)" if results["quick"] else "") + ".",
        "",
        "| loop | images/s (loop alone) | ours / loop | ours / loop, within repetitions |",
        "|---|---:|---:|---:|",
        f"| ours (lowrank.train) | {e['ours']['images_per_s']:.0f} | | |",
        *(f"| {name} | {e[name]['images_per_s']:.0f} | {e['ours']['images_per_s'] / e[name]['images_per_s']:.2f}x "
          f"| {per[name]:.2f}x |" for name in ("old", "plain", "example")),
        "",
        f"Whole epoch with evaluation and SVDs, ours / plain: {ratios['epoch_ours_over_plain']:.2f}x "
        f"({per['plain_whole_epoch']:.2f}x within repetitions). Matmul bound "
        f"{results['matmul_gflops']['bound']:.1f} GFLOP/s (best of 2048^3 and 64x1000x1000); ours attains "
        f"{ratios['fraction_of_matmul_bound']:.1%} of it.",
        "",
        "| profile, ms per step | plain | old | ours |",
        "|---|---:|---:|---:|",
        "| whole step | " + " | ".join(f"{results['profile'][n]['ms_per_step']:.2f}" for n in ("plain", "old", "ours")) + " |",
        *(f"| top op {i + 1} | " + " | ".join(
            f"{results['profile'][n]['top'][i]['op']} {results['profile'][n]['top'][i]['ms_per_step']:.2f}"
            for n in ("plain", "old", "ours")) + " |" for i in range(5)),
        "",
        f"Seed sweep, {len(sweep['seeds'])} seeds x {sweep['config']['epochs']} epoch(s) on "
        f"{sweep['config']['train_subset']} images, wall seconds: batched {sec['batched']:.1f}, "
        f"--jobs 2 with the new loop {sec['jobs2_new']:.1f}, with the old loop {sec['jobs2_old']:.1f}; "
        f"batched / --jobs 2 = {sweep['per_repeat']['batched_over_jobs2_new']:.2f} (new loop) and "
        f"{sweep['per_repeat']['batched_over_jobs2_old']:.2f} (old loop), within repetitions.",
        "",
        "Whole machine, training FLOPs only (start-up, evaluation and SVDs count in the wall time): "
        + ", ".join(f"{label} {f:.1%}" for label, f in sweep_fractions(results).items()) + " of the matmul bound.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of every timing (median reported)")
    parser.add_argument("--sweep-epochs", type=int, default=1, help="epochs of each of the five sweep runs")
    parser.add_argument("--sweep-subset", type=int, default=30_000, help="training images of each sweep run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the loops (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run: figures mean nothing")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for train_speed.json")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite train_speed.md from train_speed.json")
    args = parser.parse_args()
    if args.markdown_only:
        (args.out / "train_speed.md").write_text(markdown(json.loads((args.out / "train_speed.json").read_text())))
        return
    load_start = os.getloadavg()[0]
    if args.threads:
        torch.set_num_threads(args.threads)
    steps, example_batches = (20, 20) if args.quick else (None, None)
    if args.quick:
        args.repeats = 1
    sweep_config = replace(BASELINE, epochs=args.sweep_epochs, train_subset=640 if args.quick else args.sweep_subset)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
          + ("  [--quick: figures mean nothing]" if args.quick else ""))
    peak = matmul_flops(2048, 2048, 2048)
    at_shape = matmul_flops(64, 1000, 1000, repeats=200)
    peak = max(peak, at_shape)  # on a busy machine the long 2048^3 products may be the ones slowed down
    print(f"float32 matmul bound: {peak / 1e9:.1f} GFLOP/s (best of 2048^3 and 64x1000x1000); "
          f"{at_shape / 1e9:.1f} at 64x1000x1000")

    data = load_mnist()
    epochs = timed_epochs(data, args.repeats, steps, example_batches)
    r = {k: epochs[k]["images_per_s"] for k in ("ours", "old", "plain", "example")}
    per = epochs["ours_over_per_repeat"]
    print(f"training loop alone, images/s (median of {args.repeats}, {epochs['images']} images); "
          "ours / loop: ratio of medians, and median of the ratios within a repetition:")
    print(f"  ours     {r['ours']:8.0f}")
    for name in ("old", "plain", "example"):
        print(f"  {name:8} {r[name]:8.0f}   {r['ours'] / r[name]:.2f}x, {per[name]:.2f}x")
    e = {k: epochs[k]["epoch_images_per_s"] for k in ("ours", "old", "plain")}
    print(f"whole epoch with evaluation and SVDs: ours {e['ours']:.0f}, plain {e['plain']:.0f} images/s: "
          f"{e['ours'] / e['plain']:.2f}x ({per['plain_whole_epoch']:.2f}x within repetitions; target >= 1.5x); evaluation {epochs['ours']['eval_seconds']:.2f} s")
    attained = r["ours"] * FLOP_PER_IMAGE
    print(f"FLOPs per image {FLOP_PER_IMAGE / 1e6:.2f} M -> {attained / 1e9:.1f} GFLOP/s: {attained / peak:.1%} of the "
          f"bound (target >= 60%), {attained / at_shape:.0%} of the 64x1000x1000 rate")

    profile = step_profile(data, steps=5 if args.quick else 30)
    for name, p in profile.items():
        print(f"profile {name}: {p['ms_per_step']:.2f} ms/step; top ops (self CPU ms/step): "
              + ", ".join(f"{t['op']} {t['ms_per_step']:.2f} ({t['share']:.0%})" for t in p["top"]))

    seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4]
    sweep = sweep_seconds(sweep_config, seeds, 1 if args.quick else args.repeats)
    s = sweep["seconds"]
    print(f"sweep of {len(seeds)} seeds x {sweep_config.epochs} epoch(s) on {sweep_config.train_subset} images, wall s: "
          f"batched {s['batched']:.1f}, --jobs 2 new loop {s['jobs2_new']:.1f}, --jobs 2 old loop {s['jobs2_old']:.1f}")
    pr = sweep["per_repeat"]
    print(f"  batched / jobs2 (new loop) = {sweep['ratio_to_jobs2_new']:.2f} ({pr['batched_over_jobs2_new']:.2f} within "
          f"repetitions), batched / jobs2 (old loop) = {sweep['ratio_to_jobs2_old']:.2f} "
          f"({pr['batched_over_jobs2_old']:.2f})  (target <= 0.67)")

    results = dict(
        torch=torch.__version__, threads=torch.get_num_threads(), cpus=os.cpu_count(), machine=platform.machine(),
        load_average_start=load_start, load_average_end=os.getloadavg()[0],
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
        quick=args.quick, repeats=args.repeats, matmul_gflops=dict(bound=peak / 1e9, at_64x1000x1000=at_shape / 1e9),
        flop_per_image=FLOP_PER_IMAGE, epochs=epochs,
        ratios=dict(ours_over_plain=r["ours"] / r["plain"], ours_over_old=r["ours"] / r["old"],
                    ours_over_example=r["ours"] / r["example"], epoch_ours_over_plain=e["ours"] / e["plain"],
                    fraction_of_matmul_bound=attained / peak),
        profile=profile, sweep=dict(config=sweep_config.to_dict(), seeds=seeds, **sweep),
    )
    print("whole machine during the sweep, training FLOPs only: " + ", ".join(
        f"{label} {f:.1%}" for label, f in sweep_fractions(results).items()) + " of the matmul bound")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "train_speed.md").write_text(markdown(results))
    print(f"wrote {args.out / 'train_speed.json'}")


if __name__ == "__main__":
    main()
