"""The rl strategy (NAS-RL's controller, MONAS's rewards) on NB201 tables and a tiny grid."""

import numpy as np
import pytest
import torch

import spaces
from hwnas.objectives import parse_objectives
from hwnas.strategies.rl import STALL_LIMIT, RLStrategy
from spaces import HwnasError, InvalidOption
from tests.hwnas.test_strategies import OBJECTIVES, GridEvaluator, GridSpace

BUDGET_MS = 9.6  # about the median gold_6226 latency of NB201


@pytest.fixture(scope="module")
def nb201():
    return spaces.get("nb201")


@pytest.fixture(scope="module")
def table(nb201, shared_data):
    from hwnas.evaluators.latency_sources import TableLatency
    from hwnas.evaluators.tabular import TabularEvaluator

    return TabularEvaluator(nb201, ["accuracy", "latency_ms"],
                            latency=TableLatency(nb201, "gold_6226"))


def arch_list(result):
    return result.history["arch"].tolist()


def test_runs_n_queries_and_records_the_controller(nb201, table):
    before = table.queries
    result = RLStrategy(seed=0, batch_size=4).run(nb201, table, OBJECTIVES, 30)
    history = result.history
    assert len(history) == 30 and history["arch"].is_unique and table.queries - before == 30
    assert history["query"].tolist() == list(range(1, 31))
    assert result.strategy == "rl" and result.info["queries"] == 30
    assert result.info["options"] == {"seed": 0, "batch_size": 4, "reward": None,
                                      "entropy_weight": RLStrategy().entropy_weight,
                                      "hidden": RLStrategy().hidden, "lr": RLStrategy().lr,
                                      "baseline_decay": RLStrategy().baseline_decay,
                                      "memory_buffer": None}
    trace = result.info["controller"]
    assert trace["updates"] == len(trace["reward"]) == len(trace["entropy"]) >= 30 // 4
    assert all(0.0 <= r <= 1.0 for r in trace["reward"])  # the Pareto reward lies in [0, 1]
    assert nb201.is_valid(nb201.from_string(trace["most_likely"]))
    assert not result.front.empty


def test_same_seed_same_search_and_anytime(nb201, table):
    long = RLStrategy(seed=3).run(nb201, table, OBJECTIVES, 40)
    torch.manual_seed(99)
    again = RLStrategy(seed=3).run(nb201, table, OBJECTIVES, 40)
    short = RLStrategy(seed=3).run(nb201, table, OBJECTIVES, 17)  # stops inside a batch
    other = RLStrategy(seed=4).run(nb201, table, OBJECTIVES, 40)
    assert arch_list(long) == arch_list(again)
    assert arch_list(long)[:17] == arch_list(short)
    assert arch_list(long) != arch_list(other)


def test_the_controller_learns(nb201, table):
    """The Pareto reward of its draws rises and the policy sharpens (from uniform: 6 x ln 5
    nats per architecture)."""
    result = RLStrategy(seed=1).run(nb201, table, OBJECTIVES, 150)
    trace = result.info["controller"]
    assert trace["entropy"][0] == pytest.approx(6 * np.log(5), abs=0.05)
    assert np.mean(trace["reward"][-5:]) > np.mean(trace["reward"][:5]) + 0.1
    assert trace["entropy"][-1] < trace["entropy"][0] - 3.0
    assert sum(trace["new"]) == 150 and max(trace["new"]) <= 5


def test_one_objective_under_a_latency_budget(nb201, table):
    objectives = parse_objectives(["accuracy"], [f"latency_ms<={BUDGET_MS}"])
    result = RLStrategy(seed=0).run(nb201, table, objectives, 60)
    best = result.best()
    assert best is not None and best["latency_ms"] <= BUDGET_MS
    assert result.history["feasible"].equals(result.history["latency_ms"] <= BUDGET_MS)
    # MONAS's constraint reward steers the controller into the budget
    assert result.history["feasible"].mean() > 0.5
    assert len(result.front) == 1  # one searched objective: the single best feasible network
    alone = RLStrategy(seed=0).run(nb201, table, parse_objectives(["accuracy"]), 20)
    assert len(alone.history) == 20 and alone.best()["accuracy"] == alone.history["accuracy"].max()
    soft = RLStrategy(seed=0, reward="mnasnet-soft").run(nb201, table, objectives, 20)
    assert len(soft.history) == 20 and soft.info["options"]["reward"] == "mnasnet-soft"


def test_the_pareto_reward_ranks_every_evaluated_architecture(nb201, table):
    """Best = 1, worst = 0; a budget-breaking network ranks after every feasible one."""
    from hwnas.strategies.base import SearchContext

    objectives = parse_objectives(["accuracy", "latency_ms"], [f"latency_ms<={BUDGET_MS}"])
    ctx = SearchContext(nb201, table, objectives, 40, seed=0)
    archs = [a for a, _ in ctx.evaluate(nb201.sample_many(40, np.random.default_rng(0)))]
    reward = RLStrategy.pareto_rewards(ctx, archs)
    assert reward.max() == 1.0 and reward.min() == 0.0
    feasible = ctx.feasible(archs)
    assert 0 < feasible.sum() < len(archs)
    assert reward[feasible].min() > reward[~feasible].max()
    _, F = ctx.evaluated()
    dominated = np.array([any(np.all(g <= f) and np.any(g < f) for g in F[feasible]) for f in F])
    front = feasible & ~dominated
    assert reward[front].min() > reward[feasible & ~front].max()


def test_a_converged_controller_still_ends_on_a_small_space():
    """256 architectures: the controller soon proposes only known ones; random fills
    take over after STALL_LIMIT idle steps, and the whole space gets evaluated."""
    space = GridSpace()
    ev = GridEvaluator(space, ["accuracy", "latency_ms"])
    result = RLStrategy(seed=0, lr=0.2, entropy_weight=0.0).run(space, ev, OBJECTIVES, 400)
    assert len(result.history) == 256 and result.history["arch"].is_unique
    trace = result.info["controller"]
    assert STALL_LIMIT >= 1 and 0 < trace["random"] < 256 and sum(trace["new"]) == 256


def test_memory_buffer_trains_the_reconstruction(nb201, table):
    result = RLStrategy(seed=2, memory_buffer=40).run(nb201, table, OBJECTIVES, 60)
    trace = result.info["controller"]
    assert result.info["options"]["memory_buffer"] == 40 and len(result.history) == 60
    assert len(trace["reconstruction"]) == trace["updates"]
    assert np.mean(trace["reconstruction"][-3:]) < np.mean(trace["reconstruction"][:3])
    torch.manual_seed(99)  # the global generator plays no part: every weight comes from the seed
    again = RLStrategy(seed=2, memory_buffer=40).run(nb201, table, OBJECTIVES, 60)
    assert arch_list(again) == arch_list(result)


@pytest.mark.parametrize("options, match", [
    ({"reward": "nope"}, "unknown reward 'nope'; known: monas, monas-weighted"),
    ({"entropy_weight": -0.1}, "entropy weight must be at least 0"),
    ({"entropy_weight": float("nan")}, "entropy weight must be a finite number"),
    ({"hidden": 0}, "hidden size"),
    ({"hidden": 2.5}, "hidden size"),
    ({"lr": 0}, "learning rate must be positive"),
    ({"baseline_decay": 1.0}, r"baseline decay must be in \[0, 1\)"),
    ({"batch_size": 0}, "batch size"),
    ({"memory_buffer": 0}, "--memory-buffer must be a positive number"),
    ({"memory_buffer": -3}, "--memory-buffer must be a positive number"),
])
def test_bad_options_raise(options, match):
    with pytest.raises(HwnasError, match=match):
        RLStrategy(**options)


def test_bad_option_values_are_invalid_options():
    with pytest.raises(InvalidOption):
        RLStrategy(lr=-1.0)
