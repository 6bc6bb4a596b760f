"""Objectives by name (what a search optimises) and budgets (limits it must respect).

An objective is a metric an evaluator returns (``accuracy``, ``latency_ms``,
``macs``, ``params``) with a direction. A budget (``latency_ms<=5``,
``macs<=300M``, ``accuracy>=90``) bounds one metric; a budget on a metric that
is not searched is still evaluated and enforced, which is how a single
objective search with constraints (MONAS, MnasNet) is expressed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

import numpy as np

from spaces.errors import HwnasError, UnknownName
from spaces.core.errors import Infeasible, InvalidOption


# A ``--budget`` string is not ``METRIC<=VALUE`` (or ``>=``) with a known unit.
MalformedBudget = InvalidOption


# No architecture of the space can meet a budget, so searching would be pointless.
InfeasibleBudget = Infeasible


@dataclass(frozen=True)
class Metric:
    """A quantity an evaluator can report; ``direction`` says which way is better."""

    name: str
    direction: str  # "max" or "min"
    unit: str
    description: str


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", "max", "%", "top-1 accuracy (validation when trained, table otherwise)"),
    "latency_ms": Metric("latency_ms", "min", "ms", "inference latency at batch 1"),
    "macs": Metric("macs", "min", "", "multiply-accumulates of one forward pass"),
    "params": Metric("params", "min", "", "trainable parameters"),
}


def metric(name: str) -> Metric:
    if name not in METRICS:
        raise UnknownName("objective", name, sorted(METRICS))
    return METRICS[name]


@dataclass(frozen=True)
class Objective:
    """A metric with a direction and an optional budget.

    ``searched`` is False for a metric that only carries a budget (a constraint
    the search must satisfy but does not trade off on the Pareto front).
    The budget is an upper bound for ``min`` metrics and a lower bound for
    ``max`` metrics, so "within budget" always means "good enough".
    """

    name: str
    direction: str
    budget: float | None = None
    searched: bool = True

    @property
    def maximise(self) -> bool:
        return self.direction == "max"

    def to_min(self, values: "np.ndarray | Sequence[float] | float") -> np.ndarray:
        """Values turned into "smaller is better" (Pareto tools minimise everything)."""
        arr = np.asarray(values, dtype=float)
        return -arr if self.maximise else arr

    def within(self, values: "np.ndarray | Sequence[float] | float") -> np.ndarray:
        """Boolean mask: does each value meet the budget (always True without one)?"""
        arr = np.asarray(values, dtype=float)
        if self.budget is None:
            return np.ones(arr.shape, dtype=bool)
        return arr >= self.budget if self.maximise else arr <= self.budget

    def budget_text(self) -> str:
        if self.budget is None:
            return ""
        return f"{self.name}{'>=' if self.maximise else '<='}{format_number(self.budget)}"

    def to_json(self) -> dict:
        return {"name": self.name, "direction": self.direction, "budget": self.budget,
                "searched": self.searched}

    @classmethod
    def from_json(cls, data: Mapping) -> "Objective":
        return cls(str(data["name"]), str(data["direction"]), data.get("budget"),
                   bool(data.get("searched", True)))


# ---- budgets --------------------------------------------------------------------------

_UNITS = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "ms": 1.0, "%": 1.0}
_BUDGET_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z_]+)\s*(?P<op><=|>=|<|>)\s*(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
    r"\s*(?P<unit>[kKMG]|ms|%)?\s*$")


@dataclass(frozen=True)
class Budget:
    """A parsed ``--budget``: metric, comparison and value in the metric's base unit."""

    name: str
    op: str  # "<=" or ">="
    value: float


def parse_budget(text: str) -> Budget:
    """Parse ``latency_ms<=5``, ``macs<=300M``, ``params<=1.5M``, ``accuracy>=90``.

    Units: k=1e3, M=1e6, G=1e9 (for counts), ``ms`` and ``%`` are accepted as
    no-ops. The direction must match the metric: a cost can only be bounded
    from above, accuracy only from below; anything else is rejected rather than
    silently reinterpreted.
    """
    match = _BUDGET_RE.match(text or "")
    if not match:
        raise MalformedBudget(f"malformed budget {text!r}; expected METRIC<=VALUE such as "
                              f"latency_ms<=5 or macs<=300M (units k, M, G)")
    name, op, unit = match["name"], match["op"], match["unit"] or ""
    if name not in METRICS:
        raise MalformedBudget(f"budget {text!r} names unknown metric {name!r}; "
                              f"known: {', '.join(sorted(METRICS))}")
    m = METRICS[name]
    op = {"<": "<=", ">": ">="}.get(op, op)
    want = ">=" if m.direction == "max" else "<="
    if op != want:
        raise MalformedBudget(f"budget {text!r} bounds {name} the wrong way; use {name}{want}VALUE")
    if unit in ("ms", "%") and unit != m.unit:
        raise MalformedBudget(f"budget {text!r} uses unit {unit!r}, but {name} is measured in "
                              f"{m.unit or 'plain counts'}")
    value = float(match["value"]) * _UNITS[unit]
    if not math.isfinite(value) or value <= 0:
        raise MalformedBudget(f"budget {text!r} must be a positive number")
    if name == "accuracy" and value > 100:
        raise InfeasibleBudget(f"budget {text!r} asks for more than 100% accuracy")
    return Budget(name, op, value)


def format_number(value: float) -> str:
    """Compact form used in budgets and tables: 300000000 -> 300M."""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def parse_objectives(names: Iterable[str], budgets: Iterable[str] = ()) -> list[Objective]:
    """Searched objectives (in the given order) plus budget-only constraint metrics.

    Raises :class:`UnknownName` for an unknown objective, :class:`MalformedBudget`
    for a malformed or duplicated budget.
    """
    names = list(names)
    if not names:
        raise HwnasError("at least one objective is needed")
    objectives: dict[str, Objective] = {}
    for name in names:
        m = metric(name)
        if name in objectives:
            raise HwnasError(f"objective {name!r} is given twice")
        objectives[name] = Objective(name, m.direction)
    seen: set[str] = set()
    for text in budgets:
        b = parse_budget(text)
        if b.name in seen:
            raise MalformedBudget(f"metric {b.name!r} has more than one budget")
        seen.add(b.name)
        if b.name in objectives:
            objectives[b.name] = replace(objectives[b.name], budget=b.value)
        else:
            objectives[b.name] = Objective(b.name, METRICS[b.name].direction, b.value, searched=False)
    return list(objectives.values())


def searched(objectives: Sequence[Objective]) -> list[Objective]:
    return [o for o in objectives if o.searched]


def constrained(objectives: Sequence[Objective]) -> list[Objective]:
    return [o for o in objectives if o.budget is not None]


def metric_names(objectives: Sequence[Objective]) -> list[str]:
    """Every metric an evaluator must report for these objectives (searched first)."""
    return [o.name for o in objectives]


def check_feasible(objectives: Sequence[Objective], best_possible: Mapping[str, float | None]) -> None:
    """Raise :class:`InfeasibleBudget` when a budget lies beyond what any arch can reach.

    ``best_possible[name]`` is the space's minimum (max for accuracy) of that
    metric where known (table extreme, cheapest arch); ``None`` = unknown,
    and an unknown bound is never used to reject.
    """
    for o in constrained(objectives):
        bound = best_possible.get(o.name)
        if bound is None:
            continue
        if not bool(o.within(bound)):
            better = "highest" if o.maximise else "lowest"
            raise InfeasibleBudget(
                f"budget {o.budget_text()} is infeasible: the {better} {o.name} in this space is "
                f"{format_number(bound)}")


def check_jointly_feasible(objectives: Sequence[Objective], table: Mapping[str, np.ndarray],
                           space_key: str = "the space") -> None:
    """Raise :class:`InfeasibleBudget` when no architecture meets every budget at once.

    ``table`` holds, for every architecture of the space, the metrics known for all of
    them (see ``Evaluator.whole_space``); budgets on other metrics are left out, which
    can only make more architectures pass -- so a refusal is always right.
    """
    known = [o for o in constrained(objectives) if o.name in table]
    if len(known) < 2:
        return  # one budget alone was already checked against the space's best value
    mask = feasible_mask(table, known)
    if not mask.any():
        n = len(np.asarray(table[known[0].name]))
        texts = ", ".join(o.budget_text() for o in known)
        raise InfeasibleBudget(f"no architecture of {space_key} meets the budgets {texts} "
                               f"together (all {n:,} checked in the tables); relax one of "
                               f"them")


def feasible_mask(frame, objectives: Sequence[Objective]) -> np.ndarray:
    """Rows of a metrics table (DataFrame or dict of arrays) that meet every budget."""
    n = len(frame[objectives[0].name]) if objectives else 0
    mask = np.ones(n, dtype=bool)
    for o in constrained(objectives):
        mask &= o.within(np.asarray(frame[o.name], dtype=float))
    return mask
