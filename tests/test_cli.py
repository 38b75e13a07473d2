import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lowrank import cli, experiments
from lowrank.cli import format_history, main


def test_list_names_every_experiment(quick_cache, capsys, monkeypatch):
    monkeypatch.setattr(experiments, "QUICK_SEEDS", 2)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in experiments.EXPERIMENTS)
    line = {row.split()[0]: row for row in out.splitlines()}
    assert line["model0"].split()[1:5] == ["seeds", "0-1", "2", "not"]  # two seeds
    assert line["l2-1.0e-04"].split()[1:5] == ["seed", "1000", "1", "not"]  # the tuning seed
    assert cli._span([1000, 0, 1, 2, 5]) == "seeds 0-2, 5, 1000"


def test_unknown_name_is_an_error_naming_the_allowed_values(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["show", "model7"])
    assert exit_.value.code == 2
    assert "name must be one of model0, model6, model10" in capsys.readouterr().err


def test_show_refuses_to_train_silently(quick_cache, capsys):
    assert main(["show", "model0"]) == 1
    assert "python -m lowrank train model0" in capsys.readouterr().err


def test_train_then_show(quick_cache, capsys, monkeypatch):
    monkeypatch.setattr(experiments, "QUICK_SUBSET", 300)
    monkeypatch.setattr(experiments, "QUICK_SEEDS", 2)
    assert main(["train", "model0"]) == 0
    out = capsys.readouterr().out
    assert "model0 seed 0: val acc" in out and "model0 seed 1: val acc" in out
    assert main(["show", "model0", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model0 seed 1: baseline") and "val acc" in out and "erank" in out
    assert main(["list"]) == 0
    assert "seeds 0-1        2 cached" in capsys.readouterr().out


def test_history_table_has_one_row_per_epoch():
    record = dict(
        epoch=1,
        lr=1e-3,
        train_loss=0.5,
        val_loss=0.3,
        val_acc=0.95,
        test_loss=0.4,
        test_acc=0.9,
        erank=700.0,
        srank=20.0,
        seconds=12.0,
    )
    table = format_history([record, {**record, "epoch": 2}]).splitlines()
    assert len(table) == 3 and "90.00%" in table[1] and "95.00%" in table[1]


def one_error_line(capsys):
    err = [
        line for line in capsys.readouterr().err.splitlines() if not line.startswith("quick mode")
    ]
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    return err[0]


def test_missing_mnist_is_one_line_naming_the_fix(quick_cache, tmp_path, monkeypatch, capsys):
    from lowrank import data

    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(
        data, "_download", lambda root: (_ for _ in ()).throw(OSError("network unreachable"))
    )
    assert main(["train", "model0"]) == 1
    line = one_error_line(capsys)
    assert line.startswith("error: model0 seed 0: MNIST files missing") and "MNIST_DATA_DIR" in line


def test_unwritable_cache_is_one_line_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOWRANK_QUICK", "1")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("LOWRANK_CACHE", str(tmp_path / "file" / "cache"))
    monkeypatch.setattr(experiments, "train", lambda *a, **k: pytest.fail("trained"))
    assert main(["train", "model0"]) == 1
    assert "cannot write to the cache folder" in one_error_line(capsys)


def test_bad_quick_mode_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("LOWRANK_QUICK", "2")
    assert main(["list"]) == 1
    assert "LOWRANK_QUICK must be one of" in one_error_line(capsys)


def test_one_model_needs_no_pool_and_jobs_are_clamped(quick_cache, monkeypatch, capsys):
    from lowrank import cli

    monkeypatch.setattr(experiments, "QUICK_SUBSET", 300)
    monkeypatch.setattr(experiments, "QUICK_SEEDS", 1)
    monkeypatch.setattr(cli, "_train_in_pool", lambda *a: pytest.fail("a pool for one model"))
    assert main(["train", "model0", "--jobs", "8"]) == 0
    assert capsys.readouterr().out.startswith("model0 seed 0: val acc")


def test_unreadable_entry_is_listed_as_such_and_kept(quick_cache, monkeypatch, capsys):
    monkeypatch.setattr(experiments, "QUICK_SUBSET", 300)
    monkeypatch.setattr(experiments, "QUICK_SEEDS", 1)
    assert main(["train", "model0"]) == 0
    path = experiments.cache_path("model0")
    real = type(path).read_bytes
    monkeypatch.setattr(
        type(path),
        "read_bytes",
        lambda self: (
            (_ for _ in ()).throw(PermissionError(13, "Permission denied", str(self)))
            if self == path
            else real(self)
        ),
    )
    capsys.readouterr()
    assert main(["show", "model0"]) == 1
    assert f"cannot read cache entry {path}" in one_error_line(capsys)
    assert main(["list"]) == 0
    assert "seed 0           1 unreadable" in capsys.readouterr().out.splitlines()[0]
    assert path.exists()


def children(pid):
    """Live (non-zombie) child processes of pid, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def sweep(tmp_path):
    """`python -m lowrank train model0 dropout0 --jobs 2` in quick mode, once its two workers
    run."""
    env = {**os.environ, "LOWRANK_QUICK": "1", "LOWRANK_CACHE": str(tmp_path / "cache")}
    parent = subprocess.Popen(
        [sys.executable, "-m", "lowrank", "train", "model0", "dropout0", "--jobs", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A process started with SIGINT ignored keeps ignoring it (Python installs its handler
        # only over the default), as `cmd &` in a script and pytest-xdist's workers start us:
        # the sweep gets the disposition a terminal gives it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert wait_for(lambda: len(children(parent.pid)) == 2, 60)
    workers = children(parent.pid)
    yield parent, workers
    parent.kill()
    for pid in workers:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_die_with_their_parent(sweep):  # kill -9: the parent cannot stop them
    parent, workers = sweep
    parent.kill()
    parent.wait(30)
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 5)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_every_job_in_one_line(sweep, sig):
    parent, workers = sweep
    parent.send_signal(sig)  # kill -INT to the parent alone, not the group
    _, err = parent.communicate(timeout=30)
    assert parent.returncode == 128 + sig
    assert not any(alive(pid) for pid in workers)
    assert "Traceback" not in err and "interrupted: every finished epoch is kept" in err


def test_corrupt_entry_is_reported_in_one_line_by_show_and_list_and_kept(
    quick_cache, monkeypatch, capsys
):
    monkeypatch.setattr(experiments, "QUICK_SUBSET", 300)
    monkeypatch.setattr(experiments, "QUICK_SEEDS", 1)
    assert main(["train", "model0"]) == 0
    path = experiments.cache_path("model0")
    path.write_bytes(b"not a torch file")
    capsys.readouterr()
    assert main(["show", "model0"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith(f"warning: cache entry {path} is corrupt or stale") for line in err)
    assert "python -m lowrank train model0" in err[-1]
    assert main(["list"]) == 0
    captured = capsys.readouterr()
    assert "1 not trained" in captured.out.splitlines()[0] and f"{path} is corrupt" in captured.err
    assert path.read_bytes() == b"not a torch file"  # reported, kept until rebuilt
    assert main(["train", "model0"]) == 0 and experiments.is_cached("model0")


def test_second_train_of_the_same_model_waits_then_loads(quick_cache, monkeypatch):
    """The issue's two `train model0` at once: the second process waits for the lock and loads."""
    import threading

    training, finish, results = threading.Event(), threading.Event(), {}
    real_train = experiments.train

    def held_train(*args, **kw):
        training.set()
        assert finish.wait(120)
        return real_train(*args, **kw)

    monkeypatch.setattr(experiments, "train", held_train)
    first = threading.Thread(
        target=lambda: results.update(first=experiments.load_or_train("model0"))
    )
    first.start()
    assert training.wait(60)  # this process holds model0's lock and is "training"
    second = subprocess.Popen(
        [sys.executable, "-m", "lowrank", "train", "model0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert not wait_for(lambda: second.poll() is not None, 5)  # it waits
    finally:
        finish.set()
        first.join(120)
    path = experiments.cache_path("model0")
    written = path.stat().st_mtime_ns
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0 and "waiting for another process that trains model0-s0" in err
    assert out.startswith("model0 seed 0: val acc")
    assert path.stat().st_mtime_ns == written  # it loaded the first one's entry, did not retrain


SLOW_START = """
import sys


class CtrlCDuringImport:  # Ctrl-C arriving while torch imports, at the same place every time
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            import os
            import signal

            os.kill(os.getpid(), signal.SIGINT)
        return None


sys.meta_path.insert(0, CtrlCDuringImport())
"""


def test_ctrl_c_while_starting_is_one_line(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(SLOW_START)
    path = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    done = subprocess.run(
        [sys.executable, "-m", "lowrank", "list"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 128 + signal.SIGINT
    assert done.stderr == "interrupted while starting: nothing was done\n"


def test_show_of_a_seed_train_does_not_train_advises_a_command_that_trains_it(
    quick_cache, monkeypatch, capsys
):
    monkeypatch.setattr(experiments, "QUICK_SUBSET", 300)
    monkeypatch.setattr(experiments, "QUICK_SEEDS", 1)
    assert main(["show", "model0", "--seed", "7"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    code = "from lowrank import load_or_train; load_or_train('model0', seed=7)"
    assert err == (
        "model0 seed 7 is not trained yet: train trains its seed 0 only; "
        f'for seed 7 run python -c "{code}"'
    )
    exec(code)  # as printed (in this process, to keep the tiny subset)
    assert main(["show", "model0", "--seed", "7"]) == 0


@pytest.mark.parametrize("argv", [["--force", "no"], ["--force=no"], ["--jobs"]])
def test_train_flags_take_no_values_they_would_ignore(quick_cache, monkeypatch, argv, capsys):
    monkeypatch.setattr(experiments, "train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(SystemExit) as exit_:
        main(["train", "model0", *argv])
    assert exit_.value.code == 2 and "error:" in capsys.readouterr().err


def test_a_complete_read_only_cache_is_read_without_write_access(quick_cache, monkeypatch, capsys):
    from lowrank import cli
    from lowrank.cache import CacheError

    monkeypatch.setattr(experiments, "QUICK_SUBSET", 300)
    assert main(["train", "model0"]) == 0
    capsys.readouterr()

    def read_only(*args):  # what a read-only folder gives (root would write anyway)
        raise CacheError(f"cannot write to the cache folder {quick_cache}")

    monkeypatch.setattr(cli, "check_writable", read_only)
    monkeypatch.setattr(experiments, "check_writable", read_only)
    monkeypatch.setattr(experiments, "entry_lock", read_only)
    assert main(["train", "model0"]) == 0  # nothing to train: nothing to write
    assert capsys.readouterr().out == ""
    assert main(["show", "model0"]) == 0
    assert main(["train", "model0", "--force"]) == 1  # training still needs the folder
    assert "cannot write to the cache folder" in capsys.readouterr().err


def test_a_killed_worker_is_named_with_what_is_kept_and_how_to_resume(monkeypatch):
    from lowrank import cli

    def killed(job, force):  # runs in the forked worker: kill -9 of model0 seed 1
        if job == ("model0", 1):
            os.kill(os.getpid(), signal.SIGKILL)
        return f"{job[0]} seed {job[1]}: trained"

    monkeypatch.setattr(cli, "_train_one", killed)
    with pytest.raises(cli.TrainFailed) as failed:
        cli._train_in_pool(lambda: [("model0", 1)], False, 2, lambda job, line: None)
    assert str(failed.value) == (
        "model0 seed 1: its worker was killed by SIGKILL; the epochs it finished are kept in "
        "the cache, and so are the models the other workers finished: run the same command to "
        "resume"
    )


def test_clean_and_train_remove_the_leftovers_of_killed_processes(quick_cache, monkeypatch, capsys):
    from lowrank import cli

    done = subprocess.Popen(["true"])
    done.wait()  # its id is free now: a killed process
    quick_cache.mkdir(parents=True)
    leftover = quick_cache / f".model0-s0-quick-k.pt.{done.pid}.tmp"
    leftover.write_bytes(b"x" * 2_000_000)
    assert main(["clean"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"removed {leftover} (2.0 MB)",
        f"removed 1 leftovers of killed processes (2.0 MB) from {quick_cache}",
    ]
    assert not leftover.exists()
    leftover.write_bytes(b"x" * 2_000_000)
    monkeypatch.setattr(cli, "train_all", lambda *args: None)  # the next run removes them too
    assert main(["train", "model0"]) == 0
    assert not leftover.exists()
    assert f"removed 1 leftovers of killed processes (2.0 MB) from {quick_cache}" in (
        capsys.readouterr().err
    )
