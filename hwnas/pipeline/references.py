"""Other devices in the store: which can teach the new one, and why.

When the pipeline's store already holds measurements of the same space at the same
input size and batch on other devices -- a previous run on another device, HELP's
imported tables, a teammate's store -- the transfer predictor
(``latency.predictors.transfer``) learns the new device from 10-20 of its own
measurements instead of ~100. A reference qualifies when it has enough rows to fit
its own predictor (:data:`MIN_ROWS`); the new device's first measurements are then
drawn from architectures the references measured, so every reference can be
checked against it on real numbers (its *overlap*). References of another space or
input size are never mixed in (each is named in a notice); a store whose references
share fewer than :data:`MIN_OVERLAP` measured architectures with the new device
falls back to the plain ensemble, and says so.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from spaces import Arch, Space

log = logging.getLogger(__name__)

MIN_ROWS = 30      # a reference needs this many measurements to fit its own predictor
MIN_OVERLAP = 10   # ... and this many architectures measured on both devices to be trusted


@dataclass
class Reference:
    """One other device's series in the store, and the evidence for (or against) using it."""

    key: str                 # label@bBATCH, the transfer predictor's name for it
    device_id: str
    label: str
    rows: int
    overlap: int = 0         # architectures measured on this device and on the reference
    spearman: float = float("nan")  # rank agreement with this device on the overlap
    used: bool = False
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in asdict(self).items()}


def candidates(store: Any, space: Space, device_id: str, batch: int,
               input_shape: Sequence[int]) -> tuple[list[Reference], list[str]]:
    """(references with enough rows, notices about series that were left out)."""
    from latency.predictors.transfer import reference_key
    from latency.store import shape_key
    from spaces.base import family_of

    if store is None:
        return [], []
    frame = store.frame()
    frame = frame[frame["device_id"] != device_id]
    if frame.empty:
        return [], []
    shape = shape_key(input_shape)
    notices, refs = [], []
    for (dev, label, space_key, b, s), group in frame.groupby(
            ["device_id", "device_label", "space", "batch", "input_shape"], sort=True):
        if family_of(space_key) != space.name:
            continue  # another space altogether: not a candidate, nothing to say
        if space_key != space.key or s != shape or int(b) != int(batch):
            notices.append(f"ignored {label} ({space_key}, input {s}, batch {b}): not "
                           f"{space.key} at input {shape}, batch {batch}")
            continue
        n = group["arch"].nunique()
        if n < MIN_ROWS:
            notices.append(f"ignored {label}: {n} measurements of {space.key}, fewer than "
                           f"the {MIN_ROWS} a reference needs")
            continue
        refs.append(Reference(reference_key(str(label), int(b)), str(dev), str(label), int(n)))
    for notice in notices:
        log.info(notice)
    return refs, notices


def restrict(refs: list[Reference], wanted: Sequence[str] | None, store_path: Any) -> list[Reference]:
    """Only the references named in ``wanted`` (ids, labels or label prefixes such as
    ``ort:cpu``); a name that matches none is an error naming what the store has."""
    if not wanted:
        return refs
    from hwnas.pipeline.settings import BadSetting

    out = []
    for name in wanted:
        hits = [r for r in refs if name in (r.device_id, r.label, r.key)
                or r.label.startswith((name + "/", name + "@"))]
        if not hits:
            known = ", ".join(r.label for r in refs) or "none"
            raise BadSetting(f"--references names {name!r}, but the store {store_path} has no such "
                             f"reference device for this space (usable: {known})")
        out += [r for r in hits if r not in out]
    return out


def shot_pool(store: Any, space: Space, refs: list[Reference], k: int) -> list[Arch]:
    """Architectures every reference measured (or, if fewer than ``k``, any of them
    measured): where the new device's first measurements can be compared with theirs."""
    frame = store.frame(space=space.key)
    sets = [set(frame.loc[frame["device_id"] == r.device_id, "arch"]) for r in refs]
    common = set.intersection(*sets) if sets else set()
    pool = common if len(common) >= k else set.union(*sets) if sets else set()
    out = []
    for text in sorted(pool):
        try:
            out.append(space.from_string(text))
        except Exception:  # noqa: BLE001 - a foreign string in a shared store is skipped
            continue
    return out


def judge(store: Any, space: Space, refs: list[Reference], own: dict[str, float]) -> list[Reference]:
    """Fill in each reference's overlap with this device's measurements ``own`` (arch
    string -> ms) and their rank agreement; mark the usable ones."""
    from scipy.stats import spearmanr

    frame = store.frame(space=space.key)
    for ref in refs:
        theirs = frame[frame["device_id"] == ref.device_id].groupby("arch")["latency_ms"].median()
        both = [a for a in own if a in theirs.index]
        ref.overlap = len(both)
        if len(both) >= 3:
            rho = spearmanr([own[a] for a in both], [theirs[a] for a in both]).statistic
            ref.spearman = float(rho) if np.isfinite(rho) else float("nan")
        ref.used = ref.overlap >= MIN_OVERLAP
        ref.why = (f"{ref.rows} measurements of {space.key}, {ref.overlap} in common with this "
                   f"device (Spearman {ref.spearman:.2f})" if ref.used else
                   f"only {ref.overlap} architecture(s) in common with this device "
                   f"(fewer than {MIN_OVERLAP})")
    return refs


def reference_frame(store: Any, space: Space, refs: list[Reference],
                    only_used: bool = True) -> pd.DataFrame:
    """The store rows of the (usable) references, for ``TransferPredictor.fit_references``."""
    frame = store.frame(space=space.key)
    return frame[frame["device_id"].isin([r.device_id for r in refs if r.used or not only_used])]


def fit_reference_predictors(store: Any, space: Space, refs: list[Reference],
                             input_shape: Sequence[int], seed: int) -> dict[str, Any]:
    """One fitted predictor per reference series (what the transfer predictor mixes)."""
    from latency import predictors

    holder = predictors.create("transfer", space, seed=seed)
    holder.fit_references(reference_frame(store, space, refs, only_used=False),
                          keys=[r.key for r in refs], input_shape=tuple(input_shape))
    return dict(holder.references)


def designed_shots(space: Space, reference_predictors: dict[str, Any], pool: list[Arch], k: int,
                   seed: int) -> list[Arch]:
    """The ``k`` architectures of ``pool`` that spread the references' predicted latencies
    best (``latency.shots.choose_shots``, a D-optimal design): 10 designed shots reached
    what 20 random ones do on HELP's devices (benchmarks/results/transfer_few_shot.txt)."""
    from latency.shots import choose_shots

    return choose_shots(space, reference_predictors, k, pool=pool or None, seed=seed)
