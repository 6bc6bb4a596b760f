"""Scalar rewards for strategies that optimise one number under budgets.

All functions are vectorised over numpy arrays. Accuracy enters as a fraction
in [0, 1] (the caller divides a percentage by 100) so that rewards from
different tasks stay on one scale.

MONAS (Hsu et al., 2018), two forms:

* weighted sum ``R = alpha * acc - (1 - alpha) * cost / cost_scale``: trades
  accuracy against a normalised cost; ``alpha`` sets the exchange rate.
* constraint ``R = acc`` when every cost is within its budget, otherwise a
  penalty. MONAS gives constraint-violating networks a negative reward; we use
  ``penalty - sum(max(0, cost/budget - 1))`` so that every feasible network
  (reward >= 0) beats every infeasible one, and among infeasible ones the
  smaller overshoot ranks higher (``graded=False`` gives the flat penalty).

MnasNet (Tan et al., 2019): ``R = acc * (lat / T) ** w`` with
``w = alpha`` if ``lat <= T`` else ``beta``.

* soft constraint: ``alpha = beta = -0.07`` (the paper's choice: doubling the
  latency costs about 5% relative accuracy, so the search trades smoothly);
* hard constraint: ``alpha = 0, beta = -1`` (no reward for being faster than
  T, a steep penalty above it).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from spaces.errors import HwnasError

MNASNET_SOFT = (-0.07, -0.07)
MNASNET_HARD = (0.0, -1.0)


def monas_weighted(acc, cost, alpha: float = 0.5, cost_scale: float = 1.0) -> np.ndarray:
    """``alpha * acc - (1 - alpha) * cost / cost_scale``."""
    if not 0.0 <= alpha <= 1.0:
        raise HwnasError(f"MONAS alpha must be in [0, 1], got {alpha}")
    acc, cost = np.asarray(acc, float), np.asarray(cost, float)
    return alpha * acc - (1.0 - alpha) * cost / float(cost_scale)


def monas_constrained(acc, costs: Sequence, budgets: Sequence[float], penalty: float = -1.0,
                      graded: bool = True) -> np.ndarray:
    """``acc`` if every ``costs[i] <= budgets[i]``, else the (graded) penalty."""
    acc = np.asarray(acc, float)
    over = np.zeros_like(acc)
    feasible = np.ones(acc.shape, dtype=bool)
    for cost, budget in zip(costs, budgets):
        cost = np.asarray(cost, float)
        feasible &= cost <= budget
        over += np.maximum(0.0, cost / float(budget) - 1.0)
    bad = penalty - (over if graded else 0.0)
    return np.where(feasible, acc, bad)


def mnasnet(acc, lat, target: float, alpha: float = MNASNET_SOFT[0],
            beta: float = MNASNET_SOFT[1]) -> np.ndarray:
    """``acc * (lat / target) ** w``, ``w = alpha`` within the target, ``beta`` above."""
    if target <= 0:
        raise HwnasError(f"MnasNet target latency must be positive, got {target}")
    acc, lat = np.asarray(acc, float), np.asarray(lat, float)
    ratio = lat / float(target)
    w = np.where(lat <= target, alpha, beta)
    return acc * np.power(ratio, w)


def mnasnet_hard(acc, lat, target: float) -> np.ndarray:
    """MnasNet's hard-constraint form (``alpha = 0, beta = -1``)."""
    return mnasnet(acc, lat, target, *MNASNET_HARD)


REWARDS = ("monas", "monas-weighted", "mnasnet-soft", "mnasnet-hard")


def scalariser(objectives: Sequence, form: str = "monas", alpha: float = 0.5
               ) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    """A function metrics -> reward for one searched objective and its budgets.

    ``objectives`` are :class:`hwnas.objectives.Objective`; exactly one must be
    searched. ``monas`` is the constraint form (every budget), ``monas-weighted``
    the weighted sum (budget as the cost scale, one budget), ``mnasnet-*`` need
    a ``latency_ms`` budget as the target T. The searched metric becomes a
    "higher is better" number: accuracy / 100, or minus a cost for a cost.
    """
    main = [o for o in objectives if o.searched]
    if len(main) != 1:
        raise HwnasError(f"a reward needs exactly one searched objective, got {len(main)}")
    main_obj = main[0]
    limits = [o for o in objectives if o.budget is not None and o is not main_obj]
    if form not in REWARDS:
        raise HwnasError(f"unknown reward {form!r}; known: {', '.join(REWARDS)}")

    def primary(m: Mapping[str, np.ndarray]) -> np.ndarray:
        v = np.asarray(m[main_obj.name], float)
        if main_obj.name == "accuracy":
            return v / 100.0
        return v if main_obj.maximise else -v

    def as_cost(o, m) -> np.ndarray:
        """A budgeted metric as a cost with the same budget: a lower bound b on a
        "max" metric v becomes 2b - v, within budget exactly when v >= b and with
        the same relative overshoot (b - v) / b."""
        v = np.asarray(m[o.name], float)
        return 2.0 * o.budget - v if o.maximise else v

    if form == "monas":
        return lambda m: monas_constrained(primary(m), [as_cost(o, m) for o in limits],
                                           [o.budget for o in limits])
    if len(limits) != 1:
        raise HwnasError(f"reward {form!r} needs exactly one budget, got {len(limits)}")
    limit = limits[0]
    if form == "monas-weighted":
        if limit.maximise:
            raise HwnasError("the MONAS weighted reward needs a budget on a cost, not on accuracy")
        return lambda m: monas_weighted(primary(m), m[limit.name], alpha, limit.budget)
    if limit.name != "latency_ms":
        raise HwnasError(f"reward {form!r} needs a latency_ms budget (its target T)")
    a, b = MNASNET_SOFT if form == "mnasnet-soft" else MNASNET_HARD
    return lambda m: mnasnet(primary(m), m["latency_ms"], limit.budget, a, b)
