"""Uncertainty-driven ("active") latency profiling: measure where the predictor is unsure.

nn-Meter and HELP choose the architectures to profile at random. Profiling is the
expensive step (minutes per network on a phone), so it pays to spend each
measurement where the MLP ensemble's members disagree most: the *relative*
spread ``predict_std / predict`` (errors of a latency model are relative, and a
large network's absolute spread would otherwise win every time). Near a latency
budget the search only cares about networks close to it, so candidates can be
weighted towards ``near_ms``.

The loop (:func:`active_profile`) fits, scores on a fixed held-out set, stops at
the target ±10 % share or when ``n_measurements`` are spent, otherwise picks
the next batch and calls the caller's ``measure`` -- timing on a device and
committing to the store in the pipeline, a table look-up in the benchmark.

Measured on the HELP tables (benchmarks/active_profiling.py): choosing by spread
ends at or above random's held-out ±10 % share on CPU and GPU tables, and
``diverse`` (spread times distance to the round's other picks) gets there with
fewer measurements than ``active`` (top spread); neither halves the measurements in
general, and on NB201/pixel3 both trail random because the most uncertain cells are
degenerate ones (no path to the output, ~0 ms) -- give ``near_ms`` there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from latency import metrics
from latency.encoding import one_hot
from latency.predictors.base import Predictor
from spaces.arch import Arch
from spaces.base import Space
from spaces.errors import UnknownName
from spaces.core.errors import Infeasible, InvalidOption


ActiveError = InvalidOption  # Bad input to active profiling.


EmptyPool = Infeasible  # There is nothing to choose the next measurements from.


BadBatch = InvalidOption  # The number of architectures to choose per round is below 1.


BadCount = InvalidOption  # The number of measurements is negative.
BadBudget = BadCount  # the name before "budget" meant only metric limits


@dataclass(frozen=True)
class ActiveRound:
    """Held-out scores of the predictor fitted on ``measured`` measurements.

    ``seconds``: wall time since :func:`active_profile` started (fits, choices and
    the caller's measurements), so a table of rounds shows where the time went."""

    measured: int
    spearman: float
    within10: float
    mape: float
    seconds: float


@dataclass
class ActiveOutcome:
    """The predictor fitted on everything measured, the measurements, and the rounds."""

    predictor: Predictor
    archs: list[Arch]
    ms: np.ndarray
    rounds: list[ActiveRound] = field(default_factory=list)
    reached_target: bool = False


# ---- scoring and choosing ---------------------------------------------------------------------
def near_weight(pred_ms: np.ndarray, near_ms: "float | Sequence[float]",
                width: float = 0.5) -> np.ndarray:
    """``max_b exp(-log(pred / b)**2 / (2 width**2))`` over the budgets ``near_ms``: 1 on a
    budget, 0.5 at 1.8x off the nearest one (``width`` 0.5). Why: the engines choose
    networks just under each budget, so that is where the predictor must be right."""
    budgets = np.atleast_1d(np.asarray(near_ms, dtype=np.float64))
    if budgets.size == 0 or not np.all(budgets > 0):
        raise ActiveError(f"near_ms must be positive latencies in ms, got {near_ms}")
    if not width > 0:
        raise ActiveError(f"width must be positive, got {width}")
    logs = np.log(np.maximum(np.asarray(pred_ms, dtype=np.float64), 1e-12))[:, None] - np.log(budgets)
    return np.exp(-logs ** 2 / (2.0 * width ** 2)).max(axis=1)


def _spread(predictor: Predictor, archs: list[Arch], near_ms: "float | Sequence[float] | None",
            width: float) -> tuple[np.ndarray, np.ndarray]:
    """(score, predicted ms): see :func:`relative_spread`."""
    if not archs:
        if near_ms is not None:
            near_weight(np.zeros(0), near_ms, width)  # still refuse bad budgets
        return np.zeros(0), np.zeros(0)
    pred = np.maximum(np.asarray(predictor.predict(archs), dtype=np.float64), 1e-12)
    score = np.asarray(predictor.predict_std(archs), dtype=np.float64) / pred
    if near_ms is not None:
        score = score * near_weight(pred, near_ms, width)
    return score, pred


def relative_spread(predictor: Predictor, archs: Sequence[Arch],
                    near_ms: "float | Sequence[float] | None" = None,
                    width: float = 0.5) -> np.ndarray:
    """Ensemble spread over prediction (``std / mean``) per architecture; with ``near_ms``
    (one latency budget or several), times :func:`near_weight` so candidates near a
    budget win (``width`` 0.5: a prediction 1.8x off the nearest budget gets half the weight)."""
    return _spread(predictor, list(archs), near_ms, width)[0]


def typical_weight(pred_ms: np.ndarray, points: int = 512) -> np.ndarray:
    """Density (max 1) of each predicted log latency among all of them (Gaussian kernel,
    Silverman bandwidth, against ``points`` evenly spaced quantiles). Why: the most
    uncertain architectures are often a rare extreme (NB201 cells with no path to the
    output, ~0.005 ms on pixel3) that teaches the model little about typical networks;
    weighting spread by density is the classic density-weighted uncertainty sampling."""
    z = np.log(np.maximum(np.asarray(pred_ms, dtype=np.float64), 1e-12))
    if z.size < 2 or np.ptp(z) == 0:
        return np.ones_like(z)
    bw = max(1.06 * z.std() * z.size ** -0.2, 1e-6)
    ref = np.quantile(z, np.linspace(0.0, 1.0, min(points, z.size)))
    density = np.exp(-0.5 * ((z[:, None] - ref[None, :]) / bw) ** 2).mean(1)
    return density / density.max()


def _candidates(space: Space | None, pool: Iterable[Arch], exclude: Iterable[Arch | str]) -> list[Arch]:
    """Pool architectures not in ``exclude`` (by string form), first occurrence kept."""
    def key(a: Arch | str) -> str:
        if isinstance(a, str):
            return a
        return space.to_string(a) if space is not None else f"{a.space}:{a.choices}"

    seen = {key(a) for a in exclude}
    out = []
    for arch in pool:
        k = key(arch)
        if k not in seen:
            seen.add(k)
            out.append(arch)
    return out


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, highest first; ties by position (deterministic)."""
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    return np.argsort(-scores, kind="stable")[:k]


def _diverse(space: Space, candidates: Sequence[Arch], scores: np.ndarray, k: int,
             shortlist: int = 4) -> np.ndarray:
    """Of the ``shortlist * k`` best-scored candidates, pick greedily by score times the
    Hamming distance (share of decisions that differ) to the nearest one already picked.
    Why: the top-``k`` by spread are often near-copies (one unsure decision shared by
    many), so a whole batch would teach the model one thing."""
    short = _top(scores, max(k, shortlist * k))
    codes = one_hot(space, [candidates[i] for i in short]).astype(np.float32)
    n_dec = max(len(space.decisions), 1)
    gain_base = np.where(np.isfinite(scores[short]), scores[short], 0.0)
    nearest = np.ones(len(short))  # distance to the closest picked one (1 = nothing picked)
    free = np.ones(len(short), dtype=bool)
    picked: list[int] = []
    for _ in range(min(k, len(short))):
        j = int(np.argmax(np.where(free, gain_base * nearest, -np.inf)))
        picked.append(j)
        free[j] = False
        nearest = np.minimum(nearest, 1.0 - (codes @ codes[j]) / n_dec)
    return short[picked]


def _gumbel(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` indices drawn without replacement with probability proportional to score."""
    keys = np.log(np.maximum(scores, 1e-300)) + rng.gumbel(size=len(scores))
    return _top(keys, k)


def choose_uncertain(predictor: Predictor, pool: Sequence[Arch], k: int,
                     exclude: Iterable[Arch | str] = (),
                     near_ms: "float | Sequence[float] | None" = None) -> list[Arch]:
    """The ``k`` pool architectures outside ``exclude`` with the highest
    :func:`relative_spread`, highest first (fewer if the pool runs out)."""
    if k < 1:
        raise BadBatch(f"choose at least one architecture per round, got {k}")
    candidates = _candidates(getattr(predictor, "space", None), pool, exclude)
    if not candidates:
        return []
    return [candidates[i] for i in _top(relative_spread(predictor, candidates, near_ms), k)]


def choose_random(candidates: Sequence[Arch], k: int, rng: np.random.Generator) -> list[Arch]:
    """The baseline of nn-Meter and HELP: ``k`` candidates uniformly without replacement."""
    idx = rng.permutation(len(candidates))[:k]
    return [candidates[i] for i in idx]


# name -> (weight spread by typical_weight?, how to pick from the scores)
RULE_PARTS: dict[str, tuple[bool, str]] = {
    "active": (False, "top"),             # highest relative spread
    "diverse": (False, "diverse"),        # spread x Hamming distance within the batch
    "proportional": (False, "gumbel"),    # drawn in proportion to spread
    "typical": (True, "top"),             # spread x density of the predicted latency
    "typical-diverse": (True, "diverse"),
}
RULES = (*RULE_PARTS, "random")
RULES = RULES  # the name before the rename


def choose(rule: str, predictor: Predictor | None, candidates: Sequence[Arch], k: int,
           rng: np.random.Generator, near_ms: "float | Sequence[float] | None" = None) -> list[Arch]:
    """The next ``k`` architectures by ``rule`` (see RULES) among ``candidates``;
    ``random`` (or no predictor yet) draws uniformly."""
    if rule not in RULES:
        raise UnknownName("active-profiling rule", rule, RULES)
    if k < 1:
        raise BadBatch(f"choose at least one architecture per round, got {k}")
    candidates = list(candidates)
    if rule == "random" or predictor is None:
        return choose_random(candidates, k, rng)
    typical, pick = RULE_PARTS[rule]
    scores, pred = _spread(predictor, candidates, near_ms, 0.5)
    if typical:
        scores = scores * typical_weight(pred)
    if pick == "diverse":
        idx = _diverse(predictor.space, candidates, scores, k)
    elif pick == "gumbel":
        idx = _gumbel(scores, k, rng)
    else:
        idx = _top(scores, k)
    return [candidates[i] for i in idx]


# ---- the loop -----------------------------------------------------------------------------------
def _score(predictor: Predictor, holdout: tuple[list[Arch], np.ndarray],
           mask: np.ndarray) -> tuple[float, float, float]:
    """Held-out (Spearman, ±10 % share, MAPE); relative metrics on ``mask`` rows only."""
    archs, ms = holdout
    pred = predictor.predict(archs)
    return (metrics.spearman(pred, ms), metrics.within(pred[mask], ms[mask], 0.10),
            metrics.mape(pred[mask], ms[mask]))


def _check(batch: int, n_measurements: int, rule: str, pool: Sequence[Arch],
           holdout: tuple[Sequence[Arch], np.ndarray]) -> None:
    if batch < 1:
        raise BadBatch(f"batch must be at least 1 architecture per round, got {batch}")
    if n_measurements < 0:
        raise BadCount(f"the number of measurements must be 0 or more, got {n_measurements}")
    if rule not in RULES:
        raise UnknownName("active-profiling rule", rule, RULES)
    if len(pool) == 0:
        raise EmptyPool("the pool of candidate architectures is empty")
    if len(holdout[0]) == 0 or len(holdout[0]) != len(holdout[1]):
        raise ActiveError(f"the held-out set needs as many latencies as architectures (and at least "
                          f"one), got {len(holdout[0])} and {len(holdout[1])}")


def active_profile(space: Space, make_predictor: Callable[[], Predictor],
                   measure: Callable[[list[Arch]], np.ndarray], initial: list[Arch],
                   initial_ms: "Sequence[float] | np.ndarray", pool: list[Arch],
                   holdout: tuple[list[Arch], "np.ndarray"], *, batch: int = 25, n_measurements: int = 200,
                   target_within10: float = 0.90, near_ms: "float | Sequence[float] | None" = None,
                   rule: str = "active", seed: int = 0,
                   on_round: Callable[[ActiveRound], None] | None = None,
                   holdout_mask: "np.ndarray | None" = None) -> ActiveOutcome:
    """Fit, score on ``holdout``, stop at ``target_within10`` or after ``n_measurements`` new
    measurements, else measure ``batch`` more chosen from ``pool`` by ``rule``
    (``active``: highest relative spread; others in RULE_PARTS; ``random``: the
    baseline; draws use ``seed``) and refit. ``near_ms`` (latency budgets) weights the
    choice towards architectures predicted near one of them.

    ``measure(archs) -> ms`` is the caller's: a value that is not finite and positive
    means "could not be measured" -- it counts against ``n_measurements``, is never chosen again
    and is not trained on. Holdout architectures are never chosen (that would leak).
    ``holdout_mask`` (bool) selects the held-out rows scored by ±10 % and MAPE (NB201 cells
    reported at ~0 ms make relative errors meaningless); Spearman uses every row.
    An empty ``initial`` starts with a random batch."""
    hold_archs, hold_ms = list(holdout[0]), np.asarray(holdout[1], dtype=np.float64).reshape(-1)
    _check(batch, n_measurements, rule, pool, (hold_archs, hold_ms))
    mask = np.ones(len(hold_ms), bool) if holdout_mask is None else np.asarray(holdout_mask, bool)
    if mask.shape != hold_ms.shape or not mask.any():
        raise ActiveError("holdout_mask must select at least one of the held-out architectures")
    archs = list(initial)
    ms = np.asarray(initial_ms, dtype=np.float64).reshape(-1)
    if len(archs) != len(ms):
        raise ActiveError(f"{len(archs)} initial architectures but {len(ms)} latencies")
    rng = np.random.default_rng(seed)
    tried = {space.to_string(a) for a in [*archs, *hold_archs]}  # never chosen (again)
    started, spent = time.perf_counter(), 0
    rounds: list[ActiveRound] = []
    predictor: Predictor | None = None
    reached = False
    while True:
        if archs:
            predictor = make_predictor().fit(archs, ms)
            sp, w10, err = _score(predictor, (hold_archs, hold_ms), mask)
            rounds.append(ActiveRound(len(archs), sp, w10, err, time.perf_counter() - started))
            if on_round is not None:
                on_round(rounds[-1])
            if w10 >= target_within10:
                reached = True
                break
        k = min(batch, n_measurements - spent)
        candidates = _candidates(space, pool, tried) if k > 0 else []
        if not candidates:
            break
        new = choose(rule, predictor, candidates, k, rng, near_ms)
        new_ms = np.asarray(measure(list(new)), dtype=np.float64).reshape(-1)
        if len(new_ms) != len(new):
            raise ActiveError(f"measure returned {len(new_ms)} latencies for {len(new)} architectures")
        spent += len(new)
        tried.update(space.to_string(a) for a in new)
        ok = np.isfinite(new_ms) & (new_ms > 0)
        archs.extend(a for a, good in zip(new, ok) if good)
        ms = np.concatenate([ms, new_ms[ok]])
    if predictor is None:
        raise EmptyPool("nothing was measured: give initial measurements or n_measurements above 0")
    return ActiveOutcome(predictor, archs, ms, rounds, reached)
