"""Active profiling: choosing by relative spread, budget weighting, the loop's stopping rules."""

import numpy as np
import pytest

import spaces
from latency import predictors
from latency.active import (ActiveRound, BadBatch, BadBudget, EmptyPool, active_profile,
                            choose_uncertain, relative_spread)
from spaces.errors import HwnasError, UnknownName

NB201 = spaces.get("nb201")


class FakeEnsemble:
    """Hand-made mean and spread per architecture string."""

    def __init__(self, table: dict[str, tuple[float, float]]) -> None:
        self.space, self.table = NB201, table

    def predict(self, archs):
        return np.array([self.table[NB201.to_string(a)][0] for a in archs])

    def predict_std(self, archs):
        return np.array([self.table[NB201.to_string(a)][1] for a in archs])


def _fake(values: list[tuple[float, float]]):
    archs = NB201.sample_many(len(values), 0)
    return archs, FakeEnsemble({NB201.to_string(a): v for a, v in zip(archs, values)})


def test_relative_spread_and_choice_highest_first():
    # absolute spread is largest for the slow one (2.0 ms) but relative spread for the first
    archs, fake = _fake([(1.0, 0.5), (20.0, 2.0), (5.0, 1.0), (2.0, 0.1)])
    assert np.allclose(relative_spread(fake, archs), [0.5, 0.1, 0.2, 0.05])
    assert choose_uncertain(fake, archs, 2) == [archs[0], archs[2]]
    assert choose_uncertain(fake, archs, 2, exclude=[NB201.to_string(archs[0])]) == [archs[2], archs[1]]
    assert choose_uncertain(fake, archs, 9, exclude=[archs[1]]) == [archs[0], archs[2], archs[3]]
    assert choose_uncertain(fake, archs, 1, exclude=archs) == []


def test_near_ms_prefers_candidates_near_the_budget():
    archs, fake = _fake([(1.0, 0.25), (10.0, 2.0), (30.0, 9.0)])  # relative 0.25, 0.2, 0.3
    assert choose_uncertain(fake, archs, 1) == [archs[2]]
    assert choose_uncertain(fake, archs, 1, near_ms=10.0) == [archs[1]]
    assert choose_uncertain(fake, archs, 1, near_ms=1.0) == [archs[0]]
    weights = relative_spread(fake, archs, near_ms=10.0) / relative_spread(fake, archs)
    assert weights[1] == pytest.approx(1.0) and weights[0] < weights[2] < 1.0


# ---- the loop, with an additive (LUT) oracle on NB201 --------------------------------------------
COSTS = np.random.default_rng(3).uniform(0.2, 2.0, size=(len(NB201.decisions), 5))


def oracle(archs) -> np.ndarray:
    return np.array([1.0 + sum(COSTS[d, c] for d, c in enumerate(a.choices)) for a in archs])


def make_mlp():
    return predictors.create("mlp", NB201, members=3, hidden=(32,), max_steps=400, patience=60,
                             fixed_steps=200, seed=0)


def _setup(n_initial: int = 10):
    archs = NB201.sample_many(400, 1)
    holdout, initial, pool = archs[:100], archs[100:100 + n_initial], archs[100 + n_initial:]
    return initial, pool, (holdout, oracle(holdout))


def test_active_profile_stops_at_the_target():
    initial, pool, holdout = _setup()
    seen: list[ActiveRound] = []
    calls: list[int] = []

    def measure(archs):
        calls.append(len(archs))
        assert not {NB201.to_string(a) for a in archs} & {NB201.to_string(a) for a in holdout[0]}
        return oracle(archs)

    out = active_profile(NB201, make_mlp, measure, initial, oracle(initial), pool, holdout,
                         batch=10, n_measurements=200, target_within10=0.85, on_round=seen.append)
    assert out.reached_target and out.rounds == seen and out.rounds[-1].within10 >= 0.85
    assert all(r.within10 < 0.85 for r in out.rounds[:-1])
    assert [r.measured for r in out.rounds] == [10 + 10 * i for i in range(len(out.rounds))]
    assert len(out.archs) == len(out.ms) == 10 + sum(calls) and out.predictor.train_size == len(out.archs)
    assert len({NB201.to_string(a) for a in out.archs}) == len(out.archs)


@pytest.mark.parametrize("rule", ["active", "random"])
def test_active_profile_stops_after_n_measurements_and_skips_failures(rule):
    initial, pool, holdout = _setup()

    def measure(archs):  # the first architecture of every batch "cannot be measured"
        ms = oracle(archs)
        ms[0] = np.nan
        return ms

    out = active_profile(NB201, make_mlp, measure, initial, oracle(initial), pool, holdout,
                         batch=8, n_measurements=20, target_within10=1.01, rule=rule, seed=4)
    assert not out.reached_target
    # 8 + 8 + 4 = 20 measurements spent, one failure in each batch not trained on
    assert [r.measured for r in out.rounds] == [10, 17, 24, 27] and len(out.ms) == 27
    assert all(np.isfinite(out.ms))


def test_random_baseline_is_reproducible_and_active_differs():
    initial, pool, holdout = _setup()
    run = lambda strategy, seed: active_profile(  # noqa: E731
        NB201, make_mlp, oracle, initial, oracle(initial), pool, holdout, batch=10, n_measurements=10,
        target_within10=1.01, rule=strategy, seed=seed).archs
    assert run("random", 1) == run("random", 1) != run("random", 2)
    assert run("active", 1) == run("active", 2) != run("random", 1)


@pytest.mark.parametrize("kwargs,error", [
    ({"pool": []}, EmptyPool),
    ({"batch": 0}, BadBatch),
    ({"n_measurements": -1}, BadBudget),
    ({"rule": "greedy"}, UnknownName),
])
def test_bad_input_raises(kwargs, error):
    initial, pool, holdout = _setup()
    args = {"pool": pool, **kwargs}
    with pytest.raises(error) as info:
        active_profile(NB201, make_mlp, oracle, initial, oracle(initial), args.pop("pool"), holdout,
                       **args)
    assert isinstance(info.value, HwnasError)
    with pytest.raises(BadBatch):
        choose_uncertain(make_mlp(), pool, 0)


def test_diverse_rule_spreads_a_batch_over_different_decisions():
    """The pipeline's default rule: of near-copies with the top spread, only one is taken."""
    from latency.active import choose

    base = NB201.sample(0)
    twins = [spaces.Arch(base.space, base.choices[:5] + (c,)) for c in range(5)]  # differ in 1 edge
    far = [a for a in NB201.sample_many(40, 2) if sum(x != y for x, y in zip(a.choices, base.choices)) >= 4][:3]
    archs = twins + far
    table = {NB201.to_string(a): (1.0, 0.5 if a in twins else 0.4) for a in archs}
    fake = FakeEnsemble(table)
    rng = np.random.default_rng(0)
    top = choose("active", fake, archs, 3, rng)
    diverse = choose("diverse", fake, archs, 3, rng)
    assert all(a in twins for a in top)  # plain spread takes three near-copies
    assert sum(a in twins for a in diverse) == 1 and sum(a in far for a in diverse) == 2


def test_several_budgets_each_attract_candidates():
    archs, fake = _fake([(1.0, 0.2), (4.0, 0.8), (16.0, 3.2)])  # equal relative spread 0.2
    chosen = choose_uncertain(fake, archs, 2, near_ms=[1.0, 16.0])
    assert set(map(NB201.to_string, chosen)) == {NB201.to_string(archs[0]), NB201.to_string(archs[2])}
