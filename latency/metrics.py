"""How good is a latency predictor: relative error (MAPE, share within ±5/±10 %),
RMSE, and rank agreement (Spearman, Kendall; scipy).

Search only needs the *order* of architectures to be right, so rank correlations
are the headline; a hardware budget needs the *value* right, so the share of
predictions within ±10 % is the second. Relative metrics take a mask because some
tables hold near-zero latencies (NB201 cells whose output is disconnected) where a
relative error means nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

from spaces.core.errors import InvalidOption


# Predictions and measurements cannot be compared (empty, unequal, not finite).
MetricError = InvalidOption


def _pair(pred: "Sequence[float] | np.ndarray", true: "Sequence[float] | np.ndarray",
          positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    if p.shape != t.shape:
        raise MetricError(f"{p.size} predictions but {t.size} measurements")
    if p.size == 0:
        raise MetricError("no predictions to score")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise MetricError("predictions and measurements must be finite")
    if positive and (t <= 0).any():
        raise MetricError("relative errors need positive measured latencies")
    return p, t


def mape(pred, true) -> float:
    """Mean absolute percentage error, in percent."""
    p, t = _pair(pred, true, positive=True)
    return float(np.mean(np.abs(p - t) / t) * 100.0)


def rmse(pred, true) -> float:
    """Root mean squared error, in the unit of the inputs (ms)."""
    p, t = _pair(pred, true)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def within(pred, true, tolerance: float) -> float:
    """Share (0-1) of predictions within ``±tolerance`` (0.1 = ±10 %) of the measurement."""
    p, t = _pair(pred, true, positive=True)
    # the boundary counts as within; 1e-12 keeps 2.2 vs 2.0 "10 %" despite float rounding
    return float(np.mean(np.abs(p - t) <= tolerance * t * (1 + 1e-12)))


def spearman(pred, true) -> float:
    """Spearman rank correlation (NaN when either side is constant)."""
    p, t = _pair(pred, true)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return float("nan")
    return float(stats.spearmanr(p, t)[0])


def kendall(pred, true) -> float:
    """Kendall's tau-b (handles the ties of phones that round to whole ms)."""
    p, t = _pair(pred, true)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return float("nan")
    return float(stats.kendalltau(p, t)[0])


def summary(pred, true, relative_mask: "np.ndarray | None" = None,
            kendall_max: int | None = 20_000) -> dict[str, float]:
    """All metrics at once. ``relative_mask`` (bool) selects the rows scored by the
    relative metrics (MAPE, ±5/±10 %); rank metrics use every row. Kendall is computed
    on an evenly spaced subsample above ``kendall_max`` rows (it is O(n log n) but slow
    in scipy for very large n)."""
    p, t = _pair(pred, true)
    mask = np.ones(p.size, dtype=bool) if relative_mask is None else np.asarray(relative_mask, dtype=bool)
    if mask.shape != p.shape:
        raise MetricError(f"relative_mask has {mask.size} entries for {p.size} predictions")
    if not mask.any():
        raise MetricError("relative_mask selects no rows")
    step = 1 if kendall_max is None or p.size <= kendall_max else int(np.ceil(p.size / kendall_max))
    return {
        "n": int(p.size),
        "mape": mape(p[mask], t[mask]),
        "rmse": rmse(p, t),
        "within5": within(p[mask], t[mask], 0.05),
        "within10": within(p[mask], t[mask], 0.10),
        "spearman": spearman(p, t),
        "kendall": kendall(p[::step], t[::step]),
    }
