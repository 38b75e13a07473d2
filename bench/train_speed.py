"""Training throughput: our loop vs the PyTorch MNIST example's loop, and vs the machine's matmul limit.

    make bench-train            # or: .venv/bin/python bench/train_speed.py [--repeats 3]

Prints samples/s for one epoch of model0's config (batch 64, Adam) with
  (a) lowrank.train: normalised tensors materialised once, batches sliced from them;
  (b) the loop of github.com/pytorch/examples/tree/main/mnist: a DataLoader over
      torchvision's MNIST with a per-sample ToTensor + Normalize transform;
and the fraction of the machine's float32 matmul FLOP/s that (a) attains.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from lowrank import MnistFCNet, TrainConfig, load_mnist
from lowrank.data import data_root
from lowrank.train import _train_epoch

# multiply-adds x 2 per image: forward through the three layers, weight gradients of all three,
# input gradients of layers 2 and 3 (layer 1's input gradient is never needed).
LAYERS = [(784, 1000), (1000, 1000), (1000, 10)]
FLOP_PER_IMAGE = 2 * (2 * sum(m * n for m, n in LAYERS) + sum(m * n for m, n in LAYERS[1:]))


def matmul_flops(m: int, k: int, n: int, repeats: int = 20) -> float:
    """Median float32 FLOP/s of an (m x k) @ (k x n) product."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(times)


def our_loop_epoch(data) -> float:
    """Seconds of one training epoch of lowrank.train's loop (model0's config), without evaluation."""
    config = TrainConfig(epochs=1)
    torch.manual_seed(0)
    model = MnistFCNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    shuffle = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    _train_epoch(model, optimizer, data.train_x, data.train_y, config, shuffle, False, 1)
    return time.perf_counter() - start


def example_loop_epoch(max_batches: int | None) -> tuple[float, int]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per loop (median reported)")
    parser.add_argument("--example-batches", type=int, default=None, help="cap the example loop's batches")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = matmul_flops(2048, 2048, 2048)
    at_shape = matmul_flops(64, 1000, 1000, repeats=200)
    print(f"float32 matmul: {peak / 1e9:.1f} GFLOP/s at 2048^3 (the limit), {at_shape / 1e9:.1f} GFLOP/s at 64x1000x1000")

    data = load_mnist()
    ours, example = [], []
    for _ in range(args.repeats):  # interleaved, so that machine noise hits both alike
        ours.append(len(data.train_x) / our_loop_epoch(data))
        seconds, seen = example_loop_epoch(args.example_batches)
        example.append(seen / seconds)
    ours_rate, example_rate = statistics.median(ours), statistics.median(example)
    attained = ours_rate * FLOP_PER_IMAGE
    print(f"lowrank.train:         {ours_rate:8.0f} images/s (median of {args.repeats} epochs)")
    print(f"PyTorch example loop:  {example_rate:8.0f} images/s")
    print(f"speed-up:              {ours_rate / example_rate:8.2f}x   (target >= 3x)")
    print(f"FLOPs per image:       {FLOP_PER_IMAGE / 1e6:8.2f} M  -> {attained / 1e9:.1f} GFLOP/s attained")
    print(f"fraction of the limit: {attained / peak:8.1%}   (target >= 60%; {attained / at_shape:.0%} of the 64x1000x1000 rate)")


if __name__ == "__main__":
    main()
