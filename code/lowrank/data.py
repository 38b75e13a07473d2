"""MNIST as four tensors, normalised once, ready for a training loop without per-sample transforms.

    data = load_mnist()          # root: argument, else $MNIST_DATA_DIR, else <repo>/data
    data.train_x.shape           # (60000, 784), float32, (x - mean) / std
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]

# md5 of the four original uncompressed files, as published with torchvision.
RAW_FILES = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


class MnistUnavailable(RuntimeError):
    """MNIST files are missing or corrupt and could not be downloaded."""


@dataclass
class Mnist:
    """Flattened, normalised MNIST: x is (N, 784) float32, y is (N,) int64."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: float  # pixel mean of the training set, in [0, 1] units
    std: float  # pixel standard deviation of the training set

    def subset(self, n: int) -> "Mnist":
        """The first n training images (the test set is kept whole)."""
        return Mnist(self.train_x[:n], self.train_y[:n], self.test_x, self.test_y, self.mean, self.std)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds MNIST/raw/: the argument, else $MNIST_DATA_DIR, else <repo>/data."""
    if root is None:
        root = os.environ.get("MNIST_DATA_DIR") or REPO_ROOT / "data"
    return Path(root)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bad_raw_files(root: Path) -> list[str]:
    """Names of the raw files under root/MNIST/raw that are missing or fail their md5."""
    raw = root / "MNIST" / "raw"
    try:
        return [name for name, md5 in RAW_FILES.items() if not (raw / name).is_file() or _md5(raw / name) != md5]
    except OSError as e:  # a file or folder we may not read: say so, do not download over it
        raise MnistUnavailable(f"cannot read MNIST in {raw}: {e.strerror or e} ({e.filename}); "
                               f"fix the permissions or set MNIST_DATA_DIR to a readable copy") from None


def _download(root: Path) -> None:
    from torchvision.datasets import MNIST

    for train in (True, False):
        MNIST(root, train=train, download=True)


def ensure_raw_files(root: Path) -> None:
    """Check the four raw files; download the missing ones, never over an existing file.

    Only the default root (<repo>/data) is created; a root given by argument or
    MNIST_DATA_DIR must exist (a typo must not get a directory tree of its own).
    """
    bad = bad_raw_files(root)
    if not bad:
        return  # never write into a root that already holds valid files (it may be read-only)
    raw = root / "MNIST" / "raw"
    fix = (f"Expected the four uncompressed files {', '.join(RAW_FILES)} with their published md5; "
           f"offline, copy them into {raw} or set MNIST_DATA_DIR to a folder holding MNIST/raw/.")
    corrupt = [name for name in bad if (raw / name).exists()]
    if corrupt:  # torchvision would keep them and report a download that never happened
        raise MnistUnavailable(f"MNIST files corrupt (md5 mismatch) in {raw}: {', '.join(corrupt)}; "
                               f"no download was tried. Delete them to download again. {fix}")
    if root != REPO_ROOT / "data" and not root.is_dir():
        raise MnistUnavailable(f"MNIST folder {root} does not exist (check MNIST_DATA_DIR); "
                               f"nothing was created or downloaded. {fix}")
    error = None
    try:
        _download(root)
    except Exception as e:  # no network, read-only folder, ...
        error = e
    bad = bad_raw_files(root)
    if bad:
        reason = f" (download failed: {type(error).__name__}: {error})" if error else ""
        raise MnistUnavailable(f"MNIST files missing in {raw}: {', '.join(bad)}{reason}. {fix}")


def _read_idx(path: Path) -> torch.Tensor:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    return read_image_file(str(path)) if "images" in path.name else read_label_file(str(path))


def load_mnist(root: str | os.PathLike | None = None) -> Mnist:
    """Load MNIST, flatten to 784, and normalise with the training set's own mean and std.

    The statistics are computed rather than copied: the draft's sigma = 0.3881 was a typo for 0.3081.
    """
    root = data_root(root)
    ensure_raw_files(root)
    raw = root / "MNIST" / "raw"
    train_x = _read_idx(raw / "train-images-idx3-ubyte").reshape(-1, 784).float() / 255
    test_x = _read_idx(raw / "t10k-images-idx3-ubyte").reshape(-1, 784).float() / 255
    mean, std = train_x.double().mean().item(), train_x.double().std().item()
    return Mnist(
        train_x=(train_x - mean) / std,
        train_y=_read_idx(raw / "train-labels-idx1-ubyte").long(),
        test_x=(test_x - mean) / std,
        test_y=_read_idx(raw / "t10k-labels-idx1-ubyte").long(),
        mean=mean,
        std=std,
    )
