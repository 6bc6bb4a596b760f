"""The evaluator contract: a batch of architectures in, one metrics dict per architecture out.

The batch is the unit of work on purpose: live profiling interleaves a batch
on the device (the only stable way on a noisy CPU), and a later executor
(Ray) parallelises a batch across workers. Strategies call only
:meth:`Evaluator.evaluate_many`; they never see a device or a dataset.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

import numpy as np

from spaces import Arch, Space
from spaces.errors import HwnasError

COST_METRICS = ("macs", "params")


class Evaluator(ABC):
    """Turns architectures of one space into the requested metrics.

    ``metrics`` is what the search needs (objectives and budget-only metrics);
    an evaluator refuses at construction to serve a metric it cannot produce,
    so a bad combination fails before any work is done. ``queries`` counts the
    architectures actually evaluated (cache hits are not queries).
    """

    name: str = ""

    def __init__(self, space: Space, metrics: Sequence[str]) -> None:
        self.space = space
        self.metrics = tuple(metrics)
        self.queries = 0
        missing = [m for m in self.metrics if m not in self.supported_metrics()]
        if missing:
            raise HwnasError(f"the {self.name or type(self).__name__} evaluator cannot report "
                             f"{', '.join(missing)} with these options; it can report "
                             f"{', '.join(self.supported_metrics()) or 'nothing'}")

    def supported_metrics(self) -> tuple[str, ...]:
        """Metrics this evaluator, as configured, can produce."""
        return COST_METRICS

    def evaluate(self, arch: Arch) -> dict[str, float]:
        return self.evaluate_many([arch])[0]

    def evaluate_many(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """Metrics of every arch, in order; each dict holds exactly ``self.metrics``."""
        archs = [self.space.validate(a) for a in archs]
        if not archs:
            return []
        results = self._evaluate_many(archs)
        if len(results) != len(archs):  # a bug in a subclass, not bad input
            raise RuntimeError(f"{type(self).__name__} returned {len(results)} results "
                               f"for {len(archs)} architectures")
        self.queries += len(archs)
        return [{m: float(r[m]) for m in self.metrics} for r in results]

    @abstractmethod
    def _evaluate_many(self, archs: list[Arch]) -> list[dict[str, float]]:
        """Evaluate a validated, non-empty batch."""

    def best_possible(self) -> dict[str, float | None]:
        """Best value any architecture of the space can reach, per metric, where
        known (a table extreme, the cheapest arch); used to reject infeasible
        budgets before searching. ``None`` means unknown."""
        return {m: None for m in self.metrics}

    def whole_space(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Of ``names``, the metrics this evaluator can give for *every* architecture of the
        space cheaply (a benchmark table), one array each, in one fixed order of the
        space; the others are left out. Used to refuse budgets that no architecture meets
        together before searching."""
        return {}

    def describe(self) -> dict[str, Any]:
        """JSON-friendly settings, stored in the run's config.json and compared on resume."""
        return {"name": self.name, "metrics": list(self.metrics)}

    def close(self) -> None:
        """Release resources (profiler sessions, data); idempotent."""


class CostMetrics:
    """MACs and params from the space (counted on the built module), memoised per arch."""

    def __init__(self, space: Space, input_size: int | None = None,
                 num_classes: int | None = None) -> None:
        self.space, self.input_size, self.num_classes = space, input_size, num_classes
        self._memo: dict[Arch, dict[str, float]] = {}

    def __call__(self, arch: Arch) -> dict[str, float]:
        if arch not in self._memo:
            cost = self.space.cost(arch, self.input_size, self.num_classes)
            self._memo[arch] = {"macs": float(cost.macs), "params": float(cost.params)}
        return self._memo[arch]

    def minimum(self, metric: str, seed: int = 0) -> float:
        # One pass suffices for these monotone costs (see coordinate_minimum);
        # each pass builds every option once, which is seconds for NB201.
        return coordinate_minimum(self.space, lambda archs: np.array([self(a)[metric] for a in archs]),
                                  seed=seed, max_passes=1)


def coordinate_minimum(space: Space, fn: Callable[[list[Arch]], np.ndarray], seed: int = 0,
                       max_passes: int = 2) -> float:
    """Smallest value of ``fn`` found by coordinate descent over the decisions.

    Each pass tries every option of every decision (one batch per decision)
    and keeps the best. For costs that grow with each decision whatever the
    others are (MACs, params and latency of conv nets: wider, larger kernels,
    higher resolution, an op instead of a skip all cost more) this is the exact
    minimum. For other costs it can overestimate the minimum, which is why it
    is used only to reject budgets on such costs.
    """
    arch = space.sample(seed)
    best = float(fn([arch])[0])
    for _ in range(max_passes):
        improved = False
        for i, decision in enumerate(space.decisions):
            cands = [Arch(space.key, arch.choices[:i] + (j,) + arch.choices[i + 1:])
                     for j in range(len(decision)) if j != arch.choices[i]]
            cands = [c for c in cands if space.is_valid(c)]
            if not cands:
                continue
            values = np.asarray(fn(cands), dtype=float)
            k = int(np.argmin(values))
            if values[k] < best:
                best, arch, improved = float(values[k]), cands[k], True
        if not improved:
            break
    return best


class ComposedEvaluator(Evaluator):
    """Accuracy from a subclass, latency from a :class:`LatencySource`, MACs/params
    from the space: the three are independent, so each evaluator only says how
    it gets accuracy and any latency source combines with it."""

    def __init__(self, space: Space, metrics: Sequence[str], latency: "Any | None" = None,
                 input_size: int | None = None, num_classes: int | None = None) -> None:
        self.latency = latency
        self.input_size, self.num_classes = input_size, num_classes
        self.costs = CostMetrics(space, input_size, num_classes)
        super().__init__(space, metrics)

    def supported_metrics(self) -> tuple[str, ...]:
        out = ["accuracy"] if self.has_accuracy() else []
        if self.latency is not None:
            out.append("latency_ms")
        return tuple(out) + COST_METRICS

    def has_accuracy(self) -> bool:
        return True

    @abstractmethod
    def _accuracy_many(self, archs: list[Arch]) -> np.ndarray:
        """Accuracy (%) of each arch."""

    def _evaluate_many(self, archs: list[Arch]) -> list[dict[str, float]]:
        rows: list[dict[str, float]] = [{} for _ in archs]
        if "accuracy" in self.metrics:
            for row, acc in zip(rows, self._accuracy_many(archs)):
                row["accuracy"] = float(acc)
        if "latency_ms" in self.metrics:
            for row, ms in zip(rows, self.latency.latency_ms(archs)):
                row["latency_ms"] = float(ms)
        for m in COST_METRICS:
            if m in self.metrics:
                for row, arch in zip(rows, archs):
                    row[m] = self.costs(arch)[m]
        return rows

    #: the best accuracy any network could reach (100.0 for a measured %), None if unknown
    accuracy_ceiling: float | None = None

    def best_possible(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {m: None for m in self.metrics}
        if "accuracy" in self.metrics:
            out["accuracy"] = self.accuracy_ceiling
        if "latency_ms" in self.metrics:
            out["latency_ms"] = self.latency.minimum()
        for m in COST_METRICS:
            if m in self.metrics:
                out[m] = self.costs.minimum(m)
        return out

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["latency"] = None if self.latency is None else self.latency.describe()
        out["input_size"], out["num_classes"] = self.input_size, self.num_classes
        return out

    def close(self) -> None:
        if self.latency is not None:
            self.latency.close()
