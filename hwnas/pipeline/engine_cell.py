"""The differentiable cell-search engines: DARTS, GDAS, TopoNAS, EnTranNAS, one search per budget.

The budgeted-choice contract of :mod:`hwnas.pipeline.engines` on a cell space whose
supernet offers the relaxation protocol (``nb201``, ``darts``;
:mod:`hwnas.oneshot.differentiable`). As the FBNetV2 engine does: the supernet's weights
and architecture parameters are warmed once per process by a search without a latency
term, then every target runs its own short search from that state with the device
predictor's differentiable latency in the architecture loss (hinge: zero under the
budget). The derived cell is repaired towards the budget by greedy cheaper moves when
the predictor still puts it above (the latency term bounds the *expected* latency of
the distribution, not its argmax), then trained alone and measured by the pipeline's
loop like every engine's choice.

Data: like DARTS, which splits CIFAR-10's training images in two, the architecture
parameters learn on a held-apart half of the training split (every other image), the
weights on the other half; the validation split the pipeline reports stays unseen by
the search.

``--search-epochs`` epochs per warm-up and per budget; the CPU sizing is
:mod:`hwnas.strategies.cell_search`'s.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from hwnas.pipeline.engines import Choice, Engine
from hwnas.pipeline.state import PipelineState

log = logging.getLogger(__name__)


class CellSearchEngine(Engine):
    """DARTS (``--strategy darts``, ``--second-order`` for the unrolled gradient), GDAS,
    TopoNAS or EnTranNAS per latency target, by
    :class:`hwnas.strategies.cell_search.BudgetedCellSearch`."""

    def __init__(self, state: PipelineState) -> None:
        from hwnas.strategies.cell_search import BudgetedCellSearch

        super().__init__(state)
        s = state.settings
        self.name = s.engine
        self.runner = BudgetedCellSearch(state.space, state.data, state.input_size, s.engine,
                                         epochs=int(s.search_epochs),
                                         second_order=bool(s.second_order), seed=int(s.seed))
        self._said_warm = False

    def choose(self, targets: Sequence[float], predictor: Any,
               avoid: Sequence[set[str]] | None = None,
               on_target: Callable[[Choice], None] | None = None) -> list[Choice]:
        self.runner.warmed()
        if not self._said_warm:
            self._said_warm = True
            self.state.say(f"  {self.name} warm-up: {self.state.settings.search_epochs} "
                           f"epoch(s) of weights and architecture parameters, "
                           f"{self.runner.warmup_seconds:.0f} s")
        space = self.state.space
        out = []
        for i, target in enumerate(targets):
            o = self.runner.search(float(target), predictor, avoid[i] if avoid else set())
            arch = self._within_macs(o.arch, o.probs)
            repaired = arch != o.argmax
            ms = o.predicted_ms if arch == o.arch else float(predictor.predict([arch])[0])
            out.append(Choice(float(target), arch, float(ms), o.expected_ms, o.probs, o.seconds,
                              {"how": f"{self.name} + repair" if repaired else self.name,
                               "derived": space.to_string(o.argmax)}))
            if on_target is not None:
                on_target(out[-1])
        return out


__all__ = ["CellSearchEngine"]
