"""A search run is a folder; this module owns its layout.

::

    RUN_DIR/
      config.json      what was asked (space, evaluator, objectives, strategy, seed...)
      cache.jsonl      one line per evaluated architecture (append-only; resume reads it)
      history.csv      one row per evaluation, in order (rewritten after every batch)
      pareto.csv       the feasible non-dominated rows of history.csv
      pareto.png       all evaluated points, the front highlighted, budgets drawn
      best/arch.json   the chosen architecture: space, space_kwargs, choices, string,
                       metrics, num_classes, input_size (enough to rebuild the network)
      best/model.onnx  written by the export step (hwnas.export), not by the search
      study.db         the history as an Optuna study (SQLite; hwnas.optuna_study), for
                       ``optuna-dashboard sqlite:///RUN_DIR/study.db``

Nothing in an existing folder is touched until its config has been checked:
a folder from another config, or a non-empty folder without ``--resume``,
is refused with one sentence.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

import hwnas
from spaces.errors import HwnasError

CONFIG = "config.json"
CACHE = "cache.jsonl"
HISTORY = "history.csv"
PARETO = "pareto.csv"
PLOT = "pareto.png"
BEST_DIR = "best"
BEST_ARCH = "best/arch.json"
BEST_MODEL = "best/model.onnx"
STUDY = "study.db"

# config keys (at any depth) that may differ on --resume: bookkeeping, and the
# query budget (strategies are anytime, so a larger budget extends a run exactly).
RESUMABLE_KEYS = ("created", "hwnas_version", "queries", "info")


class RunFolderError(HwnasError):
    """The run folder cannot be used as asked (exists, not a run, other config)."""


def default_run_dir(root: str | Path = "runs") -> Path:
    return Path(root) / time.strftime("%Y%m%d-%H%M%S")


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file + rename, so a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _diff(stored: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> str | None:
    """Dotted name of the first setting that differs, or None."""
    for key in sorted(set(stored) | set(current)):
        if key in RESUMABLE_KEYS:
            continue
        a, b = stored.get(key), current.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            inner = _diff(a, b, f"{prefix}{key}.")
            if inner:
                return inner
        elif a != b:
            return f"{prefix}{key} ({a!r} in the run, {b!r} now)"
    return None


class RunFolder:
    """Paths and writers of one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def cache_path(self) -> Path:
        return self.path / CACHE

    @property
    def study_path(self) -> Path:
        """The Optuna study of the run (for optuna-dashboard)."""
        return self.path / STUDY

    @property
    def best_model_path(self) -> Path:
        """Where the export step writes the deployable network."""
        return self.path / BEST_MODEL

    # ---- opening ----------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        path = self.path / CONFIG
        if not path.is_file():
            raise RunFolderError(f"{self.path} is not a hwnas run folder (no {CONFIG})")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RunFolderError(f"{path} is not valid JSON ({err.msg})") from err

    def check_resumable(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The stored config, if ``config`` may continue it; raises otherwise. Read-only."""
        stored = self.read_config()
        diff = _diff(stored, config)
        if diff:
            raise RunFolderError(f"cannot resume {self.path}: it was started with a different "
                                 f"config, first difference: {diff}")
        return stored

    def check_new(self) -> None:
        """Refuse a folder that already holds something (never overwrite a run). Read-only."""
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise RunFolderError(f"{self.path} already exists and is not empty; pass --resume to "
                                 f"continue it or choose another --out")

    def start(self, config: Mapping[str, Any], resume: bool) -> dict[str, Any]:
        """Check, then create (or reopen) the folder; returns the config in force."""
        if resume and (self.path / CONFIG).is_file():
            stored = self.check_resumable(config)
            merged = dict(stored)
            merged["queries"] = config.get("queries", stored.get("queries"))
            _atomic_write(self.path / CONFIG, json.dumps(merged, indent=2, sort_keys=True) + "\n")
            return merged
        if resume and self.path.exists() and any(self.path.iterdir()):
            self.read_config()  # raises: a non-empty folder that is not a run
        if not resume:
            self.check_new()
        self.path.mkdir(parents=True, exist_ok=True)
        full = {"hwnas_version": hwnas.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **config}
        _atomic_write(self.path / CONFIG, json.dumps(full, indent=2, sort_keys=True) + "\n")
        return full

    # ---- writing ----------------------------------------------------------------------
    def write_history(self, history: pd.DataFrame) -> None:
        _atomic_write(self.path / HISTORY, history.to_csv(index=False))

    def write_front(self, front: pd.DataFrame) -> None:
        _atomic_write(self.path / PARETO, front.to_csv(index=False))

    def write_study(self, history: pd.DataFrame, objectives: Any, space: Any,
                    attrs: Mapping[str, Any] | None = None, source: str | None = None) -> Path:
        from hwnas.optuna_study import write_study

        return write_study(self.study_path, history, objectives, space, attrs, source)

    def write_best(self, record: Mapping[str, Any] | None) -> None:
        path = self.path / BEST_ARCH
        if record is None:
            path.unlink(missing_ok=True)
            return
        _atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + "\n")

    # ---- reading ----------------------------------------------------------------------
    def read_history(self) -> pd.DataFrame:
        path = self.path / HISTORY
        if not path.is_file():
            raise RunFolderError(f"{self.path} has no {HISTORY} yet (the search has not "
                                 f"evaluated anything)")
        return pd.read_csv(path)

    def read_best(self) -> dict[str, Any] | None:
        path = self.path / BEST_ARCH
        return json.loads(path.read_text()) if path.is_file() else None
