"""Pieces of the pipeline that need no device: budgets, the MACs repair, settings, stage log."""

import json

import numpy as np
import pytest

import spaces
from hwnas.pipeline.choosing import CountedMacs, latency_budgets, split_budgets, within_macs
from hwnas.pipeline.settings import BadSetting, PipelineSettings
from hwnas.pipeline.stages import StageLog

NAMES = ("profile", "fit", "active", "budgets", "export")


def test_budgets_explicit_or_spread_inside_the_profiled_range():
    s = PipelineSettings(budgets=["macs<=2M", "latency_ms<=0.5", "latency_ms<=0.2"])
    assert split_budgets(s) == ([0.5, 0.2], 2e6)
    assert latency_budgets(s, np.array([0.1, 1.0])) == [0.2, 0.5]
    swept = latency_budgets(PipelineSettings(sweep=3), np.array([0.1, 0.3, 1.6]))
    assert len(swept) == 3 and 0.1 < swept[0] < swept[1] < swept[2] < 1.6
    assert swept[1] / swept[0] == pytest.approx(swept[2] / swept[1])  # geometric
    with pytest.raises(BadSetting, match="latency_ms<=X and macs<=Y"):
        split_budgets(PipelineSettings(budgets=["params<=1M"]))


def test_macs_repair_meets_the_budget_and_keeps_a_feasible_arch():
    space = spaces.get("fbnetv2", preset="tiny")
    macs = CountedMacs(space, 16, 10)
    archs = space.sample_many(20, rng=3)
    values = macs.predict(archs)
    big = archs[int(np.argmax(values))]
    budget = float(np.median(values))
    repaired = within_macs(space, big, None, macs, budget)
    assert repaired != big and macs.predict([repaired])[0] <= budget
    small = archs[int(np.argmin(values))]
    assert within_macs(space, small, None, macs, budget) == small  # already within: unchanged
    with pytest.raises(BadSetting, match="too tight"):
        within_macs(space, big, None, macs, 1.0)


def test_settings_defaults_merge_and_refuse_bad_values():
    s = PipelineSettings()
    assert (s.space, s.preset, s.device, s.engine) == ("fbnetv2", "tiny", "ort:cpu", "supernet")
    assert PipelineSettings(space="nb201").engine == "oneshot"  # a one-shot supernet exists
    assert PipelineSettings(space="x.py:build").engine == "nao"
    assert PipelineSettings(space="nb201").sweep == 10 and PipelineSettings().sweep == 3
    # the one-shot engine trains on the harder data, the others on digits, unless told
    assert PipelineSettings(space="nb201").dataset == "cluttered-digits"
    assert PipelineSettings().dataset == "digits"
    assert PipelineSettings(space="nb201", dataset="digits").dataset == "digits"
    # supernet training: the user's epochs, else those of SUPERNET_STEPS steps
    assert PipelineSettings().supernet_epochs_for(5748, 64) == 5   # cluttered-digits
    assert PipelineSettings().supernet_epochs_for(1437, 64) == 20  # digits
    assert PipelineSettings(supernet_epochs=3).supernet_epochs_for(1437, 64) == 3
    assert PipelineSettings().supernet_epochs_for(10, 64) >= 1
    merged = PipelineSettings.merged({"sweep": None, "seed": 3}, {"sweep": 5, "seed": 1})
    assert merged.sweep == 5 and merged.seed == 3  # typed wins, untyped comes from the run
    for bad in ({"sweep": 0}, {"initial": 2}, {"target": 1.5}, {"strategy": "evolution"},
                {"active_measurements": -1}, {"threads": 0}, {"supernet_epochs": 0}):
        with pytest.raises(BadSetting):
            PipelineSettings(**bad)
    with pytest.raises(BadSetting, match="unknown"):
        PipelineSettings.merged({"nope": 1})


def test_stage_log_survives_reopening_and_refuses_garbage(tmp_path):
    log = StageLog(tmp_path, NAMES)
    log.finish("profile", {"train": 3})
    again = StageLog(tmp_path, NAMES)
    assert again.done("profile") and again.info("profile") == {"train": 3}
    assert again.finished() == ["profile"]
    with pytest.raises(Exception, match="does not have"):  # a run of another stage layout
        StageLog(tmp_path, ("fit",))
    (tmp_path / "stages.json").write_text("[1, 2]")
    with pytest.raises(Exception, match="not a stage record"):
        StageLog(tmp_path, NAMES)
    json.loads((tmp_path / "stages.json").read_text())  # the garbage was left as it was


def test_settings_refuse_zero_rounds_and_a_bad_margin():
    with pytest.raises(BadSetting, match="--max-rounds must be at least 1"):
        PipelineSettings(max_rounds=0)
    with pytest.raises(BadSetting, match="--margin"):
        PipelineSettings(margin=0.7)
    assert PipelineSettings(margin=0.0).margin == 0.0


def test_margin_is_the_measured_drift_clipped():
    from hwnas.pipeline.audit import budget_margin, judge

    assert budget_margin(None, None) == 0.02 and budget_margin(0.5, None) == 0.20
    assert budget_margin(0.07, None) == 0.07 and budget_margin(0.5, 0.01) == 0.01
    verdict = judge(predicted_ms=0.9, measured_ms=1.0, budget_ms=1.05, margin=0.05, tolerance=0.1)
    assert verdict == {"error": pytest.approx(-0.1), "missed": False, "meets_budget": True}
    assert judge(0.8, 1.0, 1.04, 0.05, 0.1) == {"error": pytest.approx(-0.2), "missed": True,
                                                "meets_budget": False}


def test_every_budget_gets_the_most_accurate_measured_network_that_meets_it():
    from hwnas.pipeline.stage_budgets import choose_per_budget

    rows = [{"arch": a, "accuracy": acc, "predicted_ms": ms, "measured_ms": ms, "round": 1,
             "budget_ms": b, "macs": 1, "params": 1, "network": f"networks/{a}"}
            for a, acc, ms, b in (("fast", 80.0, 1.0, 1.5), ("slow", 90.0, 2.0, 3.0),
                                  ("slower", 95.0, 3.5, 3.0))]
    table = choose_per_budget(rows, [0.5, 1.5, 3.0], margin=0.0, tolerance=0.1)
    assert list(table["arch"]) == ["fast", "fast", "slow"]
    assert list(table["meets_budget"]) == [False, True, True]  # 0.5 ms: fastest, labelled unmet
    assert list(table["rounds"]) == [0, 1, 1]


def test_active_profiling_weights_candidates_near_any_budget():
    from latency.active import near_weight

    w = near_weight(np.array([1.0, 2.0, 4.0, 8.0]), [1.0, 8.0])
    assert w[0] == pytest.approx(1.0) and w[3] == pytest.approx(1.0)
    assert w[1] < 1.0 and w[2] < 1.0 and w[1] == pytest.approx(w[2])  # log-symmetric
    with pytest.raises(Exception, match="positive"):
        near_weight(np.array([1.0]), [0.0])
