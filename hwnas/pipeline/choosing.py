"""Budgets of a pipeline run: which ones, and the MACs budget's repair.

The latency budgets are the user's (``--budget latency_ms<=X``) or spread over the
*profiled* range, where the predictor has seen measurements. An optional MACs
budget is enforced on every chosen network by greedy cheaper moves (the
supernet's own repair, with counted MACs as the cost model). The engines that
choose a network per budget are in :mod:`hwnas.pipeline.engines`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hwnas.objectives import parse_budget
from hwnas.pipeline.settings import BadSetting, PipelineSettings
from spaces import Arch, Space


def split_budgets(settings: PipelineSettings) -> tuple[list[float], float | None]:
    """(explicit latency budgets in ms, MACs budget) from ``--budget`` expressions."""
    latency, macs = [], None
    for text in settings.budgets:
        budget = parse_budget(text)
        if budget.name == "latency_ms" and budget.op == "<=":
            latency.append(float(budget.value))
        elif budget.name == "macs" and budget.op == "<=":
            macs = float(budget.value)
        else:
            raise BadSetting(f"the pipeline takes budgets latency_ms<=X and macs<=Y, not {text!r}")
    return latency, macs


def latency_budgets(settings: PipelineSettings, measured_ms: np.ndarray) -> list[float]:
    """Explicit budgets, else ``sweep`` budgets spread geometrically inside the profiled range."""
    from hwnas.strategies.supernet.strategy import sweep_budgets

    explicit, _ = split_budgets(settings)
    if explicit:
        return sorted(explicit)
    lo, hi = float(np.min(measured_ms)), float(np.max(measured_ms))
    return sweep_budgets(lo, hi, settings.sweep)


class CountedMacs:
    """A cost model with ``predict(archs)``: MACs counted on the built network (memoised)."""

    def __init__(self, space: Space, input_size: int, num_classes: int) -> None:
        self.space, self.input_size, self.num_classes = space, input_size, num_classes
        self._memo: dict[Arch, float] = {}

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        out = []
        for a in archs:
            if a not in self._memo:
                self._memo[a] = float(self.space.cost(a, self.input_size, self.num_classes).macs)
            out.append(self._memo[a])
        return np.asarray(out, dtype=float)


def within_macs(space: Space, arch: Arch, probs: Any, macs_model: CountedMacs | None,
                macs_budget: float | None) -> Arch:
    """``arch``, or the cheapest-first repair of it that meets the MACs budget."""
    if macs_budget is None or macs_model is None:
        return arch
    from hwnas.strategies.supernet.search import fit_to_budget

    if probs is None:  # no distribution: every option equally likely
        probs = [[1.0 / len(d)] * len(d) for d in space.decisions]
    repaired, macs = fit_to_budget(space, arch, probs, macs_model, macs_budget, max_moves=200)
    if macs > macs_budget:
        raise BadSetting(f"no architecture near the chosen one meets macs<={macs_budget:g} "
                         f"(reached {macs:g}); the MACs budget is too tight for this space")
    return repaired
