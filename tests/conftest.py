"""Shared fixtures: the MNIST root, a quick-mode throw-away model cache, the quick models the
post uses (trained once per run) and the rendered site (rendered once per run, however many
pytest-xdist workers ask).

`rendered_site` runs the real `quarto render` once per run, in quick mode, on a copy of the
project; it skips where quarto is not installed unless LOWRANK_REQUIRE_RENDER=1 (.ci/run sets
it where it installed Quarto and Chromium), and then a missing tool is a failure.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
# files of a checkout that are not the project's: never copied into the render's copy
NOT_PROJECT = (
    ".git",
    ".venv",
    "_site",
    ".quarto",
    ".cache",
    "data",
    ".pytest_cache",
    "__pycache__",
)


STAND_IN_SHA = "0123456789abcdef0123456789abcdef01234567"  # the rendered commit, in the render

# lines for the end of the test report: render time, measured widths (test_render.py adds them)
MEASURED: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("rendered site, as measured")
        for line in MEASURED:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # an xdist worker: MEASURED goes to the main one
        session.config.workeroutput["measured"] = list(MEASURED)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    MEASURED.extend(getattr(node, "workeroutput", {}).get("measured", []))


def pytest_configure(config):
    # Offline machines keep a read-only copy of MNIST beside the repository.
    if not os.environ.get("MNIST_DATA_DIR") and (SHARED_DATA / "MNIST" / "raw").is_dir():
        os.environ["MNIST_DATA_DIR"] = str(SHARED_DATA)


def render_required() -> bool:
    """Whether a missing renderer or browser fails the tests instead of skipping them."""
    return os.environ.get("LOWRANK_REQUIRE_RENDER", "").strip() == "1"


def skip_or_fail(reason: str):
    """Skip with a one-line reason, or fail with it when LOWRANK_REQUIRE_RENDER=1."""
    if render_required():
        pytest.fail(f"{reason} (LOWRANK_REQUIRE_RENDER=1)", pytrace=False)
    pytest.skip(reason)


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


def project_files() -> list[Path]:
    """The project's files, relative to ROOT: tracked ones and untracked ones git does not
    ignore."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        names = [Path(n) for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but outputs
        names = [
            p.relative_to(ROOT)
            for p in ROOT.rglob("*")
            if p.is_file() and not set(p.relative_to(ROOT).parts) & set(NOT_PROJECT)
        ]
    return [n for n in names if (ROOT / n).is_file()]  # tracked but deleted files are gone


def copy_project(dest: Path) -> Path:
    for name in project_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return dest


def quarto_executable() -> str | None:
    """quarto on PATH, or the one `pip install quarto-cli` puts beside this interpreter."""
    return shutil.which("quarto") or shutil.which("quarto", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="session")
def rendered_site(tmp_path_factory, quick_models) -> Path:
    """The `_site` folder of a real `quarto render` of a copy of the project, in quick mode.

    Rendering a copy keeps the work tree clean (Quarto writes .quarto/, _site/, *.quarto_ipynb)
    and lets two sessions render at once. The copy imports its own code/ (PYTHONPATH) and
    shares the quick-mode model cache of the work tree (entries are keyed by config and
    code, so the copy's identical code finds them; quick and full entries never mix).
    Under pytest-xdist the first worker to ask renders and the others wait for it and read the
    same site (or the same failure): one render per run.
    """
    quarto = quarto_executable()
    if quarto is None:
        skip_or_fail("quarto is not on PATH; .ci/run installs it and then runs the render tests")
    done = once_per_run(
        tmp_path_factory, "rendered-site", lambda: render(quarto, tmp_path_factory, quick_models)
    )
    if done["failure"]:
        pytest.fail(done["failure"], pytrace=False)
    return Path(done["site"])


def once_per_run(tmp_path_factory, name: str, make) -> dict:
    """make() once per test run, however many pytest-xdist workers ask: the first runs it
    under a lock, the others wait for it and read what it returned (a JSON object)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        outcome = shared / f"{name}.json"
        if not outcome.exists():
            outcome.write_text(json.dumps(make()))
        return json.loads(outcome.read_text())


# the quick models the post's kernels and the render share (keyed by config and code, written
# atomically under a lock)
QUICK_CACHE = os.environ.get("LOWRANK_CACHE") or str(ROOT / ".cache" / "lowrank")


@pytest.fixture(scope="session")
def quick_models(tmp_path_factory) -> str:
    """Every quick-mode model, trained (`python -m lowrank train`) before the post runs, as
    `make render` trains before Quarto renders: two kernels running the post at once (the
    render and test_post.py's) would otherwise wait for each other's training and print so in
    the page. One job: a quick model trains in a second, less than a process of its own takes
    to start and load MNIST. Returns the cache folder."""

    def train():
        env = {**os.environ, "LOWRANK_QUICK": "1", "LOWRANK_CACHE": QUICK_CACHE}
        command = [sys.executable, "-m", "lowrank", "train", "--jobs", "1"]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            return {
                "failure": f"quick mode's `{' '.join(command[1:])}` failed (exit "
                f"{done.returncode}):\n{done.stderr[-3000:]}"
            }
        seconds = time.perf_counter() - start
        MEASURED.append(f"quick models trained or loaded: {seconds:.1f} s")
        return {"failure": None}

    done = once_per_run(tmp_path_factory, "quick-models", train)
    if done["failure"]:
        pytest.fail(done["failure"], pytrace=False)
    return QUICK_CACHE


def render(quarto: str, tmp_path_factory, cache: str) -> dict:
    """`quarto render` of a copy of the project in quick mode, with the quick models in `cache`:
    {"site": its _site, "failure": why it failed, or None}."""
    copy = copy_project(tmp_path_factory.mktemp("project"))
    # the profile publish.yml writes, by its own step, with stand-in addresses (tests/workflow.py):
    # feed, citation URL, source links
    from workflow import pages_profile

    pages_profile(copy)
    env = {
        **os.environ,
        "LOWRANK_QUICK": "1",
        "LOWRANK_CACHE": cache,
        "QUARTO_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join(
            [str(copy / "code"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "MNIST_DATA_DIR": os.environ.get("MNIST_DATA_DIR") or str(ROOT / "data"),
        "QUARTO_PROFILE": "pages",
        # what GitHub Actions tells the post about its repository (lowrank.page), with the
        # stand-ins of tests/workflow.py: source links and the Binder link
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "Example/lowrank",
        "GITHUB_SHA": STAND_IN_SHA,
    }
    start = time.perf_counter()
    done = subprocess.run(
        [quarto, "render"], cwd=copy, env=env, capture_output=True, text=True, timeout=1200
    )
    seconds = time.perf_counter() - start
    log = tmp_path_factory.getbasetemp() / "quarto-render.log"
    log.write_text(f"{done.stdout}\n{done.stderr}")
    if done.returncode != 0:
        return {
            "site": str(copy / "_site"),
            "failure": f"quarto render failed (exit {done.returncode}, full log {log}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
        }
    MEASURED.append(f"quarto render in quick mode: {seconds:.1f} s (log: {log})")
    return {"site": str(copy / "_site"), "failure": None}
