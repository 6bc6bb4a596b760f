"""Objective names, budget parsing (units, directions, malformed input) and feasibility."""

import numpy as np
import pandas as pd
import pytest

from hwnas.objectives import (InfeasibleBudget, MalformedBudget, check_feasible, feasible_mask,
                              format_number, parse_budget, parse_objectives)
from spaces import HwnasError, UnknownName


@pytest.mark.parametrize("text, name, value", [
    ("latency_ms<=5", "latency_ms", 5.0),
    ("latency_ms <= 2.5ms", "latency_ms", 2.5),
    ("macs<=300M", "macs", 300e6),
    ("macs<=1.5G", "macs", 1.5e9),
    ("params<=250k", "params", 250e3),
    ("params<2e6", "params", 2e6),
    ("accuracy>=90", "accuracy", 90.0),
    ("accuracy>=92.5%", "accuracy", 92.5),
])
def test_parse_budget_units(text, name, value):
    b = parse_budget(text)
    assert b.name == name and b.value == pytest.approx(value)


@pytest.mark.parametrize("text, match", [
    ("latency_ms<=abc", "malformed budget"),
    ("latency_ms=5", "malformed budget"),
    ("macs<=300X", "malformed budget"),
    ("", "malformed budget"),
    ("flops<=3M", "unknown metric 'flops'"),
    ("macs>=3M", "wrong way"),
    ("accuracy<=90", "wrong way"),
    ("latency_ms<=0", "positive"),
    ("macs<=5ms", "unit 'ms'"),
])
def test_malformed_budgets_are_rejected_with_one_sentence(text, match):
    with pytest.raises(MalformedBudget, match=match) as info:
        parse_budget(text)
    assert "\n" not in str(info.value) and isinstance(info.value, HwnasError)


def test_objectives_and_budget_only_constraints():
    objs = parse_objectives(["accuracy", "latency_ms"], ["latency_ms<=5", "macs<=300M"])
    assert [(o.name, o.direction, o.budget, o.searched) for o in objs] == [
        ("accuracy", "max", None, True), ("latency_ms", "min", 5.0, True),
        ("macs", "min", 300e6, False)]
    assert objs[0].to_min([90.0]).tolist() == [-90.0]
    frame = pd.DataFrame({"accuracy": [90, 91, 92], "latency_ms": [4, 6, 5], "macs": [1e8, 1e8, 4e8]})
    assert feasible_mask(frame, objs).tolist() == [True, False, False]


def test_unknown_or_repeated_objectives():
    with pytest.raises(UnknownName, match="unknown objective 'speed'"):
        parse_objectives(["accuracy", "speed"])
    with pytest.raises(HwnasError, match="twice"):
        parse_objectives(["accuracy", "accuracy"])
    with pytest.raises(MalformedBudget, match="more than one budget"):
        parse_objectives(["accuracy"], ["macs<=1M", "macs<=2M"])


def test_infeasible_budget_is_reported_before_searching():
    objs = parse_objectives(["accuracy", "latency_ms"], ["latency_ms<=1", "accuracy>=50"])
    with pytest.raises(InfeasibleBudget, match=r"latency_ms<=1 is infeasible.*lowest latency_ms.*2\.66"):
        check_feasible(objs, {"latency_ms": 2.66, "accuracy": 94.4})
    check_feasible(parse_objectives(["accuracy"], ["latency_ms<=3"]), {"latency_ms": 2.66})
    check_feasible(objs, {"latency_ms": None})  # unknown minimum: never rejects
    with pytest.raises(InfeasibleBudget, match="highest accuracy"):
        check_feasible(parse_objectives(["latency_ms"], ["accuracy>=95"]), {"accuracy": 94.37})
    with pytest.raises(InfeasibleBudget, match="100%"):
        parse_budget("accuracy>=101")


def test_format_number():
    assert format_number(300e6) == "300M" and format_number(1.5e9) == "1.5G"
    assert format_number(2500) == "2.5k" and format_number(5) == "5"
    assert np.isclose(parse_budget(f"macs<={format_number(123.4e6)}").value, 123.4e6)


def test_budgets_met_only_apart_are_refused_together():
    import numpy as np

    from hwnas.objectives import InfeasibleBudget, check_jointly_feasible, parse_objectives

    table = {"accuracy": np.array([90.0, 70.0, 80.0]), "latency_ms": np.array([9.0, 1.0, 5.0])}
    both = parse_objectives(["accuracy", "latency_ms"], ["accuracy>=85", "latency_ms<=4"])
    with pytest.raises(InfeasibleBudget, match="no architecture of nb201 meets the budgets "
                                               "accuracy>=85, latency_ms<=4 together"):
        check_jointly_feasible(both, table, "nb201")
    check_jointly_feasible(parse_objectives(["accuracy", "latency_ms"],
                                            ["accuracy>=75", "latency_ms<=5"]), table)
    # a budget on a metric the table lacks is left out: never a wrong refusal
    partial = parse_objectives(["accuracy", "latency_ms", "macs"], ["accuracy>=85", "macs<=1"])
    check_jointly_feasible(partial, table)
