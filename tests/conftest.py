"""Shared fixtures: the MNIST root, and a quick-mode, throw-away model cache."""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_configure(config):
    # Offline machines keep a read-only copy of MNIST beside the repository.
    if not os.environ.get("MNIST_DATA_DIR") and (SHARED_DATA / "MNIST" / "raw").is_dir():
        os.environ["MNIST_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def mnist():
    from lowrank import load_mnist

    return load_mnist()


@pytest.fixture
def quick_cache(tmp_path, monkeypatch):
    """Quick mode with an empty cache folder of its own."""
    monkeypatch.setenv("LOWRANK_QUICK", "1")
    monkeypatch.setenv("LOWRANK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
