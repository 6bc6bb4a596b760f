"""The default executor: every job runs here, in order, in this process.

It runs exactly the worker code the Ray executor ships (``evaluate_chunk``,
``DeviceWorker``), so "local" is the reference the distributed results must
equal, and a profile run behaves the same whichever executor ran it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from hwnas.executors.base import Executor, ExecutorError, Outcome
from hwnas.executors.jobs import DeviceWorker, EvaluatorRecipe, ProfileJob, evaluate_chunk, forget
from hwnas.executors.profiling import (GroupEvent, ProfileReport, commit, pending, split, started,
                                       unique)
from spaces import Arch


class LocalExecutor(Executor):
    """In-process, sequential; no options."""

    name = "local"

    def map_evaluate(self, recipe: EvaluatorRecipe, archs: Sequence[Arch]) -> list[Outcome]:
        return evaluate_chunk(recipe, list(archs)) if archs else []

    def release(self, recipe: EvaluatorRecipe) -> None:
        forget(recipe.key)

    def profile(self, job: ProfileJob, archs: "Sequence[Arch | str]", store: Any,
                on_group: Callable[[GroupEvent], None] | None = None) -> ProfileReport:
        strings = unique(job, archs)
        report = ProfileReport(requested=len(strings))
        worker = DeviceWorker(job)
        try:
            info = worker.info()
            if info["error"]:
                raise ExecutorError(info["error"])
            fp = info["fingerprint"]
            report.fingerprints[fp["id"]] = fp
            todo = pending(store, job, fp, strings)
            report.skipped = len(strings) - len(todo)
            if on_group is not None:
                on_group(started(report, fp, job))
            for group in split(todo, job.group):
                event = commit(store, job, worker.measure(group), report)
                if on_group is not None:
                    on_group(event)
        finally:
            worker.close()
        return report
