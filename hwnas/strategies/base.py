"""The strategy contract: ``run(space, evaluator, objectives, n_queries) -> SearchResult``.

A strategy only proposes architectures and reads back metrics through a
:class:`SearchContext`; it never imports a device or a dataset. The context
owns the number of queries (distinct architectures evaluated), de-duplication,
the history table, progress reporting and the per-batch callback that lets
the run folder save progress, so every strategy (random, evolution, DPP, and
later NAO and the supernet) gets them identically.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import pandas as pd

from hwnas import pareto
from hwnas.objectives import Objective, feasible_mask, searched
from spaces import Arch, Space
from spaces.errors import HwnasError

BatchCallback = Callable[["SearchContext"], None]


@dataclass
class SearchResult:
    """What a search found. ``history`` has one row per evaluated architecture, in
    evaluation order: ``query`` (1-based), ``arch`` (the space's string form),
    one column per metric, ``feasible`` (meets every budget), ``batch``,
    ``eval_s`` (seconds evaluating it) and ``time_s`` (since the search
    started). ``front`` is the feasible, non-dominated subset of ``history``."""

    history: pd.DataFrame
    front: pd.DataFrame
    objectives: list[Objective]
    strategy: str
    info: dict[str, Any] = field(default_factory=dict)

    def best(self) -> pd.Series | None:
        """The front point with the best first searched objective (the most
        accurate feasible network for accuracy-first searches); None if no
        evaluated architecture meets the budgets."""
        if self.front.empty:
            return None
        return self.front.iloc[0]


class SearchContext:
    """A strategy's view of one search: propose archs, get metrics, stop after ``n_queries``."""

    def __init__(self, space: Space, evaluator: Any, objectives: Sequence[Objective], n_queries: int,
                 seed: int = 0, progress: bool = False, on_batch: BatchCallback | None = None,
                 label: str = "search") -> None:
        if not isinstance(n_queries, (int, np.integer)) or n_queries < 1:
            raise HwnasError(f"the number of queries must be a positive integer, got {n_queries!r}")
        self.space, self.evaluator = space, evaluator
        self.objectives = list(objectives)
        self.searched = searched(self.objectives)
        if not self.searched:
            raise HwnasError("at least one objective must be searched (not only budgeted)")
        missing = [o.name for o in self.objectives if o.name not in evaluator.metrics]
        if missing:
            raise HwnasError(f"the evaluator does not report {', '.join(missing)}")
        self.n_queries = int(n_queries)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.on_batch = on_batch
        self._known: dict[Arch, dict[str, float]] = {}
        self._rows: list[dict[str, Any]] = []
        self._batches = 0
        self._start = time.perf_counter()
        self._bar = None
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.n_queries, desc=label, unit="arch", dynamic_ncols=True)

    # ---- queries ---------------------------------------------------------------------
    @property
    def used(self) -> int:
        return len(self._rows)

    @property
    def remaining(self) -> int:
        return self.n_queries - self.used

    @property
    def done(self) -> bool:
        return self.remaining <= 0 or len(self._known) >= self.space.size

    def is_known(self, arch: Arch) -> bool:
        return arch in self._known

    def metrics_of(self, arch: Arch) -> dict[str, float] | None:
        return self._known.get(arch)

    # ---- evaluation -----------------------------------------------------------------
    def evaluate(self, archs: Sequence[Arch]) -> list[tuple[Arch, dict[str, float]]]:
        """Metrics of ``archs``: already evaluated ones from memory (free), new ones
        evaluated together as one batch, as many as the queries left allow (the rest
        are dropped, in order). Returns (arch, metrics) pairs in request order."""
        new: list[Arch] = []
        for a in archs:
            if a not in self._known and a not in new:
                new.append(a)
        new = new[:max(self.remaining, 0)]
        if new:
            start = time.perf_counter()
            results = self.evaluator.evaluate_many(new)
            seconds = getattr(self.evaluator, "last_seconds", None)
            if not seconds or len(seconds) != len(new):
                seconds = [(time.perf_counter() - start) / len(new)] * len(new)
            self._batches += 1
            now = time.perf_counter() - self._start
            for arch, metrics, sec in zip(new, results, seconds):
                self._known[arch] = metrics
                row = {"query": len(self._rows) + 1, "arch": self.space.to_string(arch)}
                row.update(metrics)
                row.update(batch=self._batches, eval_s=float(sec), time_s=now)
                self._rows.append(row)
            self._report()
            if self.on_batch is not None:
                self.on_batch(self)
        return [(a, self._known[a]) for a in archs if a in self._known]

    # ---- views ----------------------------------------------------------------------
    def history(self) -> pd.DataFrame:
        cols = ["query", "arch", *[o.name for o in self.objectives], "feasible", "batch",
                "eval_s", "time_s"]
        frame = pd.DataFrame(self._rows)
        if frame.empty:
            return pd.DataFrame(columns=cols)
        frame["feasible"] = feasible_mask(frame, self.objectives)
        return frame[cols]

    def front(self) -> pd.DataFrame:
        return pareto.front_of(self.history(), self.objectives)

    def evaluated(self) -> tuple[list[Arch], np.ndarray]:
        """Every evaluated arch and its searched objectives as a minimisation matrix."""
        archs = list(self._known)
        frame = pd.DataFrame([self._known[a] for a in archs])
        return archs, pareto.objective_matrix(frame, self.objectives)

    def feasible(self, archs: Sequence[Arch]) -> np.ndarray:
        frame = pd.DataFrame([self._known[a] for a in archs])
        return feasible_mask(frame, self.objectives) if len(archs) else np.zeros(0, bool)

    def violation(self, archs: Sequence[Arch]) -> np.ndarray:
        """Sum of relative budget overshoots (0 = feasible), for constrained ranking."""
        out = np.zeros(len(archs))
        for o in self.objectives:
            if o.budget is None:
                continue
            v = np.array([self._known[a][o.name] for a in archs], dtype=float)
            over = (o.budget - v) if o.maximise else (v - o.budget)
            out += np.maximum(0.0, over) / abs(o.budget)
        return out

    def constrained_rank(self, archs: Sequence[Arch], F: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Deb's constrained non-dominated rank and NSGA-II's crowding distance of ``archs``
        (evaluated) on the searched objectives: architectures that break a budget rank
        after every feasible one, ordered by their overshoot (crowding 0). ``F``: their
        minimisation matrix when the caller has it. The one order evolution's tournaments
        and the controllers' Pareto rewards use."""
        if F is None:
            frame = pd.DataFrame([self._known[a] for a in archs])
            F = pareto.objective_matrix(frame, self.objectives)
        violation = self.violation(archs)
        rank, crowd = np.zeros(len(archs)), np.zeros(len(archs))
        ok = violation == 0
        if ok.any():
            rank[ok], crowd[ok] = pareto.rank_and_crowding(F[ok])
        worst = rank[ok].max() + 1 if ok.any() else 0
        rank[~ok] = worst + 1 + violation[~ok]
        return rank, crowd

    def _report(self) -> None:
        if self._bar is None:
            return
        self._bar.n = self.used
        front = self.front()
        postfix = {"front": len(front)}
        if len(front):
            archs, F = self.evaluated()
            lo, hi = F.min(axis=0), F.max(axis=0)
            postfix["HV"] = f"{pareto.normalised_hypervolume(self.history(), self.objectives, lo, hi):.3f}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def result(self, strategy: str, info: dict[str, Any] | None = None) -> SearchResult:
        return SearchResult(self.history(), self.front(), self.objectives, strategy, dict(info or {}))


class Strategy(ABC):
    """A search strategy. Options go to the constructor (stored in config.json via
    :meth:`options`); :meth:`run` is the one entry point and :meth:`search` the
    part each strategy writes, in terms of a :class:`SearchContext`.

    Strategies should be *anytime*: their choices must not depend on the total
    number of queries, so the first k queries of a longer run equal a run of k queries
    (which is what makes ``--resume`` with a larger ``--queries`` exact).
    """

    name: ClassVar[str] = ""

    def __init__(self, seed: int = 0, batch_size: int = 1) -> None:
        if batch_size < 1:
            raise HwnasError(f"batch size must be at least 1, got {batch_size}")
        self.seed, self.batch_size = int(seed), int(batch_size)

    def options(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.batch_size}

    def run(self, space: Space, evaluator: Any, objectives: Sequence[Objective], n_queries: int, *,
            progress: bool = False, on_batch: BatchCallback | None = None) -> SearchResult:
        ctx = SearchContext(space, evaluator, objectives, n_queries, seed=self.seed, progress=progress,
                            on_batch=on_batch, label=self.name)
        try:
            self.search(ctx)
        finally:
            ctx.close()
        return ctx.result(self.name, {"options": self.options(), "queries": ctx.used})

    @abstractmethod
    def search(self, ctx: SearchContext) -> None:
        """Propose and evaluate architectures through ``ctx`` until ``ctx.done``."""

    # ---- helpers shared by strategies ----------------------------------------------
    @staticmethod
    def fresh_samples(ctx: SearchContext, n: int, exclude: Sequence[Arch] = (),
                      tries: int = 200) -> list[Arch]:
        """Up to ``n`` random archs not evaluated yet (nor in ``exclude``)."""
        out: list[Arch] = []
        taken = set(exclude)
        for _ in range(n * tries):
            if len(out) >= n:
                break
            a = ctx.space.sample(ctx.rng)
            if not ctx.is_known(a) and a not in taken:
                out.append(a)
                taken.add(a)
        return out
