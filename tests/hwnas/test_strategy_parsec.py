"""PARSEC (hwnas.strategies.parsec) on fake evaluators: its learned distribution
concentrates on the one best architecture, the importance-weighted update is the
gradient of sum_k w_k log p(alpha_k), a seed fixes the search, the search is anytime and
always ends, several objectives get a Pareto reward, and bad options are refused in one
sentence."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.evaluators.base import Evaluator
from hwnas.objectives import parse_objectives
from hwnas.strategies.base import SearchContext
from hwnas.strategies.parsec import Categoricals, PARSECStrategy, importance_weights
from spaces import Arch, Decision, HwnasError
from tests.hwnas.test_strategies import GridSpace

TARGET = (2, 0, 3, 1, 2, 3)


class HexSpace(GridSpace):
    """6 decisions x 4 options = 4096 archs; no rules, no network."""

    name = "hex"
    decisions = tuple(Decision(f"d{i}", ("a", "b", "c", "d")) for i in range(6))


class MatchEvaluator(Evaluator):
    """Accuracy = 60 + 5 x (decisions equal to TARGET): one best architecture. Latency
    grows with the option indices, so accuracy and latency trade off."""

    name = "match"

    def supported_metrics(self):
        return ("accuracy", "latency_ms")

    def _evaluate_many(self, archs):
        return [{"accuracy": 60.0 + 5.0 * sum(c == t for c, t in zip(a.choices, TARGET)),
                 "latency_ms": 1.0 + float(sum(a.choices))} for a in archs]


ACCURACY = parse_objectives(["accuracy"])
BOTH = parse_objectives(["accuracy", "latency_ms"])


def search(objectives=ACCURACY, queries=150, **options):
    space = HexSpace()
    strategy = PARSECStrategy(**options)
    result = strategy.run(space, MatchEvaluator(space, ["accuracy", "latency_ms"]), objectives,
                          queries)
    return strategy, result


def one_sentence(error: BaseException) -> bool:
    text = str(error)
    return "\n" not in text and ". " not in text.rstrip(".")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distribution_concentrates_on_the_best_architecture(seed):
    strategy, result = search(seed=seed)
    target = Arch("hex", TARGET)
    assert strategy.most_likely() == target
    p_target = np.prod([p[c] for p, c in zip(strategy.probs, TARGET)])
    assert p_target > 0.5  # most of the probability mass on the one best of 4096
    assert result.best()["arch"] == "-".join(map(str, TARGET))
    assert result.info["most_likely"] == "-".join(map(str, TARGET))
    # the distribution in the result's info: one list per decision, each summing to 1
    assert len(result.info["probs"]) == 6
    assert all(abs(sum(p) - 1) < 1e-9 and len(p) == 4 for p in result.info["probs"])
    assert len(result.history) == 150 and result.history["arch"].is_unique


def test_update_is_the_importance_weighted_gradient():
    space = HexSpace()
    dist = Categoricals(space)
    dist.logits = [np.array([0.3, -0.2, 0.1, 0.0]) for _ in space.decisions]
    archs = [Arch("hex", (0,) * 6), Arch("hex", (1, 2, 3, 0, 1, 2)), Arch("hex", (3,) * 6)]
    w = importance_weights([0.9, 0.5, 0.1], temperature=0.7)
    assert w.sum() == pytest.approx(1) and w[0] > w[1] > w[2]

    def objective(logits):  # sum_k w_k log p(alpha_k) for the first decision's logits
        p = np.exp(logits) / np.exp(logits).sum()
        return sum(wk * np.log(p[a.choices[0]]) for wk, a in zip(w, archs))

    base = dist.logits[0].copy()
    numeric = np.array([(objective(base + h) - objective(base - h)) / 2e-6
                        for h in np.eye(4) * 1e-6])
    dist.update(archs, w, lr=0.1)
    # compare distributions (logits are only defined up to a constant)
    expect = base + 0.1 * numeric
    got_p = np.exp(dist.logits[0]) / np.exp(dist.logits[0]).sum()
    want_p = np.exp(expect) / np.exp(expect).sum()
    assert got_p == pytest.approx(want_p, abs=1e-6)
    # equal scores: equal weights
    assert importance_weights([0.4, 0.4, 0.4]) == pytest.approx([1 / 3] * 3)


def test_same_seed_same_search_and_anytime():
    a, ra = search(seed=5, queries=60)
    b, rb = search(seed=5, queries=60)
    _, rc = search(seed=5, queries=37)
    assert ra.history["arch"].tolist() == rb.history["arch"].tolist()
    assert all(np.array_equal(p, q) for p, q in zip(a.probs, b.probs))
    assert ra.history["arch"].tolist()[:37] == rc.history["arch"].tolist()
    _, other = search(seed=6, queries=60)
    assert other.history["arch"].tolist() != ra.history["arch"].tolist()


def test_search_always_ends_when_the_distribution_has_concentrated():
    # a sharp update concentrates the distribution within a few steps, after which its
    # draws are all known: the 400 queries are still spent, with fresh samples
    _, result = search(seed=0, queries=400, lr=8.0, temperature=0.2)
    assert len(result.history) == 400 and result.history["arch"].is_unique
    assert result.info["fresh"] > 0


def test_several_objectives_get_a_pareto_reward():
    strategy, result = search(objectives=BOTH, seed=0, queries=80)
    assert len(result.history) == 80 and result.history["arch"].is_unique
    assert len(result.front) >= 3  # a trade-off front, not one point
    # the reward: quantile in the constrained (rank, crowding) order over all evaluated
    space = HexSpace()
    budgeted = parse_objectives(["accuracy", "latency_ms"], ["latency_ms<=8"])
    ctx = SearchContext(space, MatchEvaluator(space, ["accuracy", "latency_ms"]), budgeted, 10)
    archs = [Arch("hex", c) for c in [(0,) * 6, TARGET, (2, 0, 3, 1, 0, 0), (1, 1, 1, 1, 1, 1),
                                      (3,) * 6, (3, 3, 3, 3, 3, 2)]]
    ctx.evaluate(archs)
    scores = dict(zip(archs, strategy._scores(ctx, archs)))
    # front (feasible): (0..0) 60% 1 ms, (2,0,3,1,0,0) 80% 7 ms; (1,..,1) 65% 7 ms is
    # dominated; TARGET (90%, 12 ms) and the 3s break the budget, smallest overshoot first
    front = [archs[0], archs[2]]
    assert max(scores.values()) == 1.0 and min(scores.values()) == 0.0
    assert min(scores[a] for a in front) > scores[archs[3]] > scores[archs[1]]
    assert scores[archs[1]] > scores[archs[5]] > scores[archs[4]]


def test_one_objective_with_a_budget_uses_the_monas_reward():
    budgeted = parse_objectives(["accuracy"], ["latency_ms<=10"])
    strategy, result = search(objectives=budgeted, seed=1, queries=120)
    best = result.best()
    assert best is not None and best["latency_ms"] <= 10  # TARGET itself is 12 ms
    assert best["accuracy"] >= 75.0
    space = HexSpace()
    ctx = SearchContext(space, MatchEvaluator(space, ["accuracy", "latency_ms"]), budgeted, 10)
    archs = [Arch("hex", c) for c in [TARGET, (2, 0, 3, 1, 0, 0), (0,) * 6, (3,) * 6]]
    ctx.evaluate(archs)
    # feasible by accuracy first (80% > 60%), then the budget breakers by overshoot
    assert strategy._scores(ctx, archs).tolist() == pytest.approx([1 / 3, 1.0, 2 / 3, 0.0])


def test_probs_before_a_search_and_options():
    strategy = PARSECStrategy()
    assert strategy.probs is None
    with pytest.raises(HwnasError, match="before a search"):
        strategy.most_likely()
    assert strategy.options() == {"seed": 0, "batch_size": 8, "lr": 2.0, "temperature": 1.0,
                                  "reward": None}
    assert PARSECStrategy.name == "parsec"


@pytest.mark.parametrize("options, match", [
    ({"batch_size": 1}, "at least 2"),
    ({"batch_size": 0}, "at least 2"),
    ({"batch_size": 2.5}, "at least 2"),
    ({"lr": 0}, "learning rate"),
    ({"lr": -1.0}, "learning rate"),
    ({"lr": float("nan")}, "learning rate"),
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": "warm"}, "temperature"),
    ({"reward": "nope"}, "unknown reward"),
])
def test_bad_options_are_refused_in_one_sentence(options, match):
    with pytest.raises(HwnasError, match=match) as error:
        PARSECStrategy(**options)
    assert one_sentence(error.value)
