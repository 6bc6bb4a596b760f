"""The differentiable cell-search engines through the whole pipeline: DARTS, GDAS, TopoNAS and
EnTranNAS on the NAS-Bench-201 and DARTS cell spaces, each budget searched with the predictor's latency in
the architecture loss, the derived cells trained alone, exported and timed.

Devices are the exact stand-ins of tests/hwnas/macs_device.py, so verdicts do not depend
on the load of the test machine.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

import spaces
from hwnas.cli import main
from tests.hwnas import macs_device

pytest.importorskip("onnxruntime")

NB201 = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1", "--input-size", "8"]
DARTS = ["--space", "darts", "--space-opt", "C=4", "--space-opt", "layers=3", "--input-size", "8"]
TINY = ["--initial", "8", "--holdout", "5", "--active-measurements", "0", "--target", "1.0",
        "--pool", "40", "--sweep", "2", "--max-rounds", "1", "--search-epochs", "1",
        "--retrain-epochs", "1", "--max-samples", "256", "--margin", "0.05", "--no-progress"]


@pytest.mark.parametrize("space, strategy, extra", [
    (NB201, "darts", ["--second-order"]),  # gdas runs in test_cell_search_strategy.py; the
    (DARTS, "toponas", []),                # methods' own variants are in tests/hwnas/oneshot/
    (DARTS, "entrannas", []),
])
def test_a_cell_search_runs_the_whole_chain(tmp_path, capsys, space, strategy, extra):
    out = tmp_path / "run"
    assert main(["search", *space, "--device", macs_device.SPEC, "--out", str(out), "--strategy",
                 strategy, *TINY, *extra]) == 0
    printed = capsys.readouterr().out
    assert f"{strategy} warm-up" in printed
    config = json.loads((out / "config.json").read_text())["pipeline"]
    assert config["strategy"] == strategy and config["second_order"] == bool(extra)
    front = pd.read_csv(out / "pareto.csv")
    assert len(front) == 2
    family = spaces.get(config["space"], **config["space_opts"])
    for row in front.itertuples():
        family.from_string(str(row.arch))  # a valid architecture of the space
        assert (out / str(row.onnx)).is_file()


@pytest.mark.parametrize("space, extra, message", [
    (NB201, ["--strategy", "gdas", "--second-order"], "--second-order applies to --strategy darts"),
    (NB201, ["--strategy", "oneshot", "--second-order"], "--second-order applies to --strategy darts"),
    (["--space", "fbnetv2"], ["--strategy", "darts"], "searches the cell spaces nb201 and darts"),
    (NB201, ["--strategy", "toponas"], "searches the darts cell space"),
])
def test_bad_cell_search_settings_are_one_sentence_and_write_nothing(tmp_path, capsys, space,
                                                                     extra, message):
    out = tmp_path / "never"
    assert main(["search", *space, "--device", macs_device.SPEC, "--out", str(out), *TINY,
                 *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()
