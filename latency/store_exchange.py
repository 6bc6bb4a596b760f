"""Moving measurements between stores: what ``hwnas profile --import FILE`` accepts.

Why: SQLite must not be written from several machines over a network file system
(see :mod:`latency.store`), so a team's machines each profile into their own store and
exchange files. A second device then starts from the first one's measurements (the
transfer predictor's references) instead of from nothing. Three kinds of file:

* another hwnas store (``.sqlite``): merged losslessly (samples, statistics, fingerprints);
* a file written by ``hwnas profile --export`` / :meth:`MeasurementStore.export`
  (``.csv`` / ``.parquet`` with a ``fingerprint`` column): rows are re-created under the
  same device ids; per-call samples only if the export had them;
* a HELP latency table (shared data): :func:`latency.help_import.import_help_table`.

Rows already in the store (same space, arch, device, batch, input shape) are skipped,
so importing twice adds nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from latency.store import MeasurementStore, StoreError, device_id_of
from latency.store.schema import _SQLITE_HEADER, _STAT_COLUMNS

EXPORT_COLUMNS = ("space", "arch", "device_id", "device_label", "batch", "input_shape", "latency_ms")


def _plain(value: Any) -> Any:
    """pandas/numpy scalars as plain Python values (what sqlite3 binds); NaN as None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.item() if hasattr(value, "item") else value


def _parsed(value: Any) -> Any:
    """A JSON column (samples) as Python data; None when absent."""
    value = _plain(value) if not isinstance(value, (list, dict)) else value
    return json.loads(value) if isinstance(value, str) and value else value


def _fingerprint(row: Any) -> dict[str, Any]:
    """The device's stored fingerprint, kept under its exported device id."""
    text = _plain(getattr(row, "fingerprint", None))
    fingerprint = json.loads(text) if text else {}
    fingerprint.setdefault("label", row.device_label)
    if getattr(row, "source", None) and "source" not in fingerprint:
        fingerprint["source"] = row.source
    if device_id_of(fingerprint) != str(row.device_id):
        fingerprint["id"] = str(row.device_id)
    return fingerprint


def import_export(store: MeasurementStore, frame: pd.DataFrame, origin: str = "the file") -> dict[str, int]:
    """Store the rows of an exported frame; returns ``{device label: rows newly stored}``."""
    missing = [c for c in EXPORT_COLUMNS if c not in frame.columns]
    if missing:
        raise StoreError(f"{origin} is not an hwnas export (missing columns: {', '.join(missing)})")
    rows, labels = [], []
    for row in frame.itertuples(index=False):
        measurement = {"latency_ms": _plain(row.latency_ms), "batch": _plain(row.batch),
                       "input_shape": str(row.input_shape),
                       "statistic": _plain(getattr(row, "statistic", None)) or "reported"}
        for column in _STAT_COLUMNS:
            measurement[column] = _plain(getattr(row, column, None))
        samples, aux = _parsed(getattr(row, "samples", None)), _parsed(getattr(row, "aux_samples", None))
        if samples:  # an export without samples, or a row that had none ("[]"): stored as none
            measurement["samples_ms"] = samples
        if aux:
            measurement["aux_samples_ms"] = aux
        rows.append((str(row.space), str(row.arch), _fingerprint(row), measurement))
        labels.append(str(row.device_label))
    counts = dict.fromkeys(sorted(set(labels)), 0)
    # one transaction per device: a device's rows arrive whole or not at all
    for label in counts:
        counts[label] = store.add_many([r for r, lab in zip(rows, labels) if lab == label])
    return counts


def read_export(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise StoreError(f"file to import {path} not found") from None
    except (OSError, ValueError, ImportError) as error:
        raise StoreError(f"cannot read {path}: {str(error).splitlines()[0]}") from None


def import_file(store: MeasurementStore, path: "str | os.PathLike[str]",
                space: str | None = None) -> dict[str, int]:
    """Import another store, an hwnas export or a HELP table into ``store`` (see the module
    docstring); ``space`` (a family name, e.g. ``nb201``) imports only that space's rows and
    refuses a file that has none. Returns ``{device label: rows newly stored}``."""
    from latency.help_import import import_help_table

    source = Path(path)
    if not source.is_file():
        raise StoreError(f"file to import {source} not found")
    with open(source, "rb") as handle:
        header = handle.read(len(_SQLITE_HEADER))
    if header == _SQLITE_HEADER:
        return store.merge(source, space)
    if source.suffix.lower() != ".parquet" and {"arch_str", "op_idx_list"} & read_export_header(source):
        return import_help_table(store, source, space)
    return import_export(store, of_space(read_export(source), space, source), str(source))


def of_space(frame: pd.DataFrame, space: str | None, source: Path) -> pd.DataFrame:
    """The rows of one space family (all rows when ``space`` is None)."""
    from spaces.base import family_of

    if space is None or "space" not in frame.columns:
        return frame
    families = frame["space"].astype(str).map(family_of)
    if not (families == space).any():
        held = ", ".join(sorted(set(frame["space"].astype(str)))) or "none"
        raise StoreError(f"{source} holds no {space} measurements (its spaces: {held})")
    return frame[families == space]


def read_export_header(path: Path) -> set[str]:
    try:
        return set(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError) as error:
        raise StoreError(f"cannot read {path}: {str(error).splitlines()[0]}") from None
