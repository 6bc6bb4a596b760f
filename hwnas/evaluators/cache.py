"""Per-architecture evaluation cache, kept in the run folder as append-only JSON lines.

Each batch is appended and fsync'ed as soon as it is evaluated, so a killed
run loses at most the batch in flight, and ``--resume`` replays the search
from its seed: every architecture already in the cache is answered from it
(same metrics, no re-training, no re-profiling), which reproduces the
uninterrupted history exactly.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from hwnas.evaluators.base import Evaluator
from spaces import Arch


class CachedEvaluator(Evaluator):
    """Wraps an evaluator; ``queries`` counts only evaluations the cache could not answer."""

    def __init__(self, inner: Evaluator, path: str | Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self.name = inner.name
        self._memo: dict[Arch, dict[str, Any]] = {}
        self.hits = 0
        self.last_seconds: list[float] = []
        super().__init__(inner.space, inner.metrics)
        self._load()

    def supported_metrics(self) -> tuple[str, ...]:
        return self.inner.metrics

    def _load(self) -> None:
        if not self.path.is_file():
            return
        with self.path.open() as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                    arch = Arch(entry["space"], tuple(entry["choices"]))
                    metrics = {m: float(entry["metrics"][m]) for m in self.metrics}
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a kill, or one from other metrics: re-evaluate
                self._memo[arch] = {"metrics": metrics, "eval_s": float(entry.get("eval_s", 0.0))}

    def __len__(self) -> int:
        return len(self._memo)

    def __contains__(self, arch: Arch) -> bool:
        return arch in self._memo

    def evaluate_many(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        archs = [self.space.validate(a) for a in archs]
        missing = list(dict.fromkeys(a for a in archs if a not in self._memo))
        self.hits += len(archs) - len(missing)
        if missing:
            start = time.perf_counter()
            results = self.inner.evaluate_many(missing)
            per_arch = (time.perf_counter() - start) / len(missing)
            self.queries += len(missing)
            lines = []
            for arch, metrics in zip(missing, results):
                self._memo[arch] = {"metrics": metrics, "eval_s": per_arch}
                lines.append(json.dumps({"space": arch.space, "choices": list(arch.choices),
                                         "arch": self.space.to_string(arch), "metrics": metrics,
                                         "eval_s": per_arch}))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as fh:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        self.last_seconds = [self._memo[a]["eval_s"] for a in archs]
        return [dict(self._memo[a]["metrics"]) for a in archs]

    def _evaluate_many(self, archs: list[Arch]) -> list[dict[str, float]]:
        """Uncached path (evaluate_many is the cached one): straight to the wrapped evaluator."""
        return self.inner.evaluate_many(archs)

    def best_possible(self) -> dict[str, float | None]:
        return self.inner.best_possible()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()
