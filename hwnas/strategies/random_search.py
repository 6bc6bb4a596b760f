"""Random search: the baseline every other strategy has to beat."""

from __future__ import annotations

from hwnas.strategies.base import SearchContext, Strategy


class RandomSearch(Strategy):
    """Uniform samples over the space (distinct), evaluated ``batch_size`` at a time."""

    name = "random"

    def search(self, ctx: SearchContext) -> None:
        while not ctx.done:
            batch = self.fresh_samples(ctx, min(self.batch_size, ctx.remaining))
            if not batch:
                return
            ctx.evaluate(batch)
