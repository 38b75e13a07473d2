"""Every `run:` step of the publish workflow that can run offline, run in a scratch copy of the
project (tests/workflow.py), in quick mode where it trains.

    .venv/bin/pytest tests/test_workflow_steps.py

Not run here, each for its reason (RUN_ELSEWHERE): the test suite itself, installs from PyPI,
full-mode training and the full-mode render (tests/test_render.py renders in quick mode, with
the Pages profile this file's steps write).
"""

import os
import sys

import pytest
import yaml
from conftest import copy_project
from workflow import all_steps, find_step, pages_profile, run_step

from lowrank import experiments, shards

RUN_ELSEWHERE = {
    "make test EXTRAS=dev,actionlint": "the test suite itself",
    "make setup": "installs the package and its dependencies from PyPI",
    "make train JOBS=4": "full-mode training of stage 2 (its command: tests/test_cli.py)",
    "make render": "the full-mode render (tests/test_render.py renders in quick mode)",
}
RUN_HERE = {  # (job, step name) of every step the tests below run
    ("train", "Merge"),
    ("train", "Train share ${{ matrix.shard }} of 4"),
    ("train", "Collect this share's models"),
    ("render", "Merge"),
    ("render", "Check that every share's models are here"),
    ("render", "Collect new models"),
    ("render", "Site and repository addresses"),
}


def test_every_run_step_is_run_here_or_says_why_not():
    scripts = [(job, s) for job, s in all_steps() if "run" in s]
    unaccounted = [
        (job, s.get("name"))
        for job, s in scripts
        if (job, s.get("name")) not in RUN_HERE and s["run"].strip() not in RUN_ELSEWHERE
    ]
    assert not unaccounted, f"run: steps neither run by a test nor in RUN_ELSEWHERE: {unaccounted}"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch copy of the project in quick mode, its .venv this Python's, its code its own."""
    copy = copy_project(tmp_path / "project")
    python = copy / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env = {
        "LOWRANK_QUICK": "1",
        "PYTHONPATH": str(copy / "code"),  # before the venv's editable install
        "LOWRANK_CACHE": "",  # the copy's own .cache/lowrank
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return copy, env


def pt(folder):
    return sorted(p.name for p in folder.glob("*.pt")) if folder.is_dir() else []


def test_a_share_trains_its_models_and_collects_them_to_save(project, monkeypatch):
    copy, env = project
    # training, even in quick mode, takes minutes: python gets --dry-run added, and what it
    # prints is then written as if trained
    (copy / ".venv" / "bin" / "python").write_text(
        f'#!/bin/sh\nexec {sys.executable} "$@" --dry-run\n'
    )
    monkeypatch.setattr(experiments, "cache_dir", lambda: copy / ".cache" / "lowrank")
    old = copy / ".cache" / "lowrank"
    old.mkdir(parents=True)
    (old / "shared-before.pt").write_bytes(b"")
    os.utime(old / "shared-before.pt", (0, 0))  # restored: an old file
    carried = copy / ".cache" / "new"
    carried.mkdir()
    (carried / "last-run.pt").write_bytes(b"")  # this share's save from its last run
    (carried / "shared-before.pt").write_bytes(b"older")  # the shared set's copy is kept

    for name in ("Merge", "Train share ${{ matrix.shard }} of 4"):
        code, out, outputs = run_step(find_step(name, "train"), copy, env)
        assert code == 0, f"{name}: {out}"
    share = shards.shard(shards.stage1(), 2, 4)  # VALUES: matrix.shard is 2
    printed = [line for line in out.splitlines() if " seed " in line]
    assert sorted(printed) == sorted(f"{n} seed {s}" for n, s in share)
    for job in share:  # "trained"
        experiments.cache_path(*job).write_bytes(b"")
    code, out, outputs = run_step(find_step("Collect this share's models", "train"), copy, env)
    assert code == 0, out
    expected = {experiments.cache_path(*job).name for job in share}
    assert set(pt(copy / ".cache" / "new")) == expected | {"last-run.pt"}
    assert (old / "shared-before.pt").read_bytes() == b""
    assert outputs == {"any": "true"}


def test_collect_after_a_failed_install_saves_nothing(project):
    copy, env = project
    code, out, outputs = run_step(find_step("Collect this share's models", "train"), copy, env)
    assert code == 0, out
    assert outputs == {} and pt(copy / ".cache" / "new") == []


def test_render_merges_the_shares_and_stops_on_a_missing_model(project):
    copy, env = project
    new = copy / ".cache" / "new"
    new.mkdir(parents=True)
    (new / "from-a-share.pt").write_bytes(b"")
    code, out, _ = run_step(find_step("Merge", "render"), copy, env)
    assert code == 0, out
    assert pt(copy / ".cache" / "lowrank") == ["from-a-share.pt"] and not new.exists()
    code, out, outputs = run_step(find_step("Collect new models", "render"), copy, env)
    assert code == 0 and outputs == {"any": "true"}, out

    # nothing of stage 1 is trained in this copy: the check names what is missing and fails
    code, out, _ = run_step(find_step("Check that every share's models are here"), copy, env)
    assert code == 1, out
    assert "::error::models missing after the train jobs:" in out and "model0 seed 0" in out


def test_pages_profile_is_written_and_valid(tmp_path):
    profile = yaml.safe_load(pages_profile(tmp_path).read_text())
    assert profile == {
        "website": {
            "site-url": "https://example.github.io/lowrank/",  # owner in lower case
            "repo-url": "https://github.com/Example/lowrank",
        }
    }


def test_the_artifact_path_is_what_the_render_writes(rendered_site):
    """The upload steps' path, in the project that tests/test_render.py rendered."""
    for action in ("actions/upload-pages-artifact", "actions/upload-artifact"):
        (step,) = [s for _, s in all_steps() if s.get("uses", "").startswith(action + "@")]
        site = rendered_site.parent / step["with"]["path"]
        assert (site / "index.html").is_file() and (site / "post" / "index.html").is_file()
