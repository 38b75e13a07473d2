"""Training throughput: our loop against a plain PyTorch loop, the PyTorch MNIST example and the
machine's matmul limit.

    make bench-train            # or: .venv/bin/python bench/train_speed.py [--repeats 3] [--quick]

All figures come from one run, each a median of --repeats repetitions, the loops interleaved so
that noise from other work on the machine hits them alike:
  ours     lowrank.train's loop (Training.epoch: autograd through MnistFCNet, its bit-threshold
           dropout, fused Adam with fresh gradients);
  plain    a plain, well-written loop: tensors materialised once, nn.Dropout, torch.optim.Adam;
  example  github.com/pytorch/examples/tree/main/mnist: a DataLoader with per-image transforms.
All train model0's config (batch 64, dropout 0.5, Adam lr 1e-3); ours and plain also run the
per-epoch evaluation and the two SVDs of W, timed separately. By default every loop runs on
lowrank.train.TRAIN_THREADS threads, the count every model is trained with; --threads changes it.
The FLOPs per image come from the network itself (lowrank.model.step_flops).
Writes bench/results/train_speed.json and a table of it, train_speed.md (or into --out).
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
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lowrank import MnistFCNet, TrainConfig, effective_rank, evaluate, load_mnist, stable_rank
from lowrank.data import data_root
from lowrank.model import step_flops
from lowrank.train import TRAIN_THREADS, Training

FLOP_PER_IMAGE = step_flops(MnistFCNet())  # forward, weight and input gradients, from the layers
BASELINE = TrainConfig()  # model0: lr 1e-3, gamma 0.7, batch 64, dropout 0.5
OUT = Path(__file__).resolve().parent / "results"


def matmul_flops(m: int, k: int, n: int, repeats: int = 20) -> float:
    """Best float32 FLOP/s of an (m x k) @ (k x n) product over `repeats` (a bound: noise only
    slows it)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / min(times)


def evaluation_seconds(model, data) -> float:
    """The per-epoch evaluation every loop here runs: test loss and accuracy, erank and srank
    of W."""
    start = time.perf_counter()
    evaluate(model, data.test_x, data.test_y)
    W = model.W.detach()
    effective_rank(W), stable_rank(W)
    return time.perf_counter() - start


# --- the loops -------------------------------------------------------------------------------


def ours(data, steps: int | None = None):
    """lowrank.train's loop for one epoch: a callable that runs it, and the model to evaluate."""
    run = Training(BASELINE, torch.device("cpu"))
    x, y = _head(data, steps)
    return (lambda: run.epoch(x, y)), (lambda: run.model), run.step


def plain_net(seed: int = 0) -> MnistFCNet:
    """The post's network with PyTorch's own nn.Dropout, as a plain loop would have it."""
    torch.manual_seed(seed)
    model = MnistFCNet()
    model.dropout = nn.Dropout(BASELINE.dropout)
    return model


def plain_loop(data, steps: int | None = None, seed: int = 0):
    """A plain PyTorch loop for one epoch: a callable that runs it, the model, one step."""
    model = plain_net(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=BASELINE.lr)
    shuffle = torch.Generator().manual_seed(seed)
    x, y = _head(data, steps)

    def step(xb, yb):
        optimizer.zero_grad()
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

    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )
    dataset = datasets.MNIST(data_root(), train=True, download=False, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
    model = plain_net()
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
    loops = {"ours": lambda: ours(data, steps), "plain": lambda: plain_loop(data, steps)}
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
    result = {
        name: dict(
            images_per_s=images / med(train_s[name]),
            train_seconds=med(train_s[name]),
            eval_seconds=med(eval_s[name]),
            epoch_images_per_s=images / med(t + e for t, e in zip(train_s[name], eval_s[name])),
        )
        for name in loops
    }
    result["example"] = dict(images_per_s=med(example))
    result["images"] = images
    # ratios within each repetition (the loops ran back to back), then their median: robust to
    # the load of a shared machine drifting between repetitions
    result["ours_over_per_repeat"] = {
        name: med(other / mine for mine, other in zip(train_s["ours"], train_s[name]))
        for name in ("plain",)
    }
    result["ours_over_per_repeat"]["example"] = med(
        images / t / x for t, x in zip(train_s["ours"], example)
    )
    result["ours_over_per_repeat"]["plain_whole_epoch"] = med(
        (tp + ep) / (to + eo)
        for to, eo, tp, ep in zip(
            train_s["ours"], eval_s["ours"], train_s["plain"], eval_s["plain"]
        )
    )
    return result


# --- the profile of one step -----------------------------------------------------------------


def step_profile(data, top: int = 5, steps: int = 30) -> dict:
    """Top ops by self CPU time over `steps` steps of each loop, in ms per step."""
    from torch.profiler import ProfilerActivity, profile

    out = {}
    x, y = data.train_x[: 64 * (steps + 5)], data.train_y[: 64 * (steps + 5)]
    for name, make in [("plain", lambda: plain_loop(data)), ("ours", lambda: ours(data))]:
        _, _, step = make()
        batch = lambda i: (x[i : i + 64], y[i : i + 64])  # noqa: E731
        for i in range(0, 64 * 5, 64):  # warm up: allocator, Adam state
            step(*batch(i))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for i in range(64 * 5, 64 * (steps + 5), 64):
                step(*batch(i))
            per_step = (time.perf_counter() - start) / steps
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        out[name] = dict(
            ms_per_step=1e3 * per_step,
            top=[
                dict(
                    op=e.key,
                    ms_per_step=e.self_cpu_time_total / 1e3 / steps,
                    share=e.self_cpu_time_total / total,
                )
                for e in events[:top]
            ],
        )
    return out


def markdown(results: dict) -> str:
    """A short table of a run's figures, from its JSON."""
    e, ratios = results["epochs"], results["ratios"]
    per, prof = e["ours_over_per_repeat"], results["profile"]
    quick = " (--quick: figures mean nothing)" if results["quick"] else ""
    lines = [
        "# Training speed (written by bench/train_speed.py from train_speed.json)",
        "",
        f"torch {results['torch']}, {results['threads']} thread(s), {results['cpus']} CPUs, "
        f"load average {results['load_average_start']:.1f} at the start and "
        f"{results['load_average_end']:.1f} at the end, "
        f"OMP_WAIT_POLICY={results['omp_wait_policy']}; medians of {results['repeats']} "
        f"repetitions{quick}.",
        "",
        "| loop | images/s (loop alone) | ours / loop | ours / loop, within repetitions |",
        "|---|---:|---:|---:|",
        f"| ours (lowrank.train) | {e['ours']['images_per_s']:.0f} | | |",
        *(
            f"| {name} | {e[name]['images_per_s']:.0f} "
            f"| {e['ours']['images_per_s'] / e[name]['images_per_s']:.2f}x | {per[name]:.2f}x |"
            for name in ("plain", "example")
        ),
        "",
        f"Whole epoch with evaluation and SVDs, ours / plain: "
        f"{ratios['epoch_ours_over_plain']:.2f}x ({per['plain_whole_epoch']:.2f}x within "
        f"repetitions). Matmul bound {results['matmul_gflops']['bound']:.1f} GFLOP/s (best of "
        f"2048^3 and 64x1000x1000 on {results['threads']} thread(s)); ours attains "
        f"{ratios['fraction_of_matmul_bound']:.1%} of it "
        f"({results['flop_per_image'] / 1e6:.2f} MFLOP per image, from the network's layers).",
        "",
        "| profile, ms per step | plain | ours |",
        "|---|---:|---:|",
        "| whole step | "
        + " | ".join(f"{prof[n]['ms_per_step']:.2f}" for n in ("plain", "ours"))
        + " |",
        *(
            f"| top op {i + 1} | "
            + " | ".join(
                f"{prof[n]['top'][i]['op']} {prof[n]['top'][i]['ms_per_step']:.2f}"
                for n in ("plain", "ours")
            )
            + " |"
            for i in range(5)
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="repetitions of every timing (median reported)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=TRAIN_THREADS,
        help="torch threads for every loop (default: the count training uses)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="seconds-long smoke run: figures mean nothing"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="folder for train_speed.json")
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite train_speed.md from train_speed.json"
    )
    args = parser.parse_args()
    if args.markdown_only:
        results = json.loads((args.out / "train_speed.json").read_text())
        (args.out / "train_speed.md").write_text(markdown(results))
        return
    load_start = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    steps, example_batches = (20, 20) if args.quick else (None, None)
    if args.quick:
        args.repeats = 1

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
        + ("  [--quick: figures mean nothing]" if args.quick else "")
    )
    peak = matmul_flops(2048, 2048, 2048)
    at_shape = matmul_flops(64, 1000, 1000, repeats=200)
    peak = max(peak, at_shape)  # on a busy machine the long 2048^3 products may be slowed down
    print(
        f"float32 matmul bound: {peak / 1e9:.1f} GFLOP/s (best of 2048^3 and 64x1000x1000); "
        f"{at_shape / 1e9:.1f} at 64x1000x1000"
    )

    data = load_mnist()
    epochs = timed_epochs(data, args.repeats, steps, example_batches)
    r = {k: epochs[k]["images_per_s"] for k in ("ours", "plain", "example")}
    per = epochs["ours_over_per_repeat"]
    print(
        f"training loop alone, images/s (median of {args.repeats}, {epochs['images']} images); "
        "ours / loop: ratio of medians, and median of the ratios within a repetition:"
    )
    print(f"  ours     {r['ours']:8.0f}")
    for name in ("plain", "example"):
        print(f"  {name:8} {r[name]:8.0f}   {r['ours'] / r[name]:.2f}x, {per[name]:.2f}x")
    e = {k: epochs[k]["epoch_images_per_s"] for k in ("ours", "plain")}
    print(
        f"whole epoch with evaluation and SVDs: ours {e['ours']:.0f}, plain {e['plain']:.0f} "
        f"images/s: {e['ours'] / e['plain']:.2f}x ({per['plain_whole_epoch']:.2f}x within "
        f"repetitions; aim >= 1.5x); evaluation {epochs['ours']['eval_seconds']:.2f} s"
    )
    attained = r["ours"] * FLOP_PER_IMAGE
    print(
        f"FLOPs per image {FLOP_PER_IMAGE / 1e6:.2f} M -> {attained / 1e9:.1f} GFLOP/s: "
        f"{attained / peak:.1%} of the bound (aim >= 45%), "
        f"{attained / at_shape:.0%} of the 64x1000x1000 rate"
    )

    profile = step_profile(data, steps=5 if args.quick else 30)
    for name, prof in profile.items():
        print(
            f"profile {name}: {prof['ms_per_step']:.2f} ms/step; top ops (self CPU ms/step): "
            + ", ".join(f"{t['op']} {t['ms_per_step']:.2f} ({t['share']:.0%})" for t in prof["top"])
        )

    results = dict(
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        cpus=os.cpu_count(),
        machine=platform.machine(),
        load_average_start=load_start,
        load_average_end=os.getloadavg()[0],
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
        quick=args.quick,
        repeats=args.repeats,
        matmul_gflops=dict(bound=peak / 1e9, at_64x1000x1000=at_shape / 1e9),
        flop_per_image=FLOP_PER_IMAGE,
        epochs=epochs,
        ratios=dict(
            ours_over_plain=r["ours"] / r["plain"],
            ours_over_example=r["ours"] / r["example"],
            epoch_ours_over_plain=e["ours"] / e["plain"],
            fraction_of_matmul_bound=attained / peak,
        ),
        profile=profile,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "train_speed.md").write_text(markdown(results))
    print(f"wrote {args.out / 'train_speed.json'}")


if __name__ == "__main__":
    main()
