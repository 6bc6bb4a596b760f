"""Pieces of the pipeline that need no device: budgets, the MACs repair, settings, stage log."""

import json

import numpy as np
import pytest

import spaces
from hwnas.pipeline.choosing import CountedMacs, latency_budgets, split_budgets, within_macs
from hwnas.pipeline.settings import BadSetting, PipelineSettings
from hwnas.pipeline.stages import StageLog


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
    assert PipelineSettings(space="nb201").engine == "nao"
    merged = PipelineSettings.merged({"sweep": None, "seed": 3}, {"sweep": 5, "seed": 1})
    assert merged.sweep == 5 and merged.seed == 3  # typed wins, untyped comes from the run
    for bad in ({"sweep": 0}, {"initial": 2}, {"target": 1.5}, {"strategy": "evolution"},
                {"active_budget": -1}):
        with pytest.raises(BadSetting):
            PipelineSettings(**bad)
    with pytest.raises(BadSetting, match="unknown"):
        PipelineSettings.merged({"nope": 1})


def test_stage_log_survives_reopening_and_refuses_garbage(tmp_path):
    log = StageLog(tmp_path)
    log.finish("profile", {"train": 3})
    assert StageLog(tmp_path).done("profile") and StageLog(tmp_path).info("profile") == {"train": 3}
    assert StageLog(tmp_path).finished() == ["profile"]
    (tmp_path / "stages.json").write_text("[1, 2]")
    with pytest.raises(Exception, match="not a stage record"):
        StageLog(tmp_path)
    json.loads((tmp_path / "stages.json").read_text())  # the garbage was left as it was
