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
is refused with one sentence. Every file is written with
:func:`spaces.core.atomic_write`; a new folder whose first file cannot be written
(a full disk) is removed again, so a failed start leaves nothing behind. Every
reader names the file in one sentence when it is damaged or empty.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

import hwnas
from spaces.core import OutputError, atomic_write, check_writable
from spaces.core.errors import DamagedFile

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


# The run folder cannot be used as asked (exists, not a run, other config).
RunFolderError = DamagedFile


def default_run_dir(root: str | Path = "runs") -> Path:
    return Path(root) / time.strftime("%Y%m%d-%H%M%S")


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path, what: str = "file") -> Any:
    """A JSON file of a run; RunFolderError naming it when it is unreadable, empty or not
    JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunFolderError(f"{path} is corrupt (not text)") from None
    except OSError as error:
        raise RunFolderError(f"cannot read {path}: {error.strerror or error}") from None
    if not text.strip():
        raise RunFolderError(f"{path} is empty; the {what} was damaged")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from None


def read_table(path: Path, columns: Iterable[str] = (), numeric: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV table of a run; RunFolderError naming it when it is unreadable, empty, not CSV,
    lacks one of ``columns`` or holds something else than numbers in ``numeric``."""
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise RunFolderError(f"{path} is empty; it was damaged (hwnas writes a header even "
                             f"for an empty table)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RunFolderError(f"{path} is not a readable CSV table ({first[:120]})") from None
    except OSError as error:
        raise RunFolderError(f"cannot read {path}: {error.strerror or error}") from None
    missing = [c for c in (*columns, *numeric) if c not in table.columns]
    if missing:
        raise RunFolderError(f"{path} lacks the column(s) {', '.join(missing)}; it was damaged "
                             f"or is not a hwnas table")
    for column in numeric:
        values = pd.to_numeric(table[column], errors="coerce")
        if (values.isna() & table[column].notna()).any():
            raise RunFolderError(f"{path} holds something else than numbers in column "
                                 f"{column!r}; it was damaged")
        table[column] = values
    return table


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
        config = read_json(path, "run's config")
        if not isinstance(config, dict):
            raise RunFolderError(f"{path} is not a run's config (a JSON object)")
        return config

    def check_writable(self) -> None:
        """Refuse, before any work, a run folder that cannot be written (a file in its
        place, an unwritable parent, a full disk)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} exists and is not a folder; choose another --out")
        check_writable(self.path / CONFIG, create_parent=True)

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
            if "queries" in config:
                merged["queries"] = config["queries"]
            if merged != stored:
                _write_json(self.path / CONFIG, merged)
            return merged
        if resume and self.path.exists() and any(self.path.iterdir()):
            self.read_config()  # raises: a non-empty folder that is not a run
        if not resume:
            self.check_new()
        self.check_writable()
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunFolderError(f"cannot create the run folder {self.path}: "
                                 f"{error.strerror or error}") from None
        full = {"hwnas_version": hwnas.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **config}
        try:
            _write_json(self.path / CONFIG, full)
        except OutputError:
            if created:
                self.remove_if_empty()
            raise
        return full

    def discard_start(self) -> None:
        """Undo :meth:`start` of a new run that failed before its first stage: its config
        goes, and the folder with it when nothing else is there."""
        (self.path / CONFIG).unlink(missing_ok=True)
        self.remove_if_empty()

    def remove_if_empty(self) -> None:
        """Remove the folder when it holds nothing (a start that failed at its first file)."""
        try:
            self.path.rmdir()
        except OSError:
            pass  # not empty, or already gone: leave it

    # ---- writing ----------------------------------------------------------------------
    def write_history(self, history: pd.DataFrame) -> None:
        atomic_write(self.path / HISTORY, history.to_csv(index=False))

    def write_front(self, front: pd.DataFrame) -> None:
        atomic_write(self.path / PARETO, front.to_csv(index=False))

    def write_json(self, name: str, data: Any) -> Path:
        """Any other JSON record of the run (e.g. the supernet's per-budget trace)."""
        _write_json(self.path / name, data)
        return self.path / name

    def write_study(self, history: pd.DataFrame, objectives: Any, space: Any,
                    attrs: Mapping[str, Any] | None = None, source: str | None = None) -> Path:
        from hwnas.optuna_study import write_study

        return write_study(self.study_path, history, objectives, space, attrs, source)

    def write_best(self, record: Mapping[str, Any] | None) -> None:
        path = self.path / BEST_ARCH
        if record is None:
            path.unlink(missing_ok=True)
            return
        _write_json(path, record)

    # ---- reading ----------------------------------------------------------------------
    def read_history(self, columns: Iterable[str] = ("arch",),
                     numeric: Iterable[str] = ()) -> pd.DataFrame:
        path = self.path / HISTORY
        if not path.is_file():
            raise RunFolderError(f"{self.path} has no {HISTORY} yet (the search has not "
                                 f"evaluated anything)")
        return read_table(path, columns, numeric)

    def read_front(self, columns: Iterable[str] = ("arch",),
                   numeric: Iterable[str] = ()) -> pd.DataFrame:
        path = self.path / PARETO
        if not path.is_file():
            raise RunFolderError(f"{path} does not exist (the search has not finished a batch)")
        return read_table(path, columns, numeric)

    def read_best(self) -> dict[str, Any] | None:
        path = self.path / BEST_ARCH
        if not path.is_file():
            return None
        record = read_json(path, "best architecture record")
        if not isinstance(record, dict):
            raise RunFolderError(f"{path} is not an architecture record (a JSON object)")
        return record
