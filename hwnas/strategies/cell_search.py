"""``darts`` / ``gdas``: differentiable cell search, one search per latency budget.

:class:`BudgetedCellSearch` is the search proper, shared by this strategy (``hwnas
explore --strategy darts``) and the pipeline's engines (``hwnas search --strategy
darts``): the relaxed supernet's weights and architecture parameters are warmed once by
a search without latency, then each budget runs its own short search from that state
with the predictor's differentiable latency in the architecture loss
(:mod:`hwnas.oneshot.differentiable`: DARTS first or second order, GDAS). The derived
cell is repaired towards the budget by greedy cheaper moves when the predictor still
puts it above (the loss bounds the *expected* latency of the distribution, not its
argmax). Like DARTS, which halves CIFAR-10's training images, the architecture
parameters learn on every other training image and the weights on the rest
(:func:`search_split`), so the validation split accuracies are reported on stays unseen.

CPU sizing (not the papers'): a few epochs per warm-up and per budget (the papers: 50),
an architecture learning rate of 0.01 (DARTS' 3e-4 does not move the parameters past
their initial noise in a few hundred steps) and the FBNetV2 engine's latency weight, 2.
The strategy, like every strategy, never times anything: its latency model is a fitted
predictor (``--predictor``) or one fitted on the evaluator's latency source.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from hwnas.strategies.base import SearchContext
from hwnas.strategies.supernet.search import BudgetOutcome, fit_to_budget
from hwnas.strategies.supernet.strategy import (MissingLatencyModel, MissingTrainingData,
                                                SupernetStrategy, find_attribute)
from hwnas.strategies.supernet.supernet import UnsupportedSpace
from spaces import Arch, Space
from spaces.core.errors import InvalidOption

log = logging.getLogger(__name__)

#: Spaces whose one-shot supernet can be relaxed (hwnas.oneshot.differentiable.Relaxable).
RELAXABLE_SPACES = ("nb201", "darts")
#: The methods and the spaces each searches: TopoNAS and EnTranNAS need the DARTS cell's
#: free choice of a node's inputs (NB201's edges are all fixed).
METHOD_SPACES = {"darts": RELAXABLE_SPACES, "gdas": RELAXABLE_SPACES,
                 "toponas": ("darts",), "entrannas": ("darts",)}
ALPHA_LR = 0.01
LATENCY_WEIGHT = 2.0
BATCH_SIZE = 64


def search_split(data: Any) -> Any:
    """``data`` with the training images halved: even ones train the weights, odd ones
    (the search's "validation") train the architecture parameters."""
    return replace(data, x_train=data.x_train[0::2], y_train=data.y_train[0::2],
                   x_val=data.x_train[1::2], y_val=data.y_train[1::2])


def decision_lists(space: Space, flat: np.ndarray) -> list[list[float]]:
    """A flat per-decision probability vector split into one list per decision."""
    out, at = [], 0
    for decision in space.decisions:
        out.append([float(p) for p in flat[at:at + len(decision)]])
        at += len(decision)
    return out


def check_relaxable_space(space: Space, method: str) -> None:
    """One sentence when ``method`` cannot search ``space``."""
    allowed = METHOD_SPACES.get(method, RELAXABLE_SPACES)
    if space.name not in allowed:
        what = ("cell spaces " + " and ".join(allowed) if len(allowed) > 1
                else f"{allowed[0]} cell space")
        why = ("a supernet with mixed ops on every edge" if len(allowed) > 1
               else "a node's inputs are a choice there")
        raise UnsupportedSpace(f"--strategy {method} searches the {what} ({why}), not {space.key}")


class BudgetedCellSearch:
    """Warm once, then one differentiable search per latency budget (module docstring)."""

    def __init__(self, space: Space, data: Any, input_size: int, method: str = "darts", *,
                 epochs: int = 2, second_order: bool = False, seed: int = 0,
                 latency_weight: float = LATENCY_WEIGHT) -> None:
        from hwnas.oneshot.differentiable import DifferentiableConfig

        check_relaxable_space(space, method)
        self.space, self.input_size, self.method = space, int(input_size), method
        self.data = search_split(data)
        self.num_classes = data.num_classes
        self.latency_weight = float(latency_weight)
        batch = max(2, min(BATCH_SIZE, len(self.data.y_train)))
        # checked now: a bad method, epochs or --second-order with gdas is one sentence
        options = dict(method="gdas" if method == "gdas" else "darts", epochs=int(epochs),
                       batch_size=batch, alpha_lr=ALPHA_LR, second_order=bool(second_order),
                       seed=int(seed))
        if method == "entrannas":
            from hwnas.oneshot.entrannas import EnTranNASConfig

            self.config = EnTranNASConfig(**options)
        else:
            if method not in METHOD_SPACES:
                raise InvalidOption(f"unknown cell search {method!r}; known: "
                                    f"{', '.join(METHOD_SPACES)}")
            if second_order and method == "gdas":
                DifferentiableConfig(**options)  # its one sentence
            self.config = DifferentiableConfig(**options)
        self._warm: tuple[Any, list[Any]] | None = None
        self.warmup_seconds = 0.0

    def _make(self, supernet: Any, seed: int, latency: Any = None) -> Any:
        """The method's search of ``supernet`` (DARTS / GDAS / TopoNAS on DARTS / EnTranNAS)."""
        from hwnas.oneshot.differentiable import DifferentiableSearch

        config = replace(self.config, seed=int(seed))
        if self.method == "entrannas":
            from hwnas.oneshot.entrannas import EnTranNASSearch

            return EnTranNASSearch(supernet, self.data, config, latency=latency)
        if self.method == "toponas":
            from hwnas.oneshot.toponas import TopologyConfig

            return DifferentiableSearch(supernet, self.data, config, latency=latency,
                                        topology=TopologyConfig())
        return DifferentiableSearch(supernet, self.data, config, latency=latency)

    def warmed(self) -> tuple[Any, list[Any]]:
        """The supernet and architecture parameters after one search without latency."""
        if self._warm is None:
            import torch

            from hwnas.oneshot import make_supernet

            began = time.perf_counter()
            torch.manual_seed(self.config.seed)
            supernet = make_supernet(self.space, self.num_classes, self.input_size)
            search = self._make(supernet, self.config.seed)
            search.run()
            self._warm = (supernet, [a.detach().clone() for a in search.arch_params])
            self.warmup_seconds = time.perf_counter() - began
        return self._warm

    def search(self, budget_ms: float, predictor: Any, avoid: set[str] = frozenset()
               ) -> BudgetOutcome:
        """The cell for ``budget_ms`` under ``predictor``; a derived cell the predictor puts
        over the budget, or one in ``avoid`` (arch strings), is repaired by cheaper moves."""
        import torch

        from hwnas.oneshot.differentiable import LatencyTerm

        began = time.perf_counter()
        warm, params = self.warmed()
        supernet = copy.deepcopy(warm)
        term = LatencyTerm(predictor, float(budget_ms), form="hinge", weight=self.latency_weight)
        search = self._make(supernet, self.config.seed + 1, term)
        with torch.no_grad():
            for mine, start in zip(search.arch_params, params):
                mine.copy_(start)
        result = search.run()
        with torch.no_grad():
            flat = supernet.decision_probs(search.probs()).detach().cpu().numpy().reshape(-1)
        lists = decision_lists(self.space, flat)
        derived = result.arch
        derived_ms = float(np.asarray(predictor.predict([derived]), dtype=float).reshape(-1)[0])
        arch, ms = derived, derived_ms
        if ms > budget_ms or self.space.to_string(arch) in avoid:
            arch, ms = fit_to_budget(self.space, arch, lists, predictor,
                                     min(float(budget_ms), 0.97 * derived_ms), max_moves=200)
        trace = [{"epoch": float(r.epoch), "val_loss": r.val_loss,
                  "expected_ms": float("nan") if r.expected_ms is None else r.expected_ms,
                  "derived_ms": float("nan") if r.predicted_ms is None else r.predicted_ms}
                 for r in result.history]
        expected = result.expected_ms
        return BudgetOutcome(float(budget_ms), arch,
                             float("nan") if expected is None else float(expected), float(ms),
                             derived, derived_ms, lists, time.perf_counter() - began, trace)


class DartsStrategy(SupernetStrategy):
    """DARTS (``second_order`` for the unrolled gradient) per latency budget; the budgets,
    sweep and predictor rules are the FBNetV2 supernet strategy's."""

    name = "darts"
    method = "darts"

    def __init__(self, seed: int = 0, batch_size: int = 1, predictor: Any = None,
                 budgets: Sequence[float] | None = None, sweep: int | None = None,
                 search_epochs: int = 2, second_order: bool = False,
                 latency_weight: float = LATENCY_WEIGHT, profile_archs: int = 150,
                 predictor_kind: str = "lut") -> None:
        super().__init__(seed=seed, batch_size=batch_size, predictor=predictor, budgets=budgets,
                         sweep=sweep, search_epochs=search_epochs,
                         latency_weight=latency_weight, profile_archs=profile_archs,
                         predictor_kind=predictor_kind)
        if second_order and self.method == "gdas":
            raise InvalidOption(f"--second-order applies to --strategy darts, toponas or "
                                f"entrannas (DARTS' unrolled gradient), not to {self.method}")
        self.search_epochs, self.second_order = int(search_epochs), bool(second_order)

    def options(self) -> dict[str, Any]:
        base = super().options()
        base.pop("search", None)  # the FBNetV2 search's settings are not this one's
        return {**base, "method": self.method, "search_epochs": self.search_epochs,
                "second_order": self.second_order, "alpha_lr": ALPHA_LR,
                "latency_weight": self.config.latency_weight}

    def check_space(self, space: Space) -> None:
        """One sentence for a space without a relaxable supernet (before any work)."""
        check_relaxable_space(space, self.method)

    def search(self, ctx: SearchContext) -> None:
        self.check_space(ctx.space)
        data = find_attribute(ctx.evaluator, "data")
        if data is None or not hasattr(data, "x_train"):
            raise MissingTrainingData(f"--strategy {self.method} trains on the evaluator's "
                                      f"data; use the train evaluator (--evaluator train)")
        input_size = find_attribute(ctx.evaluator, "input_size") or ctx.space.default_input_size
        if self.predictor is None:
            self.predictor = self._fit_predictor(ctx)
        budgets = self.resolve_budgets(ctx)[:max(ctx.remaining, 0)]
        self.outcomes = self.choose(ctx.space, data, input_size, budgets)
        ctx.evaluate([o.arch for o in self.outcomes])

    def choose(self, space: Space, data: Any, input_size: int, budgets: Sequence[float],
               on_budget: Any = None) -> list[BudgetOutcome]:
        if self.predictor is None:
            raise MissingLatencyModel(f"--strategy {self.method} needs a fitted latency "
                                      f"predictor to choose")
        runner = BudgetedCellSearch(space, data, input_size, self.method,
                                    epochs=self.search_epochs, second_order=self.second_order,
                                    seed=self.seed, latency_weight=self.config.latency_weight)
        outcomes = []
        for b in budgets:
            outcomes.append(runner.search(b, self.predictor))
            if on_budget is not None:
                on_budget(outcomes[-1])
        return outcomes


class GdasStrategy(DartsStrategy):
    """GDAS (Gumbel straight-through, one op per edge) per latency budget."""

    name = "gdas"
    method = "gdas"


class TopoNASStrategy(DartsStrategy):
    """TopoNAS (topology variables over a node's input subsets) on DARTS, per budget."""

    name = "toponas"
    method = "toponas"


class EnTranNASStrategy(DartsStrategy):
    """EnTranNAS (engine and transit cells, differentiable sparsification) per budget."""

    name = "entrannas"
    method = "entrannas"


__all__ = ["BudgetedCellSearch", "DartsStrategy", "EnTranNASStrategy", "GdasStrategy",
           "METHOD_SPACES", "RELAXABLE_SPACES", "TopoNASStrategy",
           "check_relaxable_space", "decision_lists", "search_split"]
