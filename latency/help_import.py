"""Import the HELP / HW-NAS-Bench latency tables (shared data) into the measurement store.

Each device column becomes one device (label ``help:<name>``, source
``imported``) whose fingerprint describes the hardware, so these numbers sit in
the same schema as our own but are never mistaken for measurements made here.
GPU columns carry the batch size as a suffix (``1080ti_32``); those become rows
of one device at different batches. NB201 rows are keyed by the cell string
(space ``nb201``), FBNet rows by the op-index string (space ``fbnet``); every
table is for 32x32 inputs (CIFAR).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from latency.store import MeasurementStore, StoreError

INPUT_SHAPE = "3x32x32"
ORIGIN = "HELP (github.com/HayeonLee/HELP, NeurIPS 2021), partly from HW-NAS-Bench"

# name -> (kind, description); from the HELP and HW-NAS-Bench papers/READMEs.
HELP_DEVICES: dict[str, tuple[str, str]] = {
    "1080ti": ("gpu", "NVIDIA GeForce GTX 1080 Ti"),
    "2080ti": ("gpu", "NVIDIA GeForce RTX 2080 Ti"),
    "titan_rtx": ("gpu", "NVIDIA Titan RTX"),
    "titanx": ("gpu", "NVIDIA GeForce GTX Titan X"),
    "titanxp": ("gpu", "NVIDIA Titan Xp"),
    "gold_6226": ("cpu", "Intel Xeon Gold 6226"),
    "gold_6240": ("cpu", "Intel Xeon Gold 6240"),
    "silver_4114": ("cpu", "Intel Xeon Silver 4114"),
    "silver_4210r": ("cpu", "Intel Xeon Silver 4210R"),
    "pixel2": ("phone", "Google Pixel 2 (values rounded to 1 ms)"),
    "essential_ph_1": ("phone", "Essential PH-1 (values rounded to 1 ms)"),
    "samsung_a50": ("phone", "Samsung Galaxy A50 (values rounded to 1 ms)"),
    "samsung_s7": ("phone", "Samsung Galaxy S7 (values rounded to 1 ms)"),
    "pixel3": ("phone", "Google Pixel 3 (HW-NAS-Bench)"),
    "raspi4": ("edge", "Raspberry Pi 4 (HW-NAS-Bench)"),
    "eyeriss": ("asic", "Eyeriss accelerator, simulated (HW-NAS-Bench)"),
    "fpga": ("fpga", "FPGA, simulated (HW-NAS-Bench)"),
}
_BATCH_SUFFIX = re.compile(r"^(.+)_(1|32|64|256)$")
_TABLES = {"arch_str": "nb201", "op_idx_list": "fbnet"}
_INDEX_COLUMNS = {"arch_index", "sample_index"}


def split_column(column: str) -> tuple[str, int]:
    """``"1080ti_32"`` -> ``("1080ti", 32)``; a known device name keeps its suffix
    (``essential_ph_1`` is a phone, not batch 1)."""
    if column in HELP_DEVICES:
        return column, 1
    match = _BATCH_SUFFIX.match(column)
    if match:
        return match.group(1), int(match.group(2))
    return column, 1


def help_fingerprint(device: str) -> dict[str, Any]:
    """The descriptive fingerprint of an imported device; the same for both tables,
    so NB201 and FBNet rows of one device share its id."""
    kind, description = HELP_DEVICES.get(device, ("unknown", f"device column {device!r} of HELP"))
    return {"source": "imported", "origin": ORIGIN, "device": device, "kind": kind,
            "description": description, "unit": "ms", "label": f"help:{device}"}


def import_help_table(store: MeasurementStore, csv_path: "str | Path",
                      only_space: str | None = None) -> dict[str, int]:
    """Import one HELP table; returns ``{label: rows newly stored}`` (re-importing adds 0).
    ``only_space``: the space the caller expects; a table of another space is refused."""
    path = Path(csv_path)
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise StoreError(f"latency table {path} not found") from None
    except (OSError, ValueError) as error:
        raise StoreError(f"cannot read latency table {path}: {error}") from None
    arch_column = next((c for c in _TABLES if c in table.columns), None)
    if arch_column is None:
        raise StoreError(f"{path.name} is not a HELP latency table (no arch_str or "
                         f"op_idx_list column)")
    space = _TABLES[arch_column]
    if only_space is not None and only_space != space:
        raise StoreError(f"{path.name} is a HELP latency table of the {space} space, not of "
                         f"{only_space}: import the {only_space} table, or leave --space out")
    archs = table[arch_column].astype(str).tolist()
    sets: list[tuple[dict[str, Any], list[tuple]]] = []
    for column in table.columns:
        if column == arch_column or column in _INDEX_COLUMNS:
            continue
        device, batch = split_column(column)
        values = pd.to_numeric(table[column], errors="coerce").tolist()
        rows = [(space, arch, batch, INPUT_SHAPE, value)
                for arch, value in zip(archs, values) if not math.isnan(value)]
        sets.append((help_fingerprint(device), rows))
    counts: dict[str, int] = {}
    for (fingerprint, _), added in zip(sets, store.add_value_sets(sets, "reported")):
        counts[fingerprint["label"]] = counts.get(fingerprint["label"], 0) + added
    return counts
