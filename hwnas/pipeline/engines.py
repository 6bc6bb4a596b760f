"""The search engines behind one budgeted-choice contract: ``choose(targets, predictor)``.

Both engines see the device only through the predictor they are handed, so the
budget loop can hand them a refitted one in a later round:

* :class:`SupernetEngine` warms the FBNetV2 supernet's shared weights once per
  process, then runs one alpha search per latency target from the warmed state
  (``predict_soft`` of the architecture distribution is in its loss);
* :class:`NaoEngine` runs one NAO search (candidates trained briefly, latency from
  the predictor), then answers each target with the most accurate searched
  network the current predictor puts under it;
* :class:`~hwnas.pipeline.engine_oneshot.OneShotEngine` trains one weight-sharing
  supernet (or reuses one) and answers every target from an NSGA-II archive of
  inherited accuracy x predicted latency.

An optional MACs budget is enforced on every choice by greedy cheaper moves
(``choosing.within_macs``, with counted MACs as the cost model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.pipeline.choosing import CountedMacs, split_budgets, within_macs
from hwnas.pipeline.state import PipelineState
from spaces import Arch


@dataclass
class Choice:
    """An engine's answer for one latency target."""

    target_ms: float
    arch: Arch
    predicted_ms: float                  # by the predictor handed to ``choose``
    expected_ms: float = float("nan")    # supernet: predict_soft of softmax(alpha)
    probs: list[list[float]] | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Engine:
    """``choose(targets, predictor, avoid)`` -> one Choice per target; ``avoid[i]`` holds
    arch strings already tried for target ``i`` (an engine should not offer them again)."""

    name = ""

    def __init__(self, state: PipelineState) -> None:
        self.state = state
        _, self.macs_budget = split_budgets(state.settings)
        self.macs_model = (CountedMacs(state.space, state.input_size, state.data.num_classes)
                           if self.macs_budget else None)

    def choose(self, targets: Sequence[float], predictor: Any,
               avoid: Sequence[set[str]] | None = None,
               on_target: Callable[[Choice], None] | None = None) -> list[Choice]:
        raise NotImplementedError

    def _within_macs(self, arch: Arch, probs: Any) -> Arch:
        return within_macs(self.state.space, arch, probs, self.macs_model, self.macs_budget)


def _predict(predictor: Any, archs: Sequence[Arch]) -> np.ndarray:
    return np.asarray(predictor.predict(list(archs)), dtype=float).reshape(-1)


class SupernetEngine(Engine):
    """Later calls (rounds after a refit) search for half the epochs: the weights are
    already warm and alpha only has to follow the corrected latency term."""

    name = "supernet"

    def __init__(self, state: PipelineState) -> None:
        super().__init__(state)
        self._search: Any = None
        self._calls = 0

    def _searcher(self, predictor: Any) -> Any:
        import torch

        from hwnas.strategies.supernet import make_supernet
        from hwnas.strategies.supernet.search import SupernetSearch
        from hwnas.strategies.supernet.strategy import SupernetStrategy

        if self._search is None:
            s, data = self.state.settings, self.state.data
            options: dict[str, Any] = {"seed": s.seed, "predictor": predictor,
                                       "warmup_epochs": s.search_epochs,
                                       "search_epochs": s.search_epochs}
            if s.supernet is not None:
                options["supernet"] = s.supernet
            config = SupernetStrategy(**options).config
            torch.manual_seed(s.seed)  # the supernet's initial weights, whatever ran before
            supernet = make_supernet(config.supernet, self.state.space, data.num_classes,
                                     self.state.input_size)
            self._search = SupernetSearch(supernet, data.x_train, data.y_train, predictor, config)
            self._search.warmup()
        elif self._calls == 1:
            from dataclasses import replace

            config = self._search.config
            self._search.config = replace(config, search_epochs=max(1, config.search_epochs // 2))
        self._calls += 1
        self._search.predictor = predictor
        return self._search

    def choose(self, targets: Sequence[float], predictor: Any,
               avoid: Sequence[set[str]] | None = None,
               on_target: Callable[[Choice], None] | None = None) -> list[Choice]:
        from hwnas.strategies.supernet.search import fit_to_budget

        space = self.state.space
        search = self._searcher(predictor)
        out = []
        for i, target in enumerate(targets):
            outcome = search.search(float(target))
            arch = self._within_macs(outcome.arch, outcome.probs)
            tried = avoid[i] if avoid else set()
            extra: dict[str, Any] = {"how": "search"}
            if space.to_string(arch) in tried:
                # the refitted predictor still leads here: step to cheaper neighbours until
                # the predictor puts the arch clearly under the target
                ms = float(_predict(predictor, [arch])[0])
                arch, _ = fit_to_budget(space, arch, outcome.probs, predictor,
                                        min(float(target), 0.97 * ms), max_moves=200)
                arch = self._within_macs(arch, outcome.probs)
                extra["how"] = "repair (the search repeated a tried network)"
            out.append(Choice(float(target), arch, float(_predict(predictor, [arch])[0]),
                              float(outcome.expected_ms), outcome.probs, outcome.seconds, extra))
            if on_target is not None:
                on_target(out[-1])
        return out


class NaoEngine(Engine):
    name = "nao"

    def __init__(self, state: PipelineState) -> None:
        super().__init__(state)
        self._history: Any = None

    def _searched(self, predictor: Any) -> Any:
        """The NAO search's history (arch strings, accuracy), run once per process; its
        evaluations are cached in the run folder, so a resumed run trains nothing again."""
        if self._history is not None:
            return self._history
        from hwnas.evaluators.cache import CachedEvaluator
        from hwnas.evaluators.latency_sources import PredictorLatency
        from hwnas.evaluators.train import TrainEvaluator
        from hwnas.objectives import parse_objectives
        from hwnas.strategies.nao.strategy import NAOStrategy

        st, s = self.state, self.state.settings
        extra = [f"macs<={self.macs_budget:g}"] if self.macs_budget else []
        objectives = parse_objectives(["accuracy", "latency_ms"], extra)
        metrics = ["accuracy", "latency_ms"] + (["macs"] if self.macs_budget else [])
        evaluator = TrainEvaluator(st.space, metrics, st.data, epochs=s.epochs, seed=s.seed,
                                   latency=PredictorLatency(st.space, predictor),
                                   input_size=st.input_size)
        cached = CachedEvaluator(evaluator, st.path("nao_cache.jsonl"))
        strategy = NAOStrategy(seed=s.seed, init=max(1, min(10, s.queries // 2)))
        try:
            result = strategy.run(st.space, cached, objectives, s.queries, progress=st.progress)
        finally:
            cached.close()
        history = result.history
        if self.macs_budget:
            history = history[history["macs"] <= self.macs_budget]
        self._history = history.reset_index(drop=True)
        return self._history

    def choose(self, targets: Sequence[float], predictor: Any,
               avoid: Sequence[set[str]] | None = None,
               on_target: Callable[[Choice], None] | None = None) -> list[Choice]:
        space = self.state.space
        history = self._searched(predictor).copy()
        archs = [space.from_string(str(a)) for a in history["arch"]]  # the strategy's table, read once
        history["arch_obj"] = archs
        history["predicted_ms"] = _predict(predictor, archs)  # the current predictor's view
        out = []
        for i, target in enumerate(targets):
            pool = history[~history["arch"].astype(str).isin(avoid[i] if avoid else set())]
            if pool.empty:
                pool = history
            fits = pool[pool["predicted_ms"] <= target]
            if fits.empty:  # nothing searched is predicted that fast: the fastest searched one
                fits = pool.nsmallest(1, "predicted_ms")
            best = fits.sort_values(["accuracy", "predicted_ms"], ascending=[False, True]).iloc[0]
            out.append(Choice(float(target), best["arch_obj"],
                              float(best["predicted_ms"]),
                              extra={"how": "nao", "search_accuracy": float(best["accuracy"])}))
            if on_target is not None:
                on_target(out[-1])
        return out


def make_engine(state: PipelineState) -> Engine:
    engine = state.settings.engine
    if engine in ("oneshot", "instanas"):  # instanas: the one-shot search, then stage 6
        from hwnas.pipeline.engine_oneshot import OneShotEngine

        return OneShotEngine(state)
    from hwnas.pipeline.settings import CELL_ENGINES

    if engine in CELL_ENGINES:
        from hwnas.pipeline.engine_cell import CellSearchEngine

        return CellSearchEngine(state)
    return SupernetEngine(state) if engine == "supernet" else NaoEngine(state)
