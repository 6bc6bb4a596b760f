"""Repeated latency budgets go to a strategy that searches once per budget (the supernet)."""

import pytest

from hwnas.cli.explore_cmd import split_strategy_budgets
from hwnas.objectives import MalformedBudget


def _settings(strategy, budgets):
    return {"strategy": strategy, "budget": budgets}


def test_supernet_takes_every_latency_budget_and_leaves_the_rest():
    rest, per_search = split_strategy_budgets(
        _settings("supernet", ["latency_ms<=0.05", "macs<=2M", "latency_ms<=0.1"]))
    assert rest == ["macs<=2M"]
    assert per_search == pytest.approx([0.05, 0.1])


def test_single_latency_budget_stays_an_objective_budget():
    rest, per_search = split_strategy_budgets(_settings("supernet", ["latency_ms<=0.05"]))
    assert rest == ["latency_ms<=0.05"] and per_search is None


def test_other_strategies_keep_their_budgets():
    budgets = ["latency_ms<=5", "latency_ms<=3"]
    assert split_strategy_budgets(_settings("evolution", budgets)) == (budgets, None)


def test_malformed_budget_is_still_refused():
    with pytest.raises(MalformedBudget):
        split_strategy_budgets(_settings("supernet", ["latency_ms<=abc", "latency_ms<=3"]))
