"""Search a trained supernet: NSGA-II on inherited accuracy x predicted latency.

Once the supernet is trained (stage one of SPOS / One-Shot / BigNAS /
AttentiveNAS), evaluating an architecture costs a BN recalibration and one pass
over the validation split, and its latency costs one predictor call. So the
second stage can afford what standalone training cannot: a population search
over the whole latency range, whose archive is a dense front from which every
budget takes its most accurate member. The search is NSGA-II (Deb et al. 2002):
binary tournaments on (non-domination rank, crowding distance), children by
uniform crossover and one-decision mutation, elitist survival. SPOS searches
its supernet with an evolutionary algorithm too; one with two objectives keeps
the whole trade-off instead of one constrained optimum per run.

The module knows neither a device nor a dataset: accuracy and latency reach it
as functions of a list of architectures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from hwnas.pareto import rank_and_crowding
from spaces import Arch, Space

log = logging.getLogger(__name__)

Scores = Callable[[list[Arch]], np.ndarray]


@dataclass
class Archive:
    """Every architecture evaluated on the supernet: arch -> inherited accuracy (%)."""

    accuracy: dict[Arch, float] = field(default_factory=dict)

    def missing(self, archs: Sequence[Arch]) -> list[Arch]:
        seen: set[Arch] = set()
        out = []
        for a in archs:
            if a not in self.accuracy and a not in seen:
                seen.add(a)
                out.append(a)
        return out

    def __len__(self) -> int:
        return len(self.accuracy)


def crossover(space: Space, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
    """Uniform crossover: each decision from either parent; an invalid child is ``a``."""
    take = rng.random(len(a.choices)) < 0.5
    child = Arch(space.key, tuple(int(x if t else y) for x, y, t in zip(a.choices, b.choices, take)))
    return child if space.is_valid(child) else a


def _tournament(rank: np.ndarray, crowd: np.ndarray, rng: np.random.Generator) -> int:
    i, j = rng.integers(len(rank), size=2)
    if rank[i] != rank[j]:
        return int(i if rank[i] < rank[j] else j)
    return int(i if crowd[i] >= crowd[j] else j)


def _survivors(points: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the ``keep`` best rows by rank, then crowding (NSGA-II's elitism)."""
    rank, crowd = rank_and_crowding(points)
    order = np.lexsort((-crowd, rank))
    return order[:keep]


def nsga2(space: Space, accuracy: Scores, latency: Scores, evaluations: int,
          population: int = 32, seed: int = 0, archive: Archive | None = None,
          start: Sequence[Arch] = ()) -> Archive:
    """Evaluate up to ``evaluations`` new architectures (accuracy from ``accuracy``, which
    the archive memoises) and return the archive. ``start`` seeds the first population
    (e.g. the previous search's best under a refitted predictor); the rest is drawn
    uniformly. Latency is re-predicted for every generation, never memoised: a refitted
    predictor changes it."""
    rng = np.random.default_rng(seed)
    archive = archive if archive is not None else Archive()
    budget = int(evaluations)

    def evaluate(archs: list[Arch]) -> None:
        nonlocal budget
        new = archive.missing(archs)[:max(0, budget)]
        if new:
            for arch, acc in zip(new, np.asarray(accuracy(new), dtype=float).reshape(-1)):
                archive.accuracy[arch] = float(acc)
            budget -= len(new)

    pop = list(dict.fromkeys(start))[:population]
    draws = 0
    while len(pop) < population and draws < 50 * population:
        arch = space.sample(rng)
        draws += 1
        if arch not in pop:
            pop.append(arch)
    evaluate(pop)
    pop = [a for a in pop if a in archive.accuracy]
    stale = 0
    while budget > 0 and pop and stale < 20:
        points = _points(pop, archive, latency)
        rank, crowd = rank_and_crowding(points)
        children: list[Arch] = []
        for _ in range(population):
            a = pop[_tournament(rank, crowd, rng)]
            b = pop[_tournament(rank, crowd, rng)]
            child = space.mutate(crossover(space, a, b, rng), rng)
            children.append(child)
        before = len(archive)
        evaluate(children)
        stale = stale + 1 if len(archive) == before else 0
        merged = list(dict.fromkeys(pop + [c for c in children if c in archive.accuracy]))
        pop = [merged[i] for i in _survivors(_points(merged, archive, latency), population)]
    log.info("one-shot search: %d architectures evaluated on the supernet", len(archive))
    return archive


def _points(archs: list[Arch], archive: Archive, latency: Scores) -> np.ndarray:
    """Objectives to minimise: (-accuracy, predicted latency)."""
    acc = np.array([archive.accuracy[a] for a in archs], dtype=float)
    ms = np.asarray(latency(archs), dtype=float).reshape(-1)
    return np.stack([-acc, ms], axis=1)


def search_band(space: Space, accuracy: Scores, latency: Scores, archive: Archive,
                low_ms: float, high_ms: float, evaluations: int, seed: int = 0,
                parents: int = 8, per_generation: int = 8) -> list[Arch]:
    """SPOS's constrained evolution (Guo et al. 2020, stage two) for one latency band:
    children of the archive's most accurate members predicted under ``high_ms`` (mutation
    of a crossover) are kept only when predicted in ``(low_ms, high_ms]``, and the best of
    them breed the next generation. The pipeline calls it where two budgets got the same
    network: NSGA-II's crowding spreads its archive over the whole range, so a band between
    two budgets may hold few members; this spends a few more evaluations exactly there.
    Returns the architectures it evaluated (fewer than ``evaluations`` when the band holds
    no new architecture the mutations reach)."""
    rng = np.random.default_rng(seed)
    evaluated: list[Arch] = []

    def ranked_parents() -> list[Arch]:
        archs = list(archive.accuracy)
        ms = dict(zip(archs, np.asarray(latency(archs), dtype=float).reshape(-1)))
        under = [a for a in archs if ms[a] <= high_ms]
        above = [a for a in archs if ms[a] > high_ms]
        best = sorted(under, key=lambda a: -archive.accuracy[a])[:parents]
        # the nearest slower members: crossing with them moves a child into the band
        return best + sorted(above, key=lambda a: ms[a])[:parents]

    stale = 0
    while len(evaluated) < evaluations and stale < 3:
        pool = ranked_parents()
        if not pool:
            break
        want = min(per_generation, evaluations - len(evaluated))
        drawn: list[Arch] = []
        for _ in range(32 * want):
            a, b = pool[int(rng.integers(len(pool)))], pool[int(rng.integers(len(pool)))]
            child = space.mutate(crossover(space, a, b, rng), rng)
            if child not in archive.accuracy and child not in drawn:
                drawn.append(child)
        if not drawn:
            break
        ms = np.asarray(latency(drawn), dtype=float).reshape(-1)
        inside = [c for c, m in zip(drawn, ms) if low_ms < m <= high_ms][:want]
        if not inside:
            stale += 1
            continue
        stale = 0
        for arch, acc in zip(inside, np.asarray(accuracy(inside), dtype=float).reshape(-1)):
            archive.accuracy[arch] = float(acc)
        evaluated += inside
    log.info("band search (%.4g, %.4g] ms: %d architectures evaluated", low_ms, high_ms,
             len(evaluated))
    return evaluated


def best_under(archive: Archive, predicted_ms: dict[Arch, float], target_ms: float,
               avoid: set[Arch] = frozenset()) -> Arch:
    """The most accurate archived architecture predicted under ``target_ms`` (ties: the
    faster); if none is, the fastest one. ``avoid`` is never offered unless nothing else
    is left."""
    pool = [a for a in archive.accuracy if a not in avoid] or list(archive.accuracy)
    fits = [a for a in pool if predicted_ms[a] <= target_ms]
    if not fits:
        return min(pool, key=lambda a: predicted_ms[a])
    return max(fits, key=lambda a: (archive.accuracy[a], -predicted_ms[a]))


__all__ = ["Archive", "best_under", "crossover", "nsga2", "search_band"]
