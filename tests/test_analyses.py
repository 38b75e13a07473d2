"""Analyses cached beside the models (lowrank.analyses): computed once, keyed, never trusted
when damaged."""

import numpy as np
import pytest
import torch

from lowrank import analyses


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRANK_CACHE", str(tmp_path))
    monkeypatch.setenv("LOWRANK_QUICK", "1")
    return tmp_path


def counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


def test_an_analysis_is_computed_once_then_loaded(cache):
    compute, calls = counting({"acc": [0.9, 0.8], "t": torch.arange(3), "a": np.ones(2)})
    first = analyses.cached(("model0", 0), "sweep", compute, ranks=30)
    again = analyses.cached(("model0", 0), "sweep", compute, ranks=30)
    assert calls == [1]
    assert first["acc"] == again["acc"] == [0.9, 0.8]
    assert torch.equal(again["t"], torch.arange(3)) and torch.equal(
        again["a"], torch.ones(2).double()
    )


def test_other_models_labels_or_params_are_other_entries(cache):
    compute, calls = counting(1.0)
    analyses.cached(("model0", 0), "sweep", compute, ranks=30)
    analyses.cached(("model0", 1), "sweep", compute, ranks=30)
    analyses.cached(("model0", 0), "other", compute, ranks=30)
    analyses.cached(("model0", 0), "sweep", compute, ranks=31)
    analyses.cached([("model0", 0), ("model0", 1)], "sweep", compute, ranks=30)
    assert len(calls) == 5


def test_the_key_follows_the_models_cache_key_and_the_code(cache, monkeypatch):
    key = analyses.analysis_key([("model0", 0)], "sweep", {})
    monkeypatch.setattr(analyses, "_CODE", "other code")
    assert analyses.analysis_key([("model0", 0)], "sweep", {}) != key
    monkeypatch.setattr(analyses, "_CODE", analyses._package_hash())
    assert analyses.analysis_key([("model0", 0)], "sweep", {}) == key
    monkeypatch.setenv("LOWRANK_QUICK", "0")  # another config, another model key
    assert analyses.analysis_key([("model0", 0)], "sweep", {}) != key


@pytest.mark.parametrize("damage", ["garbage", "flip", "truncate"])
def test_a_damaged_entry_is_recomputed_and_replaced(cache, damage):
    compute, calls = counting([1.0, 2.0])
    analyses.cached(("model0", 0), "sweep", compute)
    (path,) = (cache / "analyses").glob("sweep-*.pt")
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a torch file")
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # a changed value with the old digest
        entry = torch.load(path, weights_only=True)
        entry["value"] = [1.0, 3.0]
        torch.save(entry, path)
    with pytest.warns(UserWarning, match="corrupt or stale"):
        assert analyses.cached(("model0", 0), "sweep", compute) == [1.0, 2.0]
    assert len(calls) == 2
    assert analyses.cached(("model0", 0), "sweep", compute) == [1.0, 2.0] and len(calls) == 2


def test_editing_a_verdicts_wording_recomputes_nothing(monkeypatch, tmp_path):
    package = tmp_path / "lowrank"
    package.mkdir()
    for name in ("stats.py", "verdicts.py"):
        (package / name).write_text(f"X = 1  # {name}\n")
    monkeypatch.setattr(analyses, "PACKAGE", package)
    before = analyses._package_hash()
    (package / "verdicts.py").write_text("X = 2\n")
    assert analyses._package_hash() == before
    (package / "stats.py").write_text("X = 2\n")
    assert analyses._package_hash() != before


def test_a_function_the_page_defines_is_keyed_by_its_source(cache):
    calls = []

    def sweep():
        calls.append("first")
        return 1

    def edited_sweep():
        calls.append("edited")
        return 2

    for f in (sweep, edited_sweep):
        f.__module__ = "__main__"  # as a notebook cell defines it
    assert analyses.page_source(sweep).lstrip().startswith("def sweep():")
    assert analyses.cached(("model0", 0), "page", sweep) == 1
    assert analyses.cached(("model0", 0), "page", sweep) == 1
    assert analyses.cached(("model0", 0), "page", edited_sweep) == 2  # other text: recomputed
    assert calls == ["first", "edited"]
    assert analyses.page_source(np.ones) is None  # the package's code is keyed as a whole
