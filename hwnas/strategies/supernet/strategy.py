"""``supernet``: FBNetV2 channel-masking DNAS with a differentiable latency loss, one search per budget.

Per run: warm the shared weights up once, then for every latency budget search
alpha (and keep training the weights) from the warmed-up state, take the
argmax architecture, and hand all chosen architectures to the evaluator as one
batch -- the evaluator retrains each standalone network from scratch and, when
it measures latency live, times them interleaved on the device. Several budgets
trace a front; each lands in the history like any strategy's query.

The strategy never times anything: its latency model is a fitted predictor
(``predictor=``). Without one it fits one (:func:`fit_latency_predictor`) on
latencies of random architectures asked from the evaluator's own latency source,
which is where the device lives. Its training data are the evaluator's
(``evaluator.data``).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from hwnas.strategies.base import BatchCallback, SearchContext, SearchResult, Strategy
from hwnas.strategies.supernet.search import BudgetOutcome, SearchConfig, SupernetSearch
from hwnas.strategies.supernet.kinds import make_supernet
from hwnas.strategies.supernet.supernet import UnsupportedSpace
from spaces import Arch, Space
from spaces.fbnetv2 import FBNetV2Space
from spaces.core.errors import InvalidOption

logger = logging.getLogger(__name__)

# The supernet has neither a predictor nor an evaluator latency source to fit one on.
MissingLatencyModel = InvalidOption


# The supernet needs the evaluator's training data (the train evaluator).
MissingTrainingData = InvalidOption


BadBudget = InvalidOption  # A latency budget or sweep size for the supernet is not usable.


def find_attribute(evaluator: Any, name: str) -> Any:
    """``evaluator.<name>``, looking through wrappers (``.inner``, e.g. the run cache)."""
    seen = 0
    while evaluator is not None and seen < 10:
        value = getattr(evaluator, name, None)
        if value is not None:
            return value
        evaluator, seen = getattr(evaluator, "inner", None), seen + 1
    return None


def fit_latency_predictor(space: Space, source: Any, n: int = 150, kind: str = "lut",
                          seed: int = 0, chunk: int = 25) -> Any:
    """A ``latency.predictors`` model fitted on ``n`` random architectures whose latency
    ``source.latency_ms(archs)`` reports (a device, a table); asked ``chunk`` at a time
    so live profiling interleaves small batches."""
    from latency import predictors

    if n < 2:
        raise BadBudget(f"need at least 2 profiled architectures to fit a predictor, got {n}")
    archs = space.sample_many(n, rng=seed)
    ms = np.concatenate([np.asarray(source.latency_ms(archs[i:i + chunk]), dtype=float).reshape(-1)
                         for i in range(0, len(archs), chunk)])
    return predictors.create(kind, space).fit(archs, ms)


def predicted_range(space: Space, predictor: Any, seed: int = 0) -> tuple[float, float]:
    """(lowest, highest) predicted latency, by coordinate search over the decisions
    (exact for an additive LUT, a close bound for smooth predictors)."""
    from hwnas.evaluators.base import coordinate_minimum

    def predict(archs: list[Arch]) -> np.ndarray:
        return np.asarray(predictor.predict(archs), dtype=float).reshape(-1)

    lo = coordinate_minimum(space, predict, seed=seed)
    hi = -coordinate_minimum(space, lambda archs: -predict(archs), seed=seed)
    return lo, hi


def sweep_budgets(lo: float, hi: float, n: int) -> list[float]:
    """``n`` budgets spread geometrically strictly inside (lo, hi): the cheapest arch
    needs no search and the most expensive is unconstrained; geometric spacing keeps
    more budgets at the cheap end, where they bind (a loose budget leaves the choice
    to accuracy alone, and on small tasks the preferred net is already cheap)."""
    if not 0 < lo < hi:
        raise BadBudget(f"cannot spread budgets over the predicted range {lo:g}-{hi:g} ms")
    return [float(lo * (hi / lo) ** (k / (n + 1))) for k in range(1, n + 1)]


class SupernetStrategy(Strategy):
    """FBNetV2 masking supernet; options are stored in config.json (the predictor by
    description: kind, device, training size). ``supernet`` is ``"singlepath"`` or
    ``"multipath"`` (None: :class:`SearchConfig`'s default)."""

    name = "supernet"

    def __init__(self, seed: int = 0, batch_size: int = 1, predictor: Any = None,
                 budgets: Sequence[float] | None = None, sweep: int | None = None,
                 warmup_epochs: int = 2, search_epochs: int = 2, latency_form: str = "hinge",
                 latency_weight: float = 2.0, sampling: str = "soft", alpha_lr: float = 0.05,
                 repair: bool = True, profile_archs: int = 150, predictor_kind: str = "lut",
                 supernet: str | None = None) -> None:
        super().__init__(seed, batch_size)
        if budgets is not None:
            budgets = [float(b) for b in budgets]
            if not budgets or any(not np.isfinite(b) or b <= 0 for b in budgets):
                raise BadBudget(f"latency budgets must be positive numbers, got {budgets}")
        if sweep is not None and sweep < 1:
            raise BadBudget(f"--sweep must be at least 1, got {sweep}")
        if budgets is not None and sweep is not None:
            raise BadBudget("give latency budgets or --sweep, not both")
        if predictor is not None and not callable(getattr(predictor, "predict_soft", None)):
            raise MissingLatencyModel(f"the supernet needs a predictor with predict_soft, got "
                                      f"{type(predictor).__name__}")
        kind = {} if supernet is None else {"supernet": supernet}  # None: SearchConfig's default
        self.config = SearchConfig(warmup_epochs=warmup_epochs, search_epochs=search_epochs,
                                   latency_form=latency_form, latency_weight=latency_weight,
                                   sampling=sampling, alpha_lr=alpha_lr, repair=repair,
                                   seed=self.seed, **kind)
        self.predictor, self.budgets, self.sweep = predictor, budgets, sweep
        self.profile_archs, self.predictor_kind = int(profile_archs), predictor_kind
        self.outcomes: list[BudgetOutcome] = []
        self._verbose = False

    def options(self) -> dict[str, Any]:
        return {**super().options(), "budgets": self.budgets, "sweep": self.sweep,
                "search": self.config.to_json(), "predictor": describe_predictor(self.predictor),
                "profile_archs": self.profile_archs, "predictor_kind": self.predictor_kind}

    # ---- the contract ------------------------------------------------------------------
    def run(self, space: Space, evaluator: Any, objectives: Sequence[Any], n_queries: int, *,
            progress: bool = False, on_batch: BatchCallback | None = None) -> SearchResult:
        """The base run, plus per-budget records: ``info["supernet"]`` and the columns
        ``budget_ms`` / ``predicted_ms`` / ``expected_ms`` added to history and front."""
        self._verbose, self.outcomes = progress, []
        result = super().run(space, evaluator, objectives, n_queries, progress=progress, on_batch=on_batch)
        records = self.records(space, result.history)
        result.info["supernet"] = records
        result.info["options"] = self.options()
        result.history = annotate(result.history, records)
        result.front = annotate(result.front, records)
        return result

    def search(self, ctx: SearchContext) -> None:
        space = ctx.space
        if not isinstance(space, FBNetV2Space):
            raise UnsupportedSpace(f"the supernet strategy searches the fbnetv2 space only, "
                                   f"not {space.key!r}")
        data = find_attribute(ctx.evaluator, "data")
        if data is None or not hasattr(data, "x_train"):
            raise MissingTrainingData("the supernet strategy trains on the evaluator's data; "
                                      "use the train evaluator (--evaluator train)")
        input_size = find_attribute(ctx.evaluator, "input_size") or space.default_input_size
        if tuple(data.x_train.shape[1:]) != tuple(space.input_shape(input_size)):
            raise MissingTrainingData(f"the evaluator's images are {tuple(data.x_train.shape[1:])}, "
                                      f"the space takes {space.input_shape(input_size)}")
        if self.predictor is None:
            self.predictor = self._fit_predictor(ctx)
        fitted_on = getattr(getattr(self.predictor, "space", None), "key", space.key)
        if fitted_on != space.key:
            raise MissingLatencyModel(f"the latency predictor was fitted on space {fitted_on!r}, "
                                      f"not {space.key!r}")
        budgets = self.resolve_budgets(ctx)[:max(ctx.remaining, 0)]
        self.outcomes = self.choose(space, data, input_size, budgets)
        ctx.evaluate([o.arch for o in self.outcomes])

    def choose(self, space: Space, data: Any, input_size: int, budgets: Sequence[float],
               on_budget: Any = None) -> list[BudgetOutcome]:
        """The search proper, without evaluating: warm the supernet up on ``data``'s
        training split, then one alpha search per budget (``self.predictor`` is the
        latency model). Public so the pipeline can keep search and retraining as
        separate, resumable stages; ``on_budget(outcome)`` reports each budget."""
        if self.predictor is None:
            raise MissingLatencyModel("the supernet needs a fitted latency predictor to choose")
        torch.manual_seed(self.seed)  # the supernet's initial weights, whatever ran before
        supernet = make_supernet(self.config.supernet, space, data.num_classes, input_size)
        runner = SupernetSearch(supernet, data.x_train, data.y_train, self.predictor, self.config,
                                log=self._log if self._verbose else None)
        runner.warmup()
        outcomes = []
        for b in budgets:
            outcomes.append(runner.search(b))
            if on_budget is not None:
                on_budget(outcomes[-1])
        return outcomes

    # ---- pieces -------------------------------------------------------------------------
    def _fit_predictor(self, ctx: SearchContext) -> Any:
        source = find_attribute(ctx.evaluator, "latency")
        if source is None or not hasattr(source, "latency_ms"):
            raise MissingLatencyModel("the supernet strategy needs a latency predictor (--predictor "
                                      "FILE) or an evaluator that measures latency (--device)")
        own = getattr(source, "predictor", None)
        if own is not None and callable(getattr(own, "predict_soft", None)):
            return own
        self._log(f"fitting a {self.predictor_kind} latency predictor on {self.profile_archs} "
                  f"random architectures from the evaluator's latency source")
        return fit_latency_predictor(ctx.space, source, self.profile_archs, self.predictor_kind,
                                     seed=self.seed)

    def resolve_budgets(self, ctx: SearchContext) -> list[float]:
        """Explicit budgets, else ``sweep`` budgets over the predictor's range, else the
        objectives' latency budget, else a sweep of 3."""
        if self.budgets is not None:
            return list(self.budgets)
        given = [o.budget for o in ctx.objectives if o.name == "latency_ms" and o.budget is not None]
        if given and self.sweep is None:
            return [float(given[0])]
        lo, hi = predicted_range(ctx.space, self.predictor, seed=self.seed)
        budgets = sweep_budgets(lo, hi, self.sweep or 3)
        self._log(f"predicted latency range {lo:.3g}-{hi:.3g} ms; budgets "
                  f"{', '.join(f'{b:.3g}' for b in budgets)} ms")
        return budgets

    def records(self, space: Space, history: pd.DataFrame) -> list[dict[str, Any]]:
        """Per budget: chosen arch, predicted / expected / measured latency, accuracy."""
        rows = {str(a): r for a, r in zip(history.get("arch", []), history.to_dict("records"))}
        out = []
        for o in self.outcomes:
            key = space.to_string(o.arch)
            row = rows.get(key, {})
            measured = row.get("latency_ms")
            rec = {"budget_ms": o.budget_ms, "arch": key, "predicted_ms": o.predicted_ms,
                   "expected_ms": o.expected_ms, "argmax": space.to_string(o.argmax),
                   "argmax_ms": o.argmax_ms,
                   "measured_ms": None if measured is None else float(measured),
                   "accuracy": None if row.get("accuracy") is None else float(row["accuracy"]),
                   "search_s": o.seconds, "trace": o.trace}
            if measured is not None and measured > 0:
                rec["prediction_error"] = (o.predicted_ms - float(measured)) / float(measured)
            out.append(rec)
        return out

    @staticmethod
    def _log(message: str) -> None:
        logger.info(message)


def describe_predictor(predictor: Any) -> dict[str, Any] | None:
    """JSON-friendly identity of a predictor for config.json (never its weights)."""
    if predictor is None:
        return None
    device = getattr(predictor, "device", None)
    return {"kind": getattr(predictor, "kind", type(predictor).__name__),
            "train_size": getattr(predictor, "train_size", None),
            "device": device.get("label") if isinstance(device, dict) else device}


def annotate(frame: pd.DataFrame, records: list[dict[str, Any]]) -> pd.DataFrame:
    """``frame`` with budget_ms / predicted_ms / expected_ms per arch (budgets that chose
    the same arch are joined with ';')."""
    if frame.empty or not records:
        return frame
    by_arch: dict[str, dict[str, list[float]]] = {}
    for r in records:
        entry = by_arch.setdefault(r["arch"], {"budget_ms": [], "predicted_ms": r["predicted_ms"],
                                               "expected_ms": []})
        entry["budget_ms"].append(r["budget_ms"])
        entry["expected_ms"].append(r["expected_ms"])
    out = frame.copy()
    archs = out["arch"].astype(str)
    out["budget_ms"] = [";".join(f"{b:.4g}" for b in by_arch[a]["budget_ms"]) if a in by_arch else ""
                        for a in archs]
    out["predicted_ms"] = [by_arch[a]["predicted_ms"] if a in by_arch else np.nan for a in archs]
    out["expected_ms"] = [float(np.mean(by_arch[a]["expected_ms"])) if a in by_arch else np.nan
                          for a in archs]
    return out
