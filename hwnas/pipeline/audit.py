"""Did the predictor tell the truth about the networks it chose, and do they meet their budgets?

Every candidate of the budget loop is judged on its shipped file's measurement:

* ``error = (predicted - measured) / measured``, where the prediction is the one the
  engine acted on -- made *before* the network's measurement entered any predictor;
  ``missed`` when ``|error| > tolerance``;
* ``meets_budget`` when ``measured * (1 + margin) <= budget``: the file stays within
  its budget even if the host runs ``margin`` slower than while it was measured
  (the margin is the run's own measured drift, see :func:`budget_margin`).

A miss or a broken budget is exactly what the predictor must learn: the
measurement is already in the store, and :func:`refit` fits a new ensemble on
every stored measurement of the device except the held-out set, with the held-out
figures before and after kept, so a refit is judged, not assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwnas.pipeline.latency_model import factory_like, heldout_metrics
from hwnas.pipeline.state import PipelineState

MIN_REFIT = 10          # fewer stored measurements (besides the held-out set) cannot refit
MIN_MARGIN, MAX_MARGIN = 0.02, 0.20


def budget_margin(drift: float | None, given: float | None) -> float:
    """The share a measured latency must stay under its budget by: ``given``, else the
    host's measured drift (the reference network's range over the run) clipped to
    [2%, 20%]; 2% when there is too little to measure it."""
    if given is not None:
        return float(given)
    if drift is None or not np.isfinite(drift):
        return MIN_MARGIN
    return float(np.clip(drift, MIN_MARGIN, MAX_MARGIN))


def judge(predicted_ms: float, measured_ms: float, budget_ms: float, margin: float,
          tolerance: float) -> dict[str, Any]:
    """The audit's verdict on one candidate."""
    error = (predicted_ms - measured_ms) / measured_ms
    return {"error": float(error), "missed": bool(abs(error) > tolerance),
            "meets_budget": bool(measured_ms * (1.0 + margin) <= budget_ms)}


def refit(state: PipelineState) -> tuple[Any, dict[str, Any]]:
    """(new predictor or None, record): a predictor of the current kind fitted on every
    stored measurement of the device except the held-out set; None with the reason when
    there are too few."""
    stored = state.meter.stored()
    held = set(state.sets.holdout)
    train = [(a, ms) for a, ms in stored.items() if a not in held]
    if len(train) < MIN_REFIT:
        return None, {"refitted": False, "train": len(train),
                      "message": f"the store holds only {len(train)} measurement(s) besides the "
                                 f"held-out set: too few to refit (at least {MIN_REFIT}; profile "
                                 f"more: hwnas profile --active --db ...)"}
    before = heldout_metrics(state.predictor, state.sets.holdout, state.holdout_ms)
    make = factory_like(state.predictor, state.space, state.meter, state.settings.seed)
    model = make().fit([a for a, _ in train],
                       np.asarray([v for _, v in train]))
    after = heldout_metrics(model, state.sets.holdout, state.holdout_ms)
    return model, {"refitted": True, "train": len(train), "before": before, "after": after,
                   "message": f"refitted on {len(train)} measurements: held-out within +-10% "
                              f"{100 * before['within10']:.0f}% -> {100 * after['within10']:.0f}%, "
                              f"Spearman {before['spearman']:.3f} -> {after['spearman']:.3f}"}


def audit_text(frame: pd.DataFrame, tolerance: float) -> str:
    """The audit table as the CLI prints it."""
    show = frame[["budget_ms", "round", "predicted_ms", "measured_ms", "error", "missed",
                  "meets_budget", "accuracy", "arch"]].copy()
    show["error"] = [f"{100 * e:+.1f}%" for e in show["error"]]
    show["missed"] = ["yes" if m else "" for m in show["missed"]]
    show["meets_budget"] = ["yes" if m else "NO" for m in show["meets_budget"]]
    show = show.rename(columns={"budget_ms": "budget ms", "predicted_ms": "predicted ms",
                                "measured_ms": "measured ms",
                                "missed": f"off by >{100 * tolerance:.0f}%",
                                "meets_budget": "meets budget"})
    return show.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def plot_audit(frame: pd.DataFrame, holdout: pd.DataFrame | None, path: str | Path,
               tolerance: float, title: str = "") -> Path:
    """Predicted vs measured latency: every candidate over the held-out set, with the
    y = x line and the +-tolerance band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwnas.plots import save_png

    fig, ax = plt.subplots(figsize=(5.5, 5))
    values = [frame["measured_ms"], frame["predicted_ms"]]
    if holdout is not None and not holdout.empty:
        ax.scatter(holdout["measured_ms"], holdout["predicted_ms"], s=12, color="0.65",
                   label=f"held-out random archs ({len(holdout)})")
        values += [holdout["measured_ms"], holdout["predicted_ms"]]
    lo = float(min(v.min() for v in values)) * 0.9
    hi = float(max(v.max() for v in values)) * 1.1
    line = np.array([lo, hi])
    ax.plot(line, line, color="k", lw=1, label="predicted = measured")
    ax.fill_between(line, line * (1 - tolerance), line * (1 + tolerance), color="tab:blue",
                    alpha=0.12, label=f"+-{100 * tolerance:.0f}%")
    hit = frame[~frame["missed"]]
    miss = frame[frame["missed"]]
    ax.scatter(hit["measured_ms"], hit["predicted_ms"], s=60, marker="*", color="tab:green",
               label="candidate, within tolerance", zorder=3)
    if not miss.empty:
        ax.scatter(miss["measured_ms"], miss["predicted_ms"], s=60, marker="X", color="tab:red",
                   label="candidate, missed -> refit", zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency of the file (ms)")
    ax.set_ylabel("predicted latency (ms)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return save_png(fig, path, dpi=120)
