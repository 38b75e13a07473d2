"""Storage of trained models: one checksummed file per entry, written atomically, trained
by one process at a time.

    entry = load_entry(path, key, config)   # None when missing, corrupt or stale (with a warning)
    atomic_save(seal(entry), path)          # readers see the old entry or the new one

An entry is a dict with its SHA-256 (`seal`), verified on every load; a bad one is rebuilt and
replaced only once the new one is written; an unreadable one raises CacheError and is left
alone. `cache_key` hashes the config, the training code and the torch version.
"""

import ast
import fcntl
import hashlib
import io
import json
import math
import os
import re
import shutil
import sys
import warnings
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch

from lowrank.data import REPO_ROOT
from lowrank.train import TRAIN_THREADS, TrainConfig, default_device, network


class CacheError(RuntimeError):
    """A cache entry or folder that cannot be read or written: kept as it is, never deleted."""


def cache_dir() -> Path:
    """$LOWRANK_CACHE, else <repo>/.cache/lowrank. A relative LOWRANK_CACHE is relative to the
    repository root, not to the working directory: the CLI, make and the post's kernel (which
    Quarto runs in post/) then share one folder."""
    return REPO_ROOT / (os.environ.get("LOWRANK_CACHE") or Path(".cache", "lowrank"))


TRAINING_CODE = (
    "checks",
    "data",
    "mechanism",
    "model",
    "rank",
    "train",
)  # the modules whose source determines a trained model


def _read_sources() -> dict[str, str]:
    here = Path(__file__).parent  # from disk: lowrank.train is shadowed by the function
    return {name: (here / f"{name}.py").read_text() for name in TRAINING_CODE}


# Read once, as this process imports them: the modules it trains with. A file edited while a
# long `make train` runs must not relabel the models that the old code goes on training.
_IMPORTED_SOURCES = _read_sources()


def training_sources() -> dict[str, str]:
    """The source of TRAINING_CODE as this process imported it."""
    return dict(_IMPORTED_SOURCES)


def code_hash() -> str:
    """Hash of the code that determines a trained model: any change to it retrains.

    It hashes each module's syntax tree without its docstrings, so comments, docstrings and
    formatting do not count: rewording a docstring or reformatting retrains nothing.
    """
    return _syntax_hash(tuple(sorted(training_sources().items())))


@cache  # parsing takes ~70 ms, and a render asks for the key of every model many times
def _syntax_hash(sources: tuple[tuple[str, str], ...]) -> str:
    trees = {name: ast.dump(_without_docstrings(ast.parse(source))) for name, source in sources}
    return hashlib.sha256(json.dumps(trees, sort_keys=True).encode()).hexdigest()


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        scope = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        body = getattr(node, "body", None)
        if (
            isinstance(node, scope)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def machine() -> dict:
    """What besides the config and the code changes a trained model's floats: the device it
    trains on, the CPU's vector instructions (they choose the kernels) and the thread count."""
    device = default_device()
    kind = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "device": kind,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "threads": TRAIN_THREADS,
    }


def cache_key(config: TrainConfig, scored: int | None = None) -> str:
    """The key of a trained model: its config, the training code, torch and the machine; and
    `scored`, the number of validation and test images its history is scored on, when that is
    not all of them (quick mode)."""
    payload = {
        "config": config.to_dict(),
        "code": code_hash(),
        "torch": torch.__version__,
        **machine(),
        **({"scored": scored} if scored is not None else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def atomic_save(obj, path: Path) -> None:
    """Write obj to path through a temporary file: readers see the old entry or the new one.

    A write that fails (a full disk or quota: torch says "enforce fail at inline_container")
    raises CacheError naming path and the room it needs; the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            with open(tmp, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
        except (OSError, RuntimeError) as e:  # torch.save reports a failed write as either
            raise CacheError(_cannot_write(path, obj, e)) from None
        os.replace(tmp, path)  # atomic: readers see the old entry or the new one, never half of one
    finally:
        tmp.unlink(missing_ok=True)


def _cannot_write(path: Path, obj, error: BaseException) -> str:
    why = error.strerror if isinstance(error, OSError) and error.strerror else "the write failed"
    try:
        free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB"
    except OSError:
        free = "an unknown amount"
    return (
        f"cannot write cache entry {path}: {why}; it needs about {_nbytes(obj) / 1e6:.1f} MB "
        f"and its disk has {free} free: make room, or set LOWRANK_CACHE to a folder on a "
        f"disk with room (nothing was left half-written)"
    )


def _nbytes(obj) -> int:
    """The bytes of the tensors in obj: about the size of its file."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


def digest(obj) -> str:
    """SHA-256 of everything in an entry: every tensor's dtype, shape and bytes, every number."""
    h = hashlib.sha256()

    def feed(x):
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().contiguous()
            h.update(f"tensor {x.dtype} {tuple(x.shape)}".encode())
            h.update(x.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            h.update(b"dict")
            for k in sorted(x, key=repr):
                feed(k), feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(f"seq {len(x)}".encode())
            for v in x:
                feed(v)
        else:
            h.update(repr(x).encode())

    feed(obj)
    return h.hexdigest()


def seal(entry: dict) -> dict:
    """The entry with its digest, checked on every load."""
    return {**entry, "sha256": digest(entry)}


HISTORY_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "erank",
    "srank",
    "seconds",
)


def _problem(entry, key: str, config: TrainConfig, complete: bool) -> str | None:
    """Why `entry` is not an intact cache entry for (key, config), or None if it is."""
    if not isinstance(entry, dict) or "sha256" not in entry:
        return "not a cache entry"
    if entry["sha256"] != digest({k: v for k, v in entry.items() if k != "sha256"}):
        return "checksum mismatch: its contents were changed or damaged"
    if entry.get("key") != key:
        return "it belongs to another config or training code"
    history = entry.get("history")
    if (
        not isinstance(history, list)
        or len(history) > config.epochs
        or (complete and len(history) != config.epochs)
    ):
        return "wrong number of epochs in its history"
    for i, record in enumerate(history, 1):
        ok = isinstance(record, dict) and all(
            isinstance(record.get(f), (int, float)) and math.isfinite(record[f])
            for f in HISTORY_FIELDS
        )
        if not ok or record["epoch"] != i:
            return f"history record {i} is malformed"
    if not complete:  # the checkpoint's layout is train's; the digest vouches for it
        return None if isinstance(entry.get("checkpoint"), dict) else "no checkpoint"
    state = entry.get("state_dict")
    if not isinstance(state, dict):
        return "no weights"
    expected = _reference_state(config)
    if set(state) != set(expected):
        return f"weights have keys {sorted(state)}, expected {sorted(expected)}"
    for name, ref in expected.items():
        t = state[name]
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape or t.dtype != ref.dtype:
            return f"weight {name} is not a {ref.dtype} tensor of shape {tuple(ref.shape)}"
        if not torch.isfinite(t).all():
            return f"weight {name} has NaN or inf entries"
    return None


def _reference_state(config: TrainConfig) -> dict:
    """Names, shapes and dtypes of the weights a model of this config has (values unused)."""
    with torch.device("meta"):
        return network(config).state_dict()


def load_entry(path: Path, key: str, config: TrainConfig, complete: bool = True) -> dict | None:
    """The cache entry at path if it is intact and belongs to `key`, else None (with a warning).

    Nothing is deleted here: a bad entry is replaced, atomically, when it has been rebuilt.
    An entry that cannot be read at all (permissions, I/O error) raises CacheError.
    """
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):  # no entry there
        return None
    except OSError as e:
        raise CacheError(
            f"cannot read cache entry {path}: {e.strerror or e}; fix its permissions "
            f"or move it away (it is kept as it is)"
        ) from None
    try:
        entry = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # anything torch.load raises on these bytes: they are not an entry
        entry, problem = None, f"unreadable as a torch file ({type(e).__name__}: {e})"
    else:
        problem = _problem(entry, key, config, complete)
    if problem is None:
        if complete:
            _VERIFIED[_identity(path, key)] = entry["history"]
        return entry
    what = "cache entry" if complete else "checkpoint"
    warnings.warn(
        f"{what} {path} is corrupt or stale ({problem}); it will be rebuilt", stacklevel=3
    )
    return None


# Histories of the entries this process has verified, by file identity: a file replaced or
# changed on disk (atomic writes give it a new inode and mtime) is read and verified again.
# The λ sweeps' choices consult them many times during a render or a `make train`.
_VERIFIED: dict[tuple, list[dict]] = {}


def _identity(path: Path, key: str) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path), st.st_ino, st.st_mtime_ns, st.st_size, key


def verified_history(path: Path, key: str) -> list[dict] | None:
    """The history of the entry at path if this process verified it as it is now on disk."""
    return _VERIFIED.get(_identity(path, key))


def remember(path: Path, key: str, history: list[dict]) -> None:
    """Record the entry just written at path as verified."""
    _VERIFIED[_identity(path, key)] = history


def check_writable(folder: Path) -> None:
    """Raise CacheError unless files can be created in folder (created if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CacheError(
            f"cannot write to the cache folder {folder}: {e.strerror or e}; "
            f"make it writable or set LOWRANK_CACHE to a writable folder"
        ) from None


@contextmanager
def entry_lock(path: Path):
    """Hold an exclusive lock on path's entry: a second process waits here, then loads."""
    with open(path.with_name(f".{path.name}.lock"), "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"waiting for another process that trains {path.name} ...",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(f, fcntl.LOCK_EX)
        yield  # the lock goes with the file, also when the process dies


# What atomic_save and check_writable name after their process: .NAME.PID.tmp, .write-test.PID
_PROCESS_FILE = re.compile(r"^\..+\.(\d+)\.tmp$|^\.write-test\.(\d+)$")


def _alive(pid: int) -> bool:
    """Whether process pid exists on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(folder: Path) -> list[tuple[Path, int]]:
    """Remove from the cache folder what killed processes left there; each removed file and
    its size.

    - `.NAME.PID.tmp` (a half-written entry of atomic_save) and `.write-test.PID`, when
      process PID no longer exists on this machine; a live process's are never touched.
    - `NAME.partial.pt` when its entry NAME.pt exists and no process trains it (its lock is
      free): a process killed between writing the entry and deleting its checkpoint, or
      during a --force retraining, left it, and nothing resumes from it. A checkpoint
      without its entry is the resume point of an interrupted training: it is kept.

    Files that cannot be removed (a read-only cache) are left as they are.
    """
    removed = []
    try:
        files = sorted(folder.iterdir())
    except OSError:  # no folder yet, or one we may not list
        return removed
    for path in files:
        match = _PROCESS_FILE.match(path.name)
        if match and not _alive(int(match[1] or match[2])):
            removed += _remove(path)
        elif path.name.endswith(".partial.pt"):
            entry = path.with_name(path.name.removesuffix(".partial.pt") + ".pt")
            if entry.exists():
                removed += _remove_unless_training(path, entry)
    return removed


def _remove(path: Path) -> list[tuple[Path, int]]:
    try:
        size = path.stat().st_size
        path.unlink()
    except OSError:
        return []
    return [(path, size)]


def _remove_unless_training(partial: Path, entry: Path) -> list[tuple[Path, int]]:
    try:
        with open(entry.with_name(f".{entry.name}.lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when f closes
            return _remove(partial)
    except OSError:  # BlockingIOError: a process trains it now; or a read-only folder
        return []
