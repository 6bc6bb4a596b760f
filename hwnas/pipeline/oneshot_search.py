"""Stage two of the one-shot engine with any strategy: ``--search-strategy rl|parsec|rsps|enas|...``.

The engine's default search is NSGA-II over inherited accuracy x the device predictor's
latency (:func:`hwnas.oneshot.search.nsga2`). Any registered strategy can take its place:
it sees :class:`ArchiveEvaluator`, an evaluator whose accuracy is the supernet's inherited
accuracy (memoised in the engine's archive, so a later round or a second device pays
nothing for architectures already scored) and whose latency is the run's predictor. It
also exposes the supernet, the data and the checkpoint, so the weight-sharing strategies
(``rsps`` screens with the shared weights, ``enas`` samples from the controller its
supernet training stored) run in the pipeline exactly as in ``hwnas explore``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from hwnas.objectives import parse_objectives
from spaces import Arch, Space


class _PredictedLatency:
    """The run's predictor as a latency source (cheap: a pre-screen may ask it freely)."""

    cheap = True

    def __init__(self, latency: Callable[[list[Arch]], np.ndarray]) -> None:
        self._latency = latency

    def latency_ms(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.asarray(self._latency(list(archs)), dtype=float).reshape(-1)

    def describe(self) -> dict[str, Any]:
        return {"source": "the run's latency predictor"}


class ArchiveEvaluator:
    """Inherited accuracy from the engine's archive (computing the missing ones) and the
    predictor's latency; see the module docstring."""

    name = "oneshot"
    metrics = ("accuracy", "latency_ms")

    def __init__(self, archive: Any, accuracy: Callable[[list[Arch]], np.ndarray],
                 latency: Callable[[list[Arch]], np.ndarray], supernet: Any, data: Any,
                 checkpoint: str | None) -> None:
        self.archive, self._accuracy = archive, accuracy
        self.latency = _PredictedLatency(latency)
        self.supernet, self.data, self.checkpoint = supernet, data, checkpoint

    def evaluate_many(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        archs = list(archs)
        new = self.archive.missing(archs)
        if new:
            for arch, acc in zip(new, np.asarray(self._accuracy(new), dtype=float).reshape(-1)):
                self.archive.accuracy[arch] = float(acc)
        ms = self.latency.latency_ms(archs)
        return [{"accuracy": self.archive.accuracy[a], "latency_ms": float(m)}
                for a, m in zip(archs, ms)]


def search_with_strategy(name: str, space: Space, evaluator: ArchiveEvaluator, queries: int,
                         seed: int) -> int:
    """Run strategy ``name`` for ``queries`` architectures on accuracy x predicted latency;
    the archive keeps everything it evaluated. Returns the number of queries used."""
    from hwnas import strategies

    strategy = strategies.create(name, seed=seed)
    check = getattr(strategy, "check_evaluator", None)
    if callable(check):
        check(evaluator)
    result = strategy.run(space, evaluator, parse_objectives(["accuracy", "latency_ms"]), queries)
    return len(result.history)


__all__ = ["ArchiveEvaluator", "search_with_strategy"]
