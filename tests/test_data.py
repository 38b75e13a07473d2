import os
from pathlib import Path

import pytest
import torch

from lowrank import data as data_module
from lowrank.data import RAW_FILES, MnistUnavailable, bad_raw_files, data_root, ensure_raw_files


@pytest.fixture
def no_network(monkeypatch):
    calls = []

    def fail(root):
        calls.append(root)
        raise OSError("network unreachable")

    monkeypatch.setattr(data_module, "_download", fail)
    return calls


def test_training_set_statistics_are_computed_not_copied(mnist):
    # from the 50,000 training images only (all 60,000 give the familiar 0.1307 / 0.3081;
    # the draft's 0.3881 was a typo)
    assert mnist.mean == pytest.approx(0.13096, abs=5e-5)
    assert mnist.std == pytest.approx(0.30849, abs=5e-5)
    assert abs(mnist.train_x.mean().item()) < 1e-3 and abs(mnist.train_x.std().item() - 1) < 1e-3
    assert sorted(mnist.train_y.unique().tolist()) == list(range(10))


def test_validation_is_the_last_10000_training_images_held_out(mnist):
    from torchvision.datasets.mnist import read_label_file

    raw = Path(os.environ["MNIST_DATA_DIR"]) / "MNIST" / "raw"
    labels = read_label_file(str(raw / "train-labels-idx1-ubyte"))
    assert mnist.train_x.shape == (50000, 784) and mnist.val_x.shape == (10000, 784)
    assert mnist.test_x.shape == (10000, 784)
    assert torch.equal(mnist.train_y, labels[:50000]) and torch.equal(mnist.val_y, labels[50000:])
    # no image is in both (MNIST has no exact duplicates across these two parts)
    train_rows = {row.numpy().tobytes() for row in mnist.train_x[:5000]}
    assert not any(row.numpy().tobytes() in train_rows for row in mnist.val_x)


@pytest.mark.parametrize("C", [2, 3, 5, 7, 10])
def test_class_subsets_keep_only_the_first_C_digits_in_every_split(mnist, C):
    sub = mnist.classes(C)
    for split in ("train", "val", "test"):
        y, full = getattr(sub, f"{split}_y"), getattr(mnist, f"{split}_y")
        assert sorted(y.unique().tolist()) == list(range(C))
        assert len(y) == (full < C).sum().item() == len(getattr(sub, f"{split}_x"))
    assert torch.equal(sub.train_x, mnist.train_x[mnist.train_y < C])


@pytest.mark.parametrize("C", [1, 11, 2.0, True])
def test_bad_class_count_is_one_line(mnist, C):
    with pytest.raises(ValueError, match=r"^C must be an integer in \[2, 10\], got "):
        mnist.classes(C)


def test_subset_keeps_validation_and_test_whole(mnist):
    sub = mnist.subset(100)
    assert len(sub.train_x) == 100 and len(sub.val_x) == 10000 and len(sub.test_x) == 10000


def test_root_comes_from_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("MNIST_DATA_DIR")
    assert data_root() == data_module.REPO_ROOT / "data"


def test_missing_files_give_one_clear_error(tmp_path, no_network):
    with pytest.raises(MnistUnavailable) as err:
        ensure_raw_files(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert all(name in message for name in RAW_FILES)
    assert "MNIST_DATA_DIR" in message and "network unreachable" in message
    assert no_network == [tmp_path]


def test_corrupt_file_is_detected_by_md5(
    mnist, tmp_path, no_network
):  # mnist: the real files exist
    source = data_module.data_root() / "MNIST" / "raw"
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_FILES:
        (raw / name).symlink_to(source / name)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte").write_bytes(
        (source / "t10k-labels-idx1-ubyte").read_bytes()[:-1] + b"\x00"
    )
    assert bad_raw_files(tmp_path) == ["t10k-labels-idx1-ubyte"]
    with pytest.raises(MnistUnavailable, match="t10k-labels-idx1-ubyte") as err:
        ensure_raw_files(tmp_path)
    assert "no download was tried" in str(err.value) and "download failed" not in str(err.value)
    assert no_network == []  # a truncated file is reported, not downloaded over


def test_valid_root_is_never_written_to(mnist, no_network):
    root = data_module.data_root()
    before = sorted(os.listdir(root / "MNIST" / "raw"))
    ensure_raw_files(root)  # would raise if it tried to download
    assert no_network == []
    assert sorted(os.listdir(root / "MNIST" / "raw")) == before


def test_mistyped_root_is_reported_and_never_created(tmp_path, no_network, monkeypatch):
    typo = tmp_path / "dtaa"
    monkeypatch.setenv("MNIST_DATA_DIR", str(typo))
    with pytest.raises(
        MnistUnavailable, match=rf"^MNIST folder {typo} does not exist \(check MNIST_DATA_DIR\)"
    ):
        data_module.load_mnist()
    assert not typo.exists() and no_network == []


def test_unreadable_file_is_reported_as_such(mnist, tmp_path, no_network, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_FILES:
        (raw / name).symlink_to(data_module.data_root() / "MNIST" / "raw" / name)

    def denied(path):  # chmod 000 as a user without override rights (root reads anyway)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(data_module, "_md5", denied)
    with pytest.raises(
        MnistUnavailable, match=rf"^cannot read MNIST in {raw}: Permission denied"
    ) as err:
        ensure_raw_files(tmp_path)
    assert "\n" not in str(err.value) and no_network == []


def test_relative_and_empty_roots_mean_one_folder_wherever_the_process_runs(monkeypatch, tmp_path):
    from lowrank.cache import cache_dir

    repo = data_module.REPO_ROOT
    monkeypatch.chdir(tmp_path)  # as Quarto runs the post's kernel in post/
    monkeypatch.setenv("MNIST_DATA_DIR", "shared/mnist")
    monkeypatch.setenv("LOWRANK_CACHE", ".cache/x")
    assert data_root() == repo / "shared" / "mnist" == data_root("shared/mnist")
    assert cache_dir() == repo / ".cache" / "x"
    monkeypatch.setenv("MNIST_DATA_DIR", "")
    monkeypatch.setenv("LOWRANK_CACHE", "")
    assert data_root() == data_root("") == repo / "data"  # empty: not given, in both
    assert cache_dir() == repo / ".cache" / "lowrank"
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "abs"))
    assert data_root() == tmp_path / "abs"


def test_a_failed_download_leaves_no_empty_folders(tmp_path, monkeypatch):
    def torchvision_offline(root):  # makes MNIST/raw, then finds no network
        (root / "MNIST" / "raw").mkdir(parents=True)
        raise OSError("network unreachable")

    monkeypatch.setattr(data_module, "_download", torchvision_offline)
    with pytest.raises(MnistUnavailable) as err:
        ensure_raw_files(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    assert str(err.value).startswith(
        f"MNIST files missing in {raw}: {', '.join(RAW_FILES)} "
        "(download failed: OSError: network unreachable). Expected the four uncompressed files"
    )
    assert list(tmp_path.iterdir()) == []  # was an empty MNIST/raw


@pytest.mark.parametrize("where", [".", "MNIST", "MNIST/raw"])
def test_a_file_where_a_data_folder_should_be_is_named(tmp_path, no_network, where):
    root = tmp_path / "root"
    folder = root / where  # pathlib drops the ".": the root itself
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("")
    with pytest.raises(MnistUnavailable) as err:
        ensure_raw_files(root)
    assert str(err.value).startswith(
        f"{folder} is a file, not a folder: MNIST is read from {root / 'MNIST' / 'raw'} "
        "(check MNIST_DATA_DIR); nothing was created or downloaded."
    )
    assert no_network == []


def test_a_digit_subset_keeps_those_digits_relabelled_in_order(mnist):
    sub = mnist.digits((7, 2, 9))
    for split in ("train", "val", "test"):
        y, full = getattr(sub, f"{split}_y"), getattr(mnist, f"{split}_y")
        kept = (full == 7) | (full == 2) | (full == 9)
        assert torch.equal(getattr(sub, f"{split}_x"), getattr(mnist, f"{split}_x")[kept])
        assert torch.equal(y, (full[kept] == 2).long() + 2 * (full[kept] == 9).long())
    assert mnist.digits(tuple(range(10))) is mnist


@pytest.mark.parametrize("ds", [(3,), (1, 1), (0, 10), [0, 1], (0, 1.0)])
def test_bad_digit_subset_is_one_line(mnist, ds):
    with pytest.raises(ValueError, match=r"^ds must be a tuple of 2 to 10 distinct digits 0-9"):
        mnist.digits(ds)
