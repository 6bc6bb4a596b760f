"""Random search with parameter sharing (Li & Talwalkar, "Random Search and Reproducibility
for Neural Architecture Search", UAI 2019) as the ``rsps`` strategy.

The paper's baseline that ENAS must beat: train a supernet by sampling architectures
uniformly (here any ``hwnas supernet train`` checkpoint; ``--sampler uniform`` is the
paper's), then draw random architectures, rank them cheaply with the shared weights on a
validation minibatch, and spend the full evaluation only on the best of them.

Each round draws ``screen * n`` fresh random architectures, scores each by its accuracy
on one fixed validation minibatch with the shared weights as they are (milliseconds; not
counted as a query), and evaluates the top ``n`` through the context -- inherited
accuracy after BN recalibration plus the evaluator's latency, one query each. The front
and the choice under the budgets are the context's, as for every strategy. Hardware-aware
part: when the run has a ``latency_ms`` budget and the latency source is cheap (a table or
a predictor), screened candidates over the budget are dropped before ranking.

Kept: uniform random proposals, shared-weight minibatch screening, full evaluation of the
top few. Simplified: the paper screens 1,000 architectures once and fully evaluates the
top 10; here rounds of ``screen * n`` keep the strategy anytime (a run of k queries is
the first k queries of a longer one).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from hwnas.oneshot.evaluate import shared_weight_accuracy
from hwnas.strategies.base import SearchContext, SearchResult, Strategy
from hwnas.strategies.shared_weights import cheap_latency, supernet_and_data
from spaces import Arch
from spaces.errors import HwnasError


class RSPSStrategy(Strategy):
    name = "rsps"

    def __init__(self, seed: int = 0, batch_size: int = 1, screen: int = 10,
                 screen_images: int = 256) -> None:
        super().__init__(seed, batch_size)
        if isinstance(screen, bool) or not isinstance(screen, int) or screen < 1:
            raise HwnasError(f"rsps screens at least 1 candidate per evaluation, got {screen!r}")
        if isinstance(screen_images, bool) or not isinstance(screen_images, int) or screen_images < 2:
            raise HwnasError(f"rsps screens on at least 2 validation images, got {screen_images!r}")
        self.screen, self.screen_images = screen, screen_images
        self.screened = 0

    def options(self) -> dict[str, Any]:
        return {**super().options(), "screen": self.screen, "screen_images": self.screen_images}

    def run(self, *args: Any, **kwargs: Any) -> SearchResult:
        self.screened = 0
        result = super().run(*args, **kwargs)
        result.info["screened"] = self.screened
        return result

    def check_evaluator(self, evaluator: Any) -> None:
        """Refuse, before a run folder is written, an evaluator without a supernet."""
        supernet_and_data(evaluator, self.name)

    def _within_budget(self, ctx: SearchContext, pool: list[Arch]) -> list[Arch]:
        """Candidates a cheap latency source puts within the latency budget (all of them
        when there is no such budget or source, or when none is within it)."""
        budget = next((o.budget for o in ctx.objectives
                       if o.name == "latency_ms" and o.budget is not None and not o.maximise), None)
        source = cheap_latency(ctx.evaluator)
        if budget is None or source is None:
            return pool
        ms = np.asarray(source.latency_ms(pool), dtype=float)
        kept = [a for a, m in zip(pool, ms) if m <= budget]
        return kept or pool

    def search(self, ctx: SearchContext) -> None:
        supernet, data = supernet_and_data(ctx.evaluator, self.name)
        pick = ctx.rng.choice(len(data.y_val), size=min(self.screen_images, len(data.y_val)),
                              replace=False)
        x, y = data.x_val[torch.as_tensor(pick)], data.y_val[torch.as_tensor(pick)]
        while not ctx.done:
            n = min(self.batch_size, ctx.remaining)
            pool = self.fresh_samples(ctx, n * self.screen)
            if not pool:
                return
            self.screened += len(pool)
            candidates = self._within_budget(ctx, pool)
            scores = shared_weight_accuracy(supernet, candidates, x, y)
            order = np.argsort(-scores, kind="stable")[:n]
            ctx.evaluate(self._ranked(candidates, order))

    @staticmethod
    def _ranked(pool: Sequence[Arch], order: np.ndarray) -> list[Arch]:
        return [pool[int(i)] for i in order]
