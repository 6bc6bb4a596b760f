"""Every controller strategy runs on the one-shot evaluator through ``hwnas explore``:
NAO with weight sharing (NAO-WS), rl, parsec and rsps on one trained supernet checkpoint."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hwnas.cli import main

SPACE = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ws") / "uniform.ckpt"
    assert main(["supernet", "train", *SPACE, "--input-size", "8", "--epochs", "1",
                 "--max-samples", "256", "--sampler", "uniform", "-o", str(path)]) == 0
    return path


@pytest.mark.parametrize("strategy", ["nao", "rl", "parsec", "rsps"])
def test_a_strategy_searches_with_inherited_accuracy(checkpoint, tmp_path, strategy):
    out = tmp_path / strategy
    assert main(["explore", *SPACE, "--evaluator", "oneshot", "--supernet-ckpt", str(checkpoint),
                 "--strategy", strategy, "--queries", "8", "--device-table", "gold_6226",
                 "--max-samples", "256", "--out", str(out), "--no-progress"]) == 0
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 8 and history.arch.is_unique
    assert history.accuracy.between(0, 100).all()
    config = json.loads((out / "config.json").read_text())
    assert config["evaluator"]["name"] == "oneshot" and config["strategy"]["name"] == strategy
