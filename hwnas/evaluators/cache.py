"""Per-architecture evaluation cache, kept in the run folder as append-only JSON lines.

Each batch is appended and fsync'ed as soon as it is evaluated, so a killed
run loses at most the batch in flight, and ``--resume`` replays the search
from its seed: every architecture already in the cache is answered from it
(same metrics, no re-training, no re-profiling), which reproduces the
uninterrupted history exactly.

An append is all or nothing (:func:`spaces.core.atomic_append`: a full disk cuts
the file back), so the only damage a kill can leave is an unfinished *last* line,
which is skipped, and cut off before the next append. Anything else that does not
parse -- a line in the middle, bytes that are not text -- means the file was
damaged, and opening it fails with one sentence naming the file and line, before
the run folder is touched.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from hwnas.evaluators.base import Evaluator
from spaces import Arch
from spaces.core import OutputError, atomic_append
from spaces.core.errors import DamagedFile


# A run's evaluation cache was damaged (not written by an interrupted run).
CacheFileError = DamagedFile


def read_cache(path: str | Path) -> tuple[list[tuple[Arch, dict[str, Any]]], int | None]:
    """(arch, entry) of every line of a cache file, and the byte offset of an unfinished
    last line (None when there is none); CacheFileError naming the file for damage."""
    path = Path(path)
    if not path.is_file():
        return [], None
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CacheFileError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CacheFileError(f"{path} is corrupt (not text); move it away to re-evaluate "
                             f"from scratch") from None
    lines = text.split("\n")
    entries, cut_at = [], None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            arch = Arch(entry["space"], tuple(int(c) for c in entry["choices"]))
        except (ValueError, KeyError, TypeError):
            if number == len(lines):  # the unfinished last line of a killed run
                cut_at = raw.rfind(b"\n") + 1
                continue
            raise CacheFileError(f"{path} line {number} is corrupt; move the file away to "
                                 f"re-evaluate from scratch") from None
        entries.append((arch, entry))
    return entries, cut_at


class CachedEvaluator(Evaluator):
    """Wraps an evaluator; ``queries`` counts only evaluations the cache could not answer."""

    def __init__(self, inner: Evaluator, path: str | Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self.name = inner.name
        self._memo: dict[Arch, dict[str, Any]] = {}
        self._cut_at: int | None = None  # where an unfinished last line starts
        self.hits = 0
        self.last_seconds: list[float] = []
        super().__init__(inner.space, inner.metrics)
        self._load()

    def supported_metrics(self) -> tuple[str, ...]:
        return self.inner.metrics

    def _load(self) -> None:
        entries, self._cut_at = read_cache(self.path)
        for arch, entry in entries:
            try:
                metrics = {m: float(entry["metrics"][m]) for m in self.metrics}
            except (KeyError, TypeError, ValueError):
                continue  # an entry with other metrics: re-evaluate
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
            self._cut_unfinished()
            atomic_append(self.path, "\n".join(lines) + "\n")
        self.last_seconds = [self._memo[a]["eval_s"] for a in archs]
        return [dict(self._memo[a]["metrics"]) for a in archs]

    def _cut_unfinished(self) -> None:
        """Drop the unfinished last line a kill left (its architecture is evaluated again),
        so the next entry does not continue it."""
        if self._cut_at is None:
            return
        try:
            os.truncate(self.path, self._cut_at)
        except OSError as error:
            raise OutputError(f"cannot write {self.path}: {error.strerror or error}") from None
        self._cut_at = None

    def _evaluate_many(self, archs: list[Arch]) -> list[dict[str, float]]:
        """Uncached path (evaluate_many is the cached one): straight to the wrapped evaluator."""
        return self.inner.evaluate_many(archs)

    def best_possible(self) -> dict[str, float | None]:
        return self.inner.best_possible()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()
