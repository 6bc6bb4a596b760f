"""``hwnas explore --strategy darts|gdas``: the differentiable cell searches as single
searches, one search per latency budget, the chosen cells trained by the evaluator."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import spaces
from hwnas import strategies
from hwnas.cli import main
from hwnas.pipeline import settings
from hwnas.strategies import cell_search

NB201 = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1", "--input-size", "8"]


def test_the_registry_and_the_pipeline_agree_on_what_can_be_relaxed():
    assert strategies.get("darts") is cell_search.DartsStrategy
    assert strategies.get("gdas") is cell_search.GdasStrategy
    assert strategies.get("toponas") is cell_search.TopoNASStrategy
    assert strategies.get("entrannas") is cell_search.EnTranNASStrategy
    assert cell_search.RELAXABLE_SPACES == settings.RELAXABLE_SPACES
    assert cell_search.METHOD_SPACES == settings.CELL_ENGINE_SPACES
    assert set(settings.CELL_ENGINES) == set(cell_search.METHOD_SPACES)


def test_gdas_explores_one_cell_per_budget(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["explore", *NB201, "--evaluator", "train", "--strategy", "gdas",
                 "--device-table", "gold_6226", "--max-samples", "128", "--epochs", "1",
                 "--sweep", "2", "--queries", "2", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    history = pd.read_csv(out / "history.csv")
    assert 1 <= len(history) <= 2
    space = spaces.get("nb201", C=4, N=1)
    for text in history["arch"]:
        space.from_string(str(text))
    options = json.loads((out / "config.json").read_text())
    assert "gdas" in json.dumps(options)


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "gdas", "--second-order"], "--second-order applies to --strategy darts"),
    (["--space", "fbnetv2", "--strategy", "darts"], "searches the cell spaces nb201 and darts"),
    (["--strategy", "entrannas"], "searches the darts cell space"),
])
def test_bad_cell_search_options_are_one_sentence(tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    base = NB201 if "--space" not in argv else []
    assert main(["explore", *base, "--evaluator", "train", "--device-table", "gold_6226",
                 "--max-samples", "128", *argv, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()
