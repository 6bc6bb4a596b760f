"""An evaluator that hands each batch to an executor: the one hook a search needs for scale-out.

``SearchContext.evaluate`` already gives the evaluator a whole batch of new,
independent candidates; this wrapper splits that batch over the executor's
workers, which rebuild the evaluator from a picklable recipe. Metrics are
computed by the same code as in-process, in request order, so the history
equals the local one for the same seed.

Live latency (a ``DeviceLatency`` source) is the exception: it is measured
here, on the device the user named, for the whole batch interleaved, after
the workers are done; timing it on several workers at once would time the
workers' load too (see :mod:`hwnas.executors.ray_profiling`).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.evaluators.base import Evaluator
from hwnas.executors.base import CRASH, LOST, EvaluationFailed, Executor, ExecutorError, Outcome
from hwnas.executors.jobs import EvaluatorRecipe
from spaces import Arch

Builder = Callable[[tuple[str, ...]], Evaluator]


def live_metrics(evaluator: Evaluator) -> tuple[str, ...]:
    """Metrics that must be measured on this machine's device, not on workers."""
    from hwnas.evaluators.latency_sources import DeviceLatency

    source = getattr(evaluator, "latency", None)
    if "latency_ms" in evaluator.metrics and isinstance(source, DeviceLatency):
        return ("latency_ms",)
    return ()


class ParallelEvaluator(Evaluator):
    """``inner`` answers for identity (describe, best_possible, live latency);
    ``build(metrics)`` rebuilds the rest on the executor's workers."""

    def __init__(self, inner: Evaluator, build: Builder, executor: Executor) -> None:
        self.inner, self.executor = inner, executor
        self.name = inner.name
        self.local_metrics = live_metrics(inner)
        remote = tuple(m for m in inner.metrics if m not in self.local_metrics)
        self.recipe = EvaluatorRecipe(build, remote) if remote else None
        self.last_seconds: list[float] = []
        super().__init__(inner.space, inner.metrics)

    def __getattr__(self, name: str) -> Any:
        """Anything else (``num_classes``, ``input_size``, ``latency``...) is the inner
        evaluator's, so code that inspects an evaluator sees through the wrapper."""
        if name == "inner":  # not set yet (unpickling): avoid recursing
            raise AttributeError(name)
        return getattr(self.inner, name)

    def supported_metrics(self) -> tuple[str, ...]:
        return self.inner.metrics

    def _evaluate_many(self, archs: list[Arch]) -> list[dict[str, float]]:
        rows: list[dict[str, float]] = [{} for _ in archs]
        seconds = np.zeros(len(archs))
        if self.recipe is not None:
            outcomes = self.executor.map_evaluate(self.recipe, archs)
            self._check(archs, outcomes)
            for i, (row, outcome) in enumerate(zip(rows, outcomes)):
                row.update(outcome.value or {})
                seconds[i] += outcome.seconds
        if self.local_metrics:
            start = time.perf_counter()
            for row, ms in zip(rows, self.inner.latency.latency_ms(archs)):
                row["latency_ms"] = float(ms)
            seconds += (time.perf_counter() - start) / len(archs)
        self.last_seconds = [float(s) for s in seconds]
        return rows

    def _check(self, archs: Sequence[Arch], outcomes: Sequence[Outcome]) -> None:
        if len(outcomes) != len(archs):  # an executor bug, not bad input
            raise RuntimeError(f"{self.executor.name} returned {len(outcomes)} outcomes for "
                               f"{len(archs)} architectures")
        failed = [(a, o) for a, o in zip(archs, outcomes) if not o.ok]
        if not failed:
            return
        arch, first = failed[0]
        where = self.space.to_string(arch) if self.space.is_valid(arch) else str(arch.choices)
        more = f" ({len(failed)} of {len(archs)} in this batch failed)" if len(failed) > 1 else ""
        if first.kind == CRASH:  # a bug on the worker: keep its traceback visible
            raise RuntimeError(f"evaluating {where} raised on a worker{more}:\n{first.error}")
        cls = ExecutorError if first.kind == LOST else EvaluationFailed
        raise cls(f"evaluating {where} failed{more}: {first.error.strip().splitlines()[0]}")

    def best_possible(self) -> dict[str, float | None]:
        return self.inner.best_possible()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()  # the executor is not part of a run's identity

    def close(self) -> None:
        if self.recipe is not None:
            self.executor.release(self.recipe)
        self.inner.close()


def parallel(evaluator: Evaluator, build: Builder, executor: Executor) -> Evaluator:
    """``evaluator`` itself for an in-process executor, else wrapped for ``executor``."""
    return ParallelEvaluator(evaluator, build, executor) if executor.distributed else evaluator
