"""The differentiable cell-search engines: DARTS and GDAS, one search per latency budget.

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

CPU sizing (the pipeline's, not the papers'): ``--search-epochs`` epochs per warm-up and
per budget (the papers: 50 / 240), an architecture learning rate of 0.01 (DARTS: 3e-4,
which does not move the parameters past their initial noise in a few hundred steps)
and latency weight 2, the FBNetV2 engine's.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.pipeline.engines import Choice, Engine, _predict
from hwnas.pipeline.settings import CELL_ENGINES, RELAXABLE_SPACES
from hwnas.pipeline.state import PipelineState

log = logging.getLogger(__name__)

ALPHA_LR = 0.01
LATENCY_WEIGHT = 2.0
BATCH_SIZE = 64


def search_split(data: Any) -> Any:
    """``data`` with the training images halved: even ones train the weights, odd ones
    (as the search's "validation") train the architecture parameters."""
    return replace(data, x_train=data.x_train[0::2], y_train=data.y_train[0::2],
                   x_val=data.x_train[1::2], y_val=data.y_train[1::2])


def decision_lists(space: Any, flat: np.ndarray) -> list[list[float]]:
    """A flat per-decision probability vector split into one list per decision."""
    out, at = [], 0
    for decision in space.decisions:
        out.append([float(p) for p in flat[at:at + len(decision)]])
        at += len(decision)
    return out


class CellSearchEngine(Engine):
    """DARTS (``--strategy darts``, ``--second-order`` for the unrolled gradient) or GDAS
    (``--strategy gdas``) per latency target (see the module docstring)."""

    def __init__(self, state: PipelineState) -> None:
        super().__init__(state)
        self.name = state.settings.engine
        self._warm: Any = None           # (supernet, alphas) after the warm-up search
        self._data = search_split(state.data)

    def _config(self, seed: int) -> Any:
        from hwnas.oneshot.differentiable import DifferentiableConfig

        s = self.state.settings
        batch = max(2, min(BATCH_SIZE, len(self._data.y_train)))
        return DifferentiableConfig(method=self.name, epochs=int(s.search_epochs),
                                    batch_size=batch, alpha_lr=ALPHA_LR,
                                    second_order=bool(s.second_order), seed=int(seed))

    def _warmed(self) -> tuple[Any, list[Any]]:
        """The supernet and architecture parameters after one search without latency."""
        if self._warm is None:
            import torch

            from hwnas.oneshot import make_supernet
            from hwnas.oneshot.differentiable import DifferentiableSearch

            st, s = self.state, self.state.settings
            torch.manual_seed(s.seed)
            supernet = make_supernet(st.space, st.data.num_classes, st.input_size)
            began = time.perf_counter()
            search = DifferentiableSearch(supernet, self._data, self._config(s.seed))
            search.run()
            self._warm = (supernet, [a.detach().clone() for a in search.alphas])
            st.say(f"  {self.name} warm-up: {s.search_epochs} epoch(s) of weights and "
                   f"architecture parameters, {time.perf_counter() - began:.0f} s")
        return self._warm

    def _search(self, target: float, predictor: Any) -> Any:
        import torch

        from hwnas.oneshot.differentiable import DifferentiableSearch, LatencyTerm

        supernet, alphas = self._warmed()
        supernet = copy.deepcopy(supernet)
        term = LatencyTerm(predictor, float(target), form="hinge", weight=LATENCY_WEIGHT)
        search = DifferentiableSearch(supernet, self._data,
                                      self._config(self.state.settings.seed + 1), latency=term)
        with torch.no_grad():
            for mine, warm in zip(search.alphas, alphas):
                mine.copy_(warm)
        return search.run(), supernet

    def choose(self, targets: Sequence[float], predictor: Any,
               avoid: Sequence[set[str]] | None = None,
               on_target: Callable[[Choice], None] | None = None) -> list[Choice]:
        import torch

        from hwnas.strategies.supernet.search import fit_to_budget

        space = self.state.space
        out = []
        for i, target in enumerate(targets):
            result, supernet = self._search(float(target), predictor)
            with torch.no_grad():
                probs = [torch.softmax(a, dim=-1) for a in result.alphas]
                flat = supernet.decision_probs(probs).detach().cpu().numpy().reshape(-1)
            lists = decision_lists(space, flat)
            arch, how = result.arch, self.name
            ms = float(_predict(predictor, [arch])[0])
            tried = avoid[i] if avoid else set()
            if ms > target or space.to_string(arch) in tried:
                arch, _ = fit_to_budget(space, arch, lists, predictor,
                                        min(float(target), 0.97 * ms), max_moves=200)
                how = f"{self.name} + repair (derived cell predicted over the budget or tried)"
            arch = self._within_macs(arch, lists)
            out.append(Choice(float(target), arch, float(_predict(predictor, [arch])[0]),
                              float(result.expected_ms or float("nan")), lists, result.seconds,
                              {"how": how, "derived": space.to_string(result.arch)}))
            if on_target is not None:
                on_target(out[-1])
        return out


__all__ = ["CELL_ENGINES", "RELAXABLE_SPACES", "CellSearchEngine", "decision_lists",
           "search_split"]
