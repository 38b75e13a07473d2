"""MNIST as three splits of tensors, normalised once, ready for a loop without per-sample
transforms.

    data = load_mnist()          # root: argument, else $MNIST_DATA_DIR, else <repo>/data
    data.train_x.shape           # (50000, 784), float32, (x - mean) / std
    data.val_x.shape             # (10000, 784): the last 10,000 training images, held out
    data.test_x.shape            # (10000, 784): MNIST's test set, only ever used to report

Every choice the post makes by looking at accuracy (a needed rank, a penalty strength) is made
on the validation split; the test set reports.
"""

import functools
import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from lowrank.checks import check_int

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
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: float  # pixel mean of the training split, in [0, 1] units
    std: float  # pixel standard deviation of the training split

    def subset(self, n: int) -> "Mnist":
        """The first n training images (validation and test are kept whole)."""
        return replace(self, train_x=self.train_x[:n], train_y=self.train_y[:n])

    def classes(self, C: int) -> "Mnist":
        """Only the digits 0 … C−1, in every split (labels unchanged: they are already 0 … C−1)."""
        check_int(C, "C", 2, 10)
        return self if C == 10 else self.digits(tuple(range(C)))

    def digits(self, ds: tuple[int, ...]) -> "Mnist":
        """Only the digits ds, in every split, relabelled 0 … len(ds)−1 in the order of ds."""
        if not (
            isinstance(ds, tuple)
            and 2 <= len(ds) == len(set(ds))
            and all(type(d) is int and 0 <= d <= 9 for d in ds)
        ):
            raise ValueError(f"ds must be a tuple of 2 to 10 distinct digits 0-9, got {ds!r}")
        if ds == tuple(range(10)):
            return self
        label = torch.full((10,), -1, dtype=torch.long)
        label[list(ds)] = torch.arange(len(ds))
        keep = {}
        for split in ("train", "val", "test"):
            y = label[getattr(self, f"{split}_y")]
            mask = y >= 0
            keep |= {f"{split}_x": getattr(self, f"{split}_x")[mask], f"{split}_y": y[mask]}
        return replace(self, **keep)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds MNIST/raw/: the argument, else $MNIST_DATA_DIR, else <repo>/data.

    An empty argument or variable is not given; a relative one is relative to the repository
    root, not to the working directory (the post's kernel runs in post/): the same text means
    the same folder wherever it comes from and wherever the process runs.
    """
    if root is None or os.fspath(root) == "":
        root = os.environ.get("MNIST_DATA_DIR") or "data"
    return REPO_ROOT / root


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
        return [
            name
            for name, md5 in RAW_FILES.items()
            if not (raw / name).is_file() or _md5(raw / name) != md5
        ]
    except OSError as e:  # a file or folder we may not read: say so, do not download over it
        raise MnistUnavailable(
            f"cannot read MNIST in {raw}: {e.strerror or e} ({e.filename}); "
            f"fix the permissions or set MNIST_DATA_DIR to a readable copy"
        ) from None


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
    fix = (
        f"Expected the four uncompressed files {', '.join(RAW_FILES)} with their published md5; "
        f"offline, copy them into {raw} or set MNIST_DATA_DIR to a folder holding MNIST/raw/."
    )
    for folder in (root, root / "MNIST", raw):
        if folder.exists() and not folder.is_dir():
            raise MnistUnavailable(
                f"{folder} is a file, not a folder: MNIST is read from {raw} (check "
                f"MNIST_DATA_DIR); nothing was created or downloaded. {fix}"
            )
    corrupt = [name for name in bad if (raw / name).exists()]
    if corrupt:  # torchvision would keep them and report a download that never happened
        raise MnistUnavailable(
            f"MNIST files corrupt (md5 mismatch) in {raw}: {', '.join(corrupt)}; "
            f"no download was tried. Delete them to download again. {fix}"
        )
    if root != REPO_ROOT / "data" and not root.is_dir():
        raise MnistUnavailable(
            f"MNIST folder {root} does not exist (check MNIST_DATA_DIR); "
            f"nothing was created or downloaded. {fix}"
        )
    error, created = None, [f for f in (root, root / "MNIST", raw) if not f.exists()]
    try:
        _download(root)
    except Exception as e:  # no network, read-only folder, ...
        error = e
    bad = bad_raw_files(root)
    if bad:
        for folder in reversed(created):  # a failed download leaves no empty folders behind
            try:
                folder.rmdir()  # only when empty: whatever it did fetch is kept
            except OSError:
                break
        reason = f" (download failed: {type(error).__name__}: {error})" if error else ""
        raise MnistUnavailable(f"MNIST files missing in {raw}: {', '.join(bad)}{reason}. {fix}")


def _read_idx(path: Path) -> torch.Tensor:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    return read_image_file(str(path)) if "images" in path.name else read_label_file(str(path))


VAL_SIZE = 10_000  # the last 10,000 of MNIST's 60,000 training images


def load_mnist(root: str | os.PathLike | None = None) -> Mnist:
    """Load MNIST, hold out the last 10,000 training images for validation, flatten to 784, and
    normalise every split with the training split's own mean and std.

    The statistics are computed rather than copied (the draft's sigma = 0.3881 was a typo for
    0.3081), and from the 50,000 training images only, so that nothing of the held-out images
    leaks into the model. Loaded once per process and root (decoding takes ~2 s); the tensors
    are shared, so do not modify them in place.
    """
    root = data_root(root)
    ensure_raw_files(root)
    return _load(root.resolve())


@functools.lru_cache(maxsize=2)
def _load(root: Path) -> Mnist:
    raw = root / "MNIST" / "raw"
    images = _read_idx(raw / "train-images-idx3-ubyte").reshape(-1, 784).float() / 255
    labels = _read_idx(raw / "train-labels-idx1-ubyte").long()
    test_x = _read_idx(raw / "t10k-images-idx3-ubyte").reshape(-1, 784).float() / 255
    train_x, val_x = images[:-VAL_SIZE], images[-VAL_SIZE:]
    mean, std = train_x.double().mean().item(), train_x.double().std().item()
    return Mnist(
        train_x=(train_x - mean) / std,
        train_y=labels[:-VAL_SIZE],
        val_x=(val_x - mean) / std,
        val_y=labels[-VAL_SIZE:],
        test_x=(test_x - mean) / std,
        test_y=_read_idx(raw / "t10k-labels-idx1-ubyte").long(),
        mean=mean,
        std=std,
    )
