"""Stage 4: choose one network per latency budget with the supernet or NAO.

Both engines see the device only through the fitted predictor: the supernet
puts ``predict_soft`` of its architecture distribution into its loss, NAO trains
its latency head on the predictor's values and ascends ``accuracy - latency
loss`` in embedding space. The budgets are spread over the *profiled* range,
where the predictor has seen measurements. An optional MACs budget is enforced
on every chosen network by greedy cheaper moves (the supernet's own repair, with
counted MACs as the cost model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

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


def choose_supernet(space: Space, data: Any, input_size: int, predictor: Any,
                    budgets: list[float], settings: PipelineSettings,
                    on_budget: Callable[[dict[str, Any]], None] | None = None,
                    verbose: bool = False) -> list[dict[str, Any]]:
    """One supernet search per budget; rows: budget, arch, predicted / expected latency."""
    from hwnas.strategies.supernet.strategy import SupernetStrategy

    _, macs_budget = split_budgets(settings)
    macs_model = CountedMacs(space, input_size, data.num_classes) if macs_budget else None
    strategy = SupernetStrategy(seed=settings.seed, predictor=predictor, budgets=budgets,
                                warmup_epochs=settings.search_epochs,
                                search_epochs=settings.search_epochs)
    strategy._verbose = verbose
    rows: list[dict[str, Any]] = []

    def record(outcome: Any) -> None:
        arch = within_macs(space, outcome.arch, outcome.probs, macs_model, macs_budget)
        rows.append({"budget_ms": outcome.budget_ms, "arch": space.to_string(arch),
                     "predicted_ms": float(predictor.predict([arch])[0]),
                     "expected_ms": outcome.expected_ms, "search_s": outcome.seconds,
                     "engine": "supernet"})
        if on_budget is not None:
            on_budget(rows[-1])

    strategy.choose(space, data, input_size, budgets, on_budget=record)
    return rows


def choose_nao(space: Space, data: Any, input_size: int, predictor: Any, budgets: list[float],
               settings: PipelineSettings, cache_path: Path,
               progress: bool = True) -> list[dict[str, Any]]:
    """A NAO search (candidates trained for ``epochs``, latency from the predictor), then
    per budget the most accurate searched network the predictor puts within it."""
    from hwnas.evaluators.cache import CachedEvaluator
    from hwnas.evaluators.latency_sources import PredictorLatency
    from hwnas.evaluators.train import TrainEvaluator
    from hwnas.objectives import parse_objectives
    from hwnas.strategies.nao.strategy import NAOStrategy

    _, macs_budget = split_budgets(settings)
    extra = [f"macs<={macs_budget:g}"] if macs_budget else []
    objectives = parse_objectives(["accuracy", "latency_ms"], extra)
    metrics = ["accuracy", "latency_ms"] + (["macs"] if macs_budget else [])
    evaluator = TrainEvaluator(space, metrics, data, epochs=settings.epochs, seed=settings.seed,
                               latency=PredictorLatency(space, predictor), input_size=input_size)
    cached = CachedEvaluator(evaluator, cache_path)
    strategy = NAOStrategy(seed=settings.seed, init=max(1, min(10, settings.queries // 2)))
    try:
        result = strategy.run(space, cached, objectives, settings.queries, progress=progress)
    finally:
        cached.close()
    history = result.history
    if macs_budget:
        history = history[history["macs"] <= macs_budget]
    rows: list[dict[str, Any]] = []
    for budget in budgets:
        fits = history[history["latency_ms"] <= budget]
        if fits.empty:  # nothing searched is predicted that fast: the fastest searched one
            fits = history.nsmallest(1, "latency_ms")
        best = fits.sort_values(["accuracy", "latency_ms"], ascending=[False, True]).iloc[0]
        rows.append({"budget_ms": budget, "arch": str(best["arch"]),
                     "predicted_ms": float(best["latency_ms"]), "expected_ms": float("nan"),
                     "search_accuracy": float(best["accuracy"]), "engine": "nao"})
    return rows
