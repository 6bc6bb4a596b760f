"""Every space through the whole pipeline (``hwnas search``), at a tiny scale.

The device is the exact stand-in ``test:macs`` (tests/hwnas/macs_device.py), so the
verdicts are the code's, not the test machine's load.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

import spaces
from hwnas.cli import main
from tests.hwnas import macs_device  # registers the test:macs devices
from tests.spaces.builder_sources import plain

pytest.importorskip("onnxruntime")

TINY = ["--device", macs_device.SPEC, "--initial", "6", "--holdout", "5",
        "--active-measurements", "0", "--target", "1.0", "--pool", "40", "--sweep", "2",
        "--max-rounds", "1", "--queries", "8", "--epochs", "1", "--retrain-epochs", "1",
        "--supernet-epochs", "1", "--finetune-epochs", "0",
        "--max-samples", "200", "--margin", "0.05", "--no-progress"]


def _check_run(out, space) -> pd.DataFrame:
    config = json.loads((out / "config.json").read_text())
    assert config["space"] == space.key and config["pipeline"]["strategy"] is None
    front = pd.read_csv(out / "pareto.csv")
    assert len(front) == 2
    for row in front.itertuples():
        space.from_string(str(row.arch))  # an architecture of the run's space
        assert (out / str(row.onnx)).is_file()
        assert row.measured_ms > 0
    return front


def test_nb201_runs_the_pipeline_with_its_own_input_size(tmp_path, capsys):
    out = tmp_path / "nb201"
    assert main(["search", "--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1",
                 "--input-size", "16", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "engine oneshot" in printed  # a space with a one-shot supernet: trained once
    assert (out / "supernet.ckpt").is_file()
    space = spaces.get("nb201", C=4, N=1)
    _check_run(out, space)
    config = json.loads((out / "config.json").read_text())
    assert config["pipeline"]["input_size"] == 16
    assert config["pipeline"]["space_opts"] == {"C": 4, "N": 1}
    from latency.store import MeasurementStore

    with MeasurementStore(out / "lat.sqlite", readonly=True) as store:
        assert set(store.frame()["input_shape"]) == {"3x16x16"}


def test_a_builder_space_runs_the_pipeline_with_nao(tmp_path, capsys):
    source = tmp_path / "myspace.py"
    source.write_text(plain(widths=(4, 8), kernels=(1, 3), depths=(1, 2)))
    out = tmp_path / "builder"
    assert main(["search", "--space", f"{source}:build", "--input-size", "12", "--out", str(out),
                 *TINY]) == 0
    _check_run(out, spaces.get(f"{source}:build"))
    assert json.loads((out / "config.json").read_text())["pipeline"]["sweep"] == 2
    assert "engine nao" in capsys.readouterr().out  # no supernet for a builder function


def test_references_at_another_input_size_are_ignored_with_the_reason(tmp_path, capsys):
    db = tmp_path / "lat.sqlite"
    small = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1"]
    assert main(["profile", "--device", macs_device.SPEC, *small, "--input-size", "16", "-n", "20",
                 "--seed", "3", "--db", str(db), "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "run"
    assert main(["search", *small, "--input-size", "12", "--db", str(db), "--out", str(out),
                 *[a if a != macs_device.SPEC else macs_device.SPEC2 for a in TINY]]) == 0
    printed = capsys.readouterr().out
    assert "ignored test:macs" in printed and "input 3x16x16" in printed
    assert "not nb201" in printed and "at input 3x12x12" in printed
    stages = json.loads((out / "stages.json").read_text())
    assert stages["profile"]["train"] == 6  # from scratch: no reference was usable
