"""What the post computes from trained models, cached beside them.

    records = cached(("model0", 0), "record", lambda: run_record(model, history, data))

A warm render (every model cached) would otherwise recompute every sweep and bootstrap from
the weights. An analysis is stored under the cache's analyses/ folder, keyed by the cache keys
of the models it reads, its label and parameters, and the source of the package's modules
that compute (any change to them recomputes every analysis, and retrains nothing; the
verdicts' wording, the page plumbing and the command line are left out). Entries are written
atomically and sealed with their digest like the models; a corrupt or stale one is recomputed
and replaced, never trusted.
"""

import ast
import hashlib
import inspect
import io
import json
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import torch

from lowrank.cache import CacheError, _without_docstrings, atomic_save, cache_dir, digest, seal

PACKAGE = Path(__file__).parent
Model = tuple[str, int]  # (experiment, seed)


# Modules that compute no analysis: the page's words and plumbing, the command line, the
# training plan. Editing them (a verdict's wording, say) recomputes nothing.
NOT_ANALYSIS = ("__init__.py", "__main__.py", "cli.py", "page.py", "shards.py", "verdicts.py")


def _package_hash() -> str:
    """Hash of the package's modules that compute analyses, without docstrings, comments or
    formatting."""
    trees = {
        path.name: ast.dump(_without_docstrings(ast.parse(path.read_text())))
        for path in sorted(PACKAGE.glob("*.py"))
        if path.name not in NOT_ANALYSIS
    }
    return hashlib.sha256(json.dumps(trees, sort_keys=True).encode()).hexdigest()


_CODE = _package_hash()  # as this process imported the package


def page_source(compute: Callable) -> str | None:
    """The source of compute (or of the function a partial wraps) when the page's own cells
    define it (module __main__, as in a notebook), else None: the package's code is keyed as a
    whole, the page's function by its text."""
    f = compute.func if isinstance(compute, partial) else compute
    if getattr(f, "__module__", None) != "__main__":
        return None
    try:
        return inspect.getsource(f)
    except (OSError, TypeError):  # no source to read (defined by exec)
        return None


def analysis_key(
    models: Sequence[Model], label: str, params: dict, source: str | None = None
) -> str:
    """The key of an analysis: its models' cache keys, its label and parameters, the code
    (the package's, and `source`: that of a function the page defines)."""
    from lowrank.experiments import config_for, model_key

    payload = {
        "models": [[name, seed, model_key(config_for(name, seed))] for name, seed in models],
        "label": label,
        "params": params,
        "code": _CODE,
        **({"source": source} if source is not None else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def analysis_path(models: Sequence[Model], label: str, key: str) -> Path:
    from lowrank.experiments import quick_mode

    mode = "quick" if quick_mode() else "full"
    first = f"{models[0][0]}-s{models[0][1]}" if models else "none"
    more = f"+{len(models) - 1}" if len(models) > 1 else ""
    return cache_dir() / "analyses" / f"{label}-{first}{more}-{mode}-{key}.pt"


def _plain(value):
    """value with numpy arrays as tensors and numpy scalars as Python numbers (what
    weights-only loading reads back)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _load(path: Path, key: str):
    """The stored value at path if the entry is intact and has `key`; else None (warned)."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise CacheError(f"cannot read analysis {path}: {e.strerror or e}") from None
    try:
        entry = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        intact = (
            isinstance(entry, dict)
            and entry.get("sha256") == digest({k: v for k, v in entry.items() if k != "sha256"})
            and entry.get("key") == key
            and "value" in entry
        )
    except Exception:  # not a torch file at all
        intact = False
    if intact:
        return entry
    warnings.warn(f"analysis {path} is corrupt or stale; it will be recomputed", stacklevel=3)
    return None


def cached(models: Model | Sequence[Model], label: str, compute: Callable, **params):
    """compute(), or its stored value for these models, label and params.

    The value must be tensors or numpy arrays, numbers, strings, None, and lists, tuples and
    dicts of them (numpy values come back as tensors and Python numbers). A compute defined
    in the page's cells is keyed by its source too (page_source): editing it recomputes.
    """
    if isinstance(models, tuple) and len(models) == 2 and isinstance(models[0], str):
        models = [models]
    models = [(str(name), int(seed)) for name, seed in models]
    key = analysis_key(models, label, params, page_source(compute))
    path = analysis_path(models, label, key)
    entry = _load(path, key)
    if entry is not None:
        return entry["value"]
    value = _plain(compute())
    atomic_save(seal({"key": key, "value": value}), path)
    return value
