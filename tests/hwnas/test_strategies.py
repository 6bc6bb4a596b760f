"""Strategies on a tiny tabular problem whose optimum and front are known exactly."""

import itertools

import numpy as np
import pandas as pd
import pytest

from hwnas import pareto, strategies
from hwnas.evaluators.base import Evaluator
from hwnas.objectives import parse_objectives
from hwnas.strategies.base import SearchContext
from spaces import Arch, Decision, HwnasError, Space, UnknownName


class GridSpace(Space):
    """4 decisions x 4 options = 256 archs; no rules, no network needed."""

    name = "grid"
    decisions = tuple(Decision(f"d{i}", ("a", "b", "c", "d")) for i in range(4))

    def to_string(self, arch):
        return "-".join(map(str, self.validate(arch).choices))

    def from_string(self, text):
        return self.arch([int(t) for t in text.split("-")])

    def _build(self, arch, num_classes, input_size):  # pragma: no cover - never built
        raise NotImplementedError


class GridEvaluator(Evaluator):
    """Accuracy rises with option index (with one interaction), latency is additive:
    a genuine trade-off with a known front."""

    name = "grid"
    LAT = np.array([[1.0, 2.0, 3.5, 5.0], [0.5, 1.5, 2.0, 4.0], [1.0, 1.2, 3.0, 3.3], [0.2, 2.2, 2.4, 4.4]])
    ACC = np.array([[0, 3, 5, 6], [0, 2, 5, 5.5], [0, 1, 4, 4.2], [0, 4, 4.5, 7]])

    def supported_metrics(self):
        return ("accuracy", "latency_ms")

    @classmethod
    def metrics_of(cls, choices):
        acc = 60 + sum(cls.ACC[i, c] for i, c in enumerate(choices))
        if choices[0] == 3 and choices[3] == 3:
            acc += 2.5  # interaction: the two big options together pay off
        lat = sum(cls.LAT[i, c] for i, c in enumerate(choices))
        return {"accuracy": acc, "latency_ms": lat}

    def _evaluate_many(self, archs):
        return [self.metrics_of(a.choices) for a in archs]


def all_metrics():
    rows = []
    for choices in itertools.product(range(4), repeat=4):
        rows.append({"arch": "-".join(map(str, choices)), **GridEvaluator.metrics_of(choices)})
    return pd.DataFrame(rows)


OBJECTIVES = parse_objectives(["accuracy", "latency_ms"])


def hv_ratio(history: pd.DataFrame) -> float:
    full = all_metrics()
    F = pareto.objective_matrix(full, OBJECTIVES)
    lo, hi = F.min(axis=0), F.max(axis=0)
    return (pareto.normalised_hypervolume(history, OBJECTIVES, lo, hi)
            / pareto.normalised_hypervolume(full, OBJECTIVES, lo, hi))


@pytest.fixture
def grid():
    space = GridSpace()
    return space, GridEvaluator(space, ["accuracy", "latency_ms"])


def test_registry_lists_and_rejects():
    assert {"random", "evolution", "dpp"} <= set(strategies.names())
    with pytest.raises(UnknownName, match="unknown strategy 'nope'"):
        strategies.get("nope")


def test_random_covers_the_space_once_and_finds_the_exact_front(grid):
    space, ev = grid
    result = strategies.create("random", seed=0, batch_size=7).run(space, ev, OBJECTIVES, 256)
    assert len(result.history) == 256 and result.history["arch"].is_unique
    assert ev.queries == 256
    true = pareto.front_of(all_metrics(), OBJECTIVES)
    assert set(result.front["arch"]) == set(true["arch"])
    assert list(result.history["query"]) == list(range(1, 257))


@pytest.mark.parametrize("name, options", [("evolution", {"population": 20}),
                                           ("dpp", {"initial": 8, "batch_size": 4, "trees": 16,
                                                    "pool_random": 64})])
def test_multi_objective_strategies_approach_the_true_front(grid, name, options):
    """34 of the 256 archs are Pareto-optimal; with 100 queries a guided search gets
    within 3% of the true front's hypervolume and ahead of random search."""
    space, _ = grid
    ratios, random_ratios = [], []
    for seed in range(3):
        ev = GridEvaluator(space, ["accuracy", "latency_ms"])
        result = strategies.create(name, seed=seed, **options).run(space, ev, OBJECTIVES, 100)
        assert len(result.history) == 100 and result.history["arch"].is_unique and ev.queries == 100
        ratios.append(hv_ratio(result.history))
        rnd = strategies.create("random", seed=seed).run(
            space, GridEvaluator(space, ["accuracy", "latency_ms"]), OBJECTIVES, 100)
        random_ratios.append(hv_ratio(rnd.history))
    assert np.median(ratios) >= 0.975
    assert np.median(ratios) > np.median(random_ratios)


@pytest.mark.parametrize("name, budget, must_hit", [("random", 256, 3), ("dpp", 70, 3),
                                                    ("evolution", 100, 2)])
def test_constrained_search_finds_the_best_feasible_arch(grid, name, budget, must_hit):
    options = {"trees": 16, "pool_random": 128} if name == "dpp" else {}
    """Maximise accuracy under latency_ms<=8 (evolution uses MONAS's constraint reward)."""
    space, _ = grid
    objectives = parse_objectives(["accuracy"], ["latency_ms<=8"])
    full = all_metrics()
    best = full[full["latency_ms"] <= 8]["accuracy"].max()
    hits = 0
    for seed in range(3):
        ev = GridEvaluator(space, ["accuracy", "latency_ms"])
        result = strategies.create(name, seed=seed, **options).run(space, ev, objectives, budget)
        found = result.best()
        assert found is not None and found["latency_ms"] <= 8
        assert found["accuracy"] >= best - 0.5
        hits += found["accuracy"] == pytest.approx(best)
        assert result.history["feasible"].equals(result.history["latency_ms"] <= 8)
    assert hits >= must_hit


def test_same_seed_same_history_and_anytime(grid):
    space, ev = grid
    a = strategies.create("evolution", seed=3, population=10, batch_size=3).run(space, ev, OBJECTIVES, 40)
    b = strategies.create("evolution", seed=3, population=10, batch_size=3).run(space, ev, OBJECTIVES, 40)
    c = strategies.create("evolution", seed=3, population=10, batch_size=3).run(space, ev, OBJECTIVES, 25)
    assert a.history["arch"].tolist() == b.history["arch"].tolist()
    assert a.history["arch"].tolist()[:25] == c.history["arch"].tolist()


def test_context_respects_budget_and_deduplicates(grid):
    space, ev = grid
    ctx = SearchContext(space, ev, OBJECTIVES, n_queries=3)
    a, b = Arch("grid", (0, 0, 0, 0)), Arch("grid", (1, 1, 1, 1))
    got = ctx.evaluate([a, a, b])
    assert [x for x, _ in got] == [a, a, b] and ctx.used == 2
    got = ctx.evaluate([Arch("grid", (2, 2, 2, 2)), Arch("grid", (3, 3, 3, 3)), a])
    assert ctx.used == 3 and ctx.done
    assert [x.choices for x, _ in got] == [(2, 2, 2, 2), (0, 0, 0, 0)]  # the 4th is over budget
    with pytest.raises(HwnasError, match="positive integer"):
        SearchContext(space, ev, OBJECTIVES, n_queries=0)


def test_bad_strategy_options():
    with pytest.raises(HwnasError, match="population"):
        strategies.create("evolution", population=1)
    with pytest.raises(HwnasError, match="tournament"):
        strategies.create("evolution", population=4, sample_size=5)
    with pytest.raises(HwnasError, match="batch size"):
        strategies.create("random", batch_size=0)


from tests.spaces.builder_sources import per_layer_kernels  # noqa: E402

CONDITIONAL_BUILDER = per_layer_kernels()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["random", "evolution", "dpp", "nao", "optuna:tpe", "optuna:nsga2"])
def test_every_strategy_searches_a_conditional_builder_space(tmp_path, name):
    """A define-by-run space with conditional decisions (k1, k2 exist only for deeper nets)
    goes through every strategy unchanged: only members of the space are evaluated."""
    import spaces

    (tmp_path / "cond.py").write_text(CONDITIONAL_BUILDER)
    space = spaces.get(f"{tmp_path / 'cond.py'}:build")
    assert space.size == 2 * 2 + 2 * 4 + 2 * 8

    class OneHot(Evaluator):
        name = "onehot"

        def supported_metrics(self):
            return ("accuracy", "latency_ms")

        def _evaluate_many(self, archs):
            weights = np.linspace(1, 3, space.num_options)
            return [{"accuracy": float(space.one_hot(a) @ weights),
                     "latency_ms": float(space.one_hot(a) @ weights[::-1])} for a in archs]

    options = {"population": 6} if name == "evolution" else {}
    history = strategies.create(name, seed=0, **options).run(
        space, OneHot(space, ["accuracy", "latency_ms"]), OBJECTIVES, 16).history
    assert len(history) == 16 and history["arch"].is_unique
    for text in history["arch"]:
        arch = space.from_string(text)  # validates: "unused" exactly where a decision is absent
        assert space.to_string(arch) == text
