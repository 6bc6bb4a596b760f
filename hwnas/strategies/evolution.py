"""Regularized evolution (Real et al., AAAI 2019), multi-objective by rank and crowding.

Aging evolution: a fixed-size population; each step draws ``sample_size``
members at random, mutates the tournament winner (one decision changed), adds
the child and removes the *oldest* member (not the worst), which keeps the
population young and the search robust to lucky evaluations.

Tournament order ("fitness"):

* several searched objectives: constrained non-dominated rank, then NSGA-II
  crowding distance, both computed over the current population. Members that
  break a budget rank after all feasible ones, ordered by their overshoot
  (Deb's constrained domination).
* one searched objective with budgets: a scalar reward, MONAS's constraint
  form by default (``reward="mnasnet-soft"`` etc. selects another).
* one objective, no budget: the objective itself.

``batch_size`` children are bred per step from independent tournaments and
evaluated together (so live profiling can interleave them); the same number
of oldest members then leaves.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from hwnas import rewards
from hwnas.strategies.base import SearchContext, Strategy
from spaces import Arch
from spaces.errors import HwnasError


class RegularizedEvolution(Strategy):
    name = "evolution"

    def __init__(self, seed: int = 0, batch_size: int = 1, population: int = 20,
                 sample_size: int | None = None, reward: str | None = None) -> None:
        super().__init__(seed, batch_size)
        if population < 2:
            raise HwnasError(f"--population must be at least 2, got {population}")
        if sample_size is None:  # Real et al. use about a quarter of the population
            sample_size = max(2, min(5, population // 4 or 1)) if population >= 2 else 1
        if not 1 <= sample_size <= population:
            raise HwnasError(f"the tournament size must be between 1 and the population "
                             f"({population}), got {sample_size}")
        if reward is not None and reward not in rewards.REWARDS:
            raise HwnasError(f"unknown reward {reward!r}; known: {', '.join(rewards.REWARDS)}")
        self.population, self.sample_size, self.reward = population, sample_size, reward

    def options(self) -> dict[str, Any]:
        return {**super().options(), "population": self.population,
                "sample_size": self.sample_size, "reward": self.reward}

    # ---- fitness --------------------------------------------------------------------
    def _sort_keys(self, ctx: SearchContext, members: list[Arch]) -> np.ndarray:
        """One sortable key per member, smaller = better (lexicographic rows)."""
        metrics = {o.name: np.array([ctx.metrics_of(a)[o.name] for a in members], dtype=float)
                   for o in ctx.objectives}
        if len(ctx.searched) == 1:
            has_budget = any(o.budget is not None for o in ctx.objectives)
            if has_budget or self.reward:
                score = rewards.scalariser(ctx.objectives, self.reward or "monas")(metrics)
            else:
                score = -ctx.searched[0].to_min(metrics[ctx.searched[0].name])
            return np.column_stack([-score])
        F = np.column_stack([o.to_min(metrics[o.name]) for o in ctx.searched])
        rank, crowd = ctx.constrained_rank(members, F)  # infeasible ones last, by overshoot
        return np.column_stack([rank, -crowd])

    def _winner(self, ctx: SearchContext, pop: list[Arch]) -> Arch:
        keys = self._sort_keys(ctx, pop)
        picks = ctx.rng.choice(len(pop), size=min(self.sample_size, len(pop)), replace=False)
        best = min(picks, key=lambda i: tuple(keys[i]))
        return pop[int(best)]

    def _child(self, ctx: SearchContext, parent: Arch, taken: set[Arch]) -> Arch | None:
        for _ in range(50):
            child = ctx.space.mutate(parent, ctx.rng)
            if not ctx.is_known(child) and child not in taken:
                return child
        fallback = self.fresh_samples(ctx, 1, exclude=list(taken))
        return fallback[0] if fallback else None

    # ---- loop -----------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> None:
        population: deque[Arch] = deque()
        while len(population) < self.population and not ctx.done:
            n = min(self.batch_size, self.population - len(population), ctx.remaining)
            batch = self.fresh_samples(ctx, n)
            if not batch:
                return
            population.extend(a for a, _ in ctx.evaluate(batch))
        while not ctx.done:
            pop = list(population)
            children: list[Arch] = []
            taken: set[Arch] = set()
            for _ in range(min(self.batch_size, ctx.remaining)):
                child = self._child(ctx, self._winner(ctx, pop), taken)
                if child is None:
                    break
                children.append(child)
                taken.add(child)
            if not children:
                return
            done = [a for a, _ in ctx.evaluate(children)]
            population.extend(done)
            for _ in done:
                if len(population) > self.population:
                    population.popleft()
