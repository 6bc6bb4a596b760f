"""A run's trials as an Optuna study (``RUN/study.db``), so ``optuna-dashboard`` shows them.

Why: Optuna's dashboard is a history / Pareto-front viewer many users already
know; giving it the run costs one SQLite file. The study is rebuilt from the
history table (whatever strategy ran), one trial per evaluated architecture:

* parameters: the option name of each decision that applies (categorical);
* values: the searched objectives, with Optuna's directions and their names
  (``accuracy``, ``latency_ms``...) as the study's metric names;
* constraints: one per budget, ``(value - budget) / budget`` (feasible when <= 0),
  so the dashboard greys out the architectures that break a budget;
* user attributes: the architecture string, every metric, the budgets, where the
  latency came from (measured on a device, predicted, or a table) and the
  history's bookkeeping (query, batch, seconds).

Atomic: the study is built (or the previous one copied and extended) in a
temporary folder and its file written over the target with
:func:`spaces.core.atomic_write`, so a kill leaves the previous study or the
new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from hwnas.objectives import Objective
from spaces import Space
from spaces.core import atomic_write

log = logging.getLogger(__name__)

STUDY_NAME = "hwnas"


def latency_source(evaluator: Mapping[str, Any] | None) -> str | None:
    """How the run got latency, in words: ``measured on ort:cpu/1t@...``, ``predicted by
    pred.pt``, ``table gold_6226``; None when it had none."""
    latency = (evaluator or {}).get("latency")
    if not isinstance(latency, Mapping):
        return None
    kind = latency.get("kind")
    if kind == "device":
        return f"measured on {latency.get('label') or latency.get('device')}"
    if kind == "predictor":
        device = latency.get("device") or {}
        label = device.get("label") if isinstance(device, Mapping) else None
        return f"predicted by {latency.get('path')}" + (f" (for {label})" if label else "")
    if kind == "table":
        return f"table {latency.get('device')} ({latency.get('table')})"
    return str(kind)


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def trials_of(history: pd.DataFrame, objectives: Sequence[Objective], space: Space,
              source: str | None) -> list[Any]:
    """One Optuna ``FrozenTrial`` per history row (complete, with values and attributes)."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    searched = [o for o in objectives if o.searched]
    budgeted = [o for o in objectives if o.budget is not None]
    unused = getattr(space, "unused_option", None)
    real = {}
    for i, d in enumerate(space.decisions):
        skip = unused(i) if unused is not None else None
        real[d.name] = CategoricalDistribution([o for k, o in enumerate(d.options) if k != skip])
    budgets = {o.name: o.budget for o in budgeted}
    trials = []
    for row in history.to_dict("records"):
        arch = space.from_string(str(row["arch"]))
        params = {}
        for i, (d, c) in enumerate(zip(space.decisions, arch.choices)):
            if unused is not None and c == unused(i):
                continue
            params[d.name] = d.options[c]
        metrics = {o.name: float(row[o.name]) for o in objectives}
        attrs = {"arch": str(row["arch"]), **{k: _plain(v) for k, v in metrics.items()},
                 "feasible": bool(row.get("feasible", True)), "budgets": budgets,
                 "query": _plain(row.get("query")), "batch": _plain(row.get("batch")),
                 "eval_s": _plain(row.get("eval_s")), "time_s": _plain(row.get("time_s"))}
        if source and "latency_ms" in metrics:
            attrs["latency_source"] = source
        values = [metrics[o.name] for o in searched]
        constraints = {}
        for o in budgeted:
            over = (o.budget - metrics[o.name]) if o.maximise else (metrics[o.name] - o.budget)
            constraints[o.budget_text()] = over / abs(o.budget)
        trials.append(optuna.trial.create_trial(
            values=values, params=params, distributions={k: real[k] for k in params},
            user_attrs=attrs, constraints=constraints or None))
    return trials


def _existing(tmp: Path, history: pd.DataFrame) -> int:
    """How many leading history rows the copied study already holds (0: rebuild it)."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}")
    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
        trials = study.get_trials(deepcopy=False)
        n = len(trials)
        if n == 0 or n > len(history):
            return 0
        if trials[-1].user_attrs.get("arch") != str(history["arch"].iloc[n - 1]):
            return 0
        return n
    except Exception:  # noqa: BLE001 - not a study of ours, another schema...: rebuild
        return 0
    finally:
        storage.remove_session()
        storage.engine.dispose()


def write_study(path: str | Path, history: pd.DataFrame, objectives: Sequence[Objective],
                space: Space, attrs: Mapping[str, Any] | None = None,
                source: str | None = None) -> Path:
    """Write ``history`` as the Optuna study ``hwnas`` in the SQLite file ``path``
    (replaced atomically); ``attrs`` become study user attributes.

    Adding a trial to an SQLite study costs tens of milliseconds (one transaction
    each), so a study that already holds the first rows of ``history`` is copied
    and extended rather than rebuilt."""
    import optuna

    target = Path(path)
    directions = ["maximize" if o.maximise else "minimize" for o in objectives if o.searched]
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="hwnas-study-") as folder:
            tmp = Path(folder) / "study.db"
            start = 0
            if target.is_file():
                shutil.copyfile(target, tmp)
                start = _existing(tmp, history)
                if start == 0:
                    tmp.unlink()
            trials = trials_of(history.iloc[start:], objectives, space, source)
            storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}")
            try:
                if start:
                    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
                else:
                    study = optuna.create_study(storage=storage, study_name=STUDY_NAME,
                                                directions=directions)
                    with warnings.catch_warnings():  # experimental in some Optuna versions
                        warnings.simplefilter("ignore")
                        study.set_metric_names([o.name for o in objectives if o.searched])
                for key, value in (attrs or {}).items():
                    study.set_user_attr(key, json.loads(json.dumps(value, default=str)))
                study.add_trials(trials)
            finally:
                storage.remove_session()
                storage.engine.dispose()
            atomic_write(target, tmp.read_bytes())
    finally:
        optuna.logging.set_verbosity(level)
    log.debug("wrote %d new trials (%d kept) to %s", len(trials), start, target)
    return target
