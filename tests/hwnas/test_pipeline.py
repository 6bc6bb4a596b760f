"""The default pipeline (hwnas search with no arguments), reduced: few archs, one epoch, one budget."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hwnas.cli import main

pytest.importorskip("onnxruntime")

REDUCED = ["--initial", "8", "--holdout", "6", "--active-budget", "6", "--active-batch", "3",
           "--target", "1.0", "--pool", "60", "--sweep", "1", "--search-epochs", "1",
           "--retrain-epochs", "1", "--max-samples", "300", "--quick-timing", "--no-progress"]


def _store_rows(path) -> int:
    from latency.store import MeasurementStore

    return len(MeasurementStore(path).frame())


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "run"
    code = main(["search", "--out", str(out), *REDUCED])
    assert code == 0
    return out


def test_every_artefact_exists_and_parses(default_run):
    import onnx
    import onnxruntime as ort

    from latency import predictors

    config = json.loads((default_run / "config.json").read_text())
    assert config["pipeline"]["space"] == "fbnetv2" and config["pipeline"]["device"] == "ort:cpu"
    stages = json.loads((default_run / "stages.json").read_text())
    assert list(stages) == ["profile", "fit", "active", "search", "retrain", "audit", "export"]
    # stage 1 + 3: measurements of the training, held-out and active sets, all stored
    assert stages["profile"]["train"] == 8 and stages["profile"]["holdout"] == 6
    assert 0 < len(stages["active"]["archs"]) <= 6  # target 100%: spends (part of) the budget
    assert _store_rows(default_run / "lat.sqlite") >= 8 + 6 + len(stages["active"]["archs"])
    # stage 2: a predictor labelled with the device, with held-out figures
    pred = predictors.load(default_run / "predictor.pt")
    assert pred.kind == "mlp" and pred.space.key == "fbnetv2:tiny"
    assert pred.device["label"].startswith("ort:cpu")
    assert -1.0 <= stages["fit"]["heldout"]["spearman"] <= 1.0
    # stage 4-6: one budget, its network retrained and measured, audited
    chosen = pd.read_csv(default_run / "history.csv")
    assert len(chosen) == 1 and chosen["accuracy"].between(0, 100).all()
    assert (chosen["measured_ms"] > 0).all() and (chosen["predicted_ms"] > 0).all()
    audit = pd.read_csv(default_run / "audit.csv")
    assert np.allclose(audit["error"], (audit["predicted_ms"] - audit["measured_ms"]) / audit["measured_ms"])
    assert (default_run / "audit.png").stat().st_size > 1000
    assert (default_run / "pareto.png").stat().st_size > 1000
    # stage 7: every front network is a checked ONNX model that runs and gives 10 logits
    front = pd.read_csv(default_run / "pareto.csv")
    assert len(front) >= 1
    for path in front["onnx"]:
        model = onnx.load(path)
        onnx.checker.check_model(model)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
        assert session.run(None, {session.get_inputs()[0].name: x})[0].shape == (1, 10)


def test_resume_repeats_nothing(default_run, capsys):
    rows = _store_rows(default_run / "lat.sqlite")
    weights = (default_run / "networks" / "00" / "weights.pt").stat().st_mtime_ns
    onnx_file = pd.read_csv(default_run / "pareto.csv")["onnx"][0]
    exported = __import__("os").stat(onnx_file).st_mtime_ns
    assert main(["search", "--out", str(default_run), "--resume", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "resuming" in printed and printed.count("(stored)") >= 4
    assert _store_rows(default_run / "lat.sqlite") == rows  # nothing re-measured
    assert (default_run / "networks" / "00" / "weights.pt").stat().st_mtime_ns == weights
    assert __import__("os").stat(onnx_file).st_mtime_ns == exported


def test_audit_refits_when_a_prediction_misses(tmp_path, capsys):
    """A predictor that is 50x off (fitted on made-up latencies, labelled as this device):
    the audit must notice, keep the measurement and refit."""
    from hwnas.pipeline.measuring import DeviceMeter
    from latency import predictors
    import spaces

    space = spaces.get("fbnetv2", preset="tiny")
    meter = DeviceMeter(space, "ort:cpu", None, quick=True, progress=False)
    archs = space.sample_many(30, rng=5)
    made_up = 50.0 + np.arange(30, dtype=float)  # ms: real ones are well under 5 ms here
    bad = predictors.create("lut", space).fit(archs, made_up)
    bad.set_device(meter.device_id, meter.label)
    bad.save(tmp_path / "bad.pt")
    db = tmp_path / "lat.sqlite"  # earlier measurements of this device, for the refit
    assert main(["profile", "--device", "ort:cpu", "--space", "fbnetv2", "--preset", "tiny",
                 "-n", "12", "--seed", "7", "--quick", "--db", str(db), "--no-progress"]) == 0
    out = tmp_path / "run"
    code = main(["search", "--out", str(out), "--predictor", str(tmp_path / "bad.pt"),
                 "--db", str(db), *REDUCED])
    assert code == 0
    stages = json.loads((out / "stages.json").read_text())
    assert stages["active"]["reason"].startswith("skipped: a fitted predictor")
    assert stages["audit"]["refitted"] and stages["audit"]["missed"] >= 1
    assert (out / "predictor_refit.pt").is_file()
    assert stages["audit"]["after"]["mape"] < stages["audit"]["before"]["mape"]
    assert "refitted" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--space", "nope"], "unknown space"),
    (["--device", "ort:warp"], "device"),
    (["--strategy", "supernet", "--space", "nao"], "fbnetv2 space only"),
    (["--budget", "latency_ms>=3"], "wrong way"),
    (["--sweep", "0"], "--sweep must be at least 1"),
    (["--predictor", "/no/such/file.pt"], "not found"),
    (["--db", "/etc/hostname"], "not an SQLite file"),
])
def test_bad_input_one_sentence_exit_2_nothing_written(tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    assert main(["search", "--out", str(out), *REDUCED, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("hwnas: error:")
    assert not out.exists()


def test_python_api_returns_the_front(default_run):
    import hwnas

    result = hwnas.search(default_run, resume=True, progress=False)
    assert list(result.front.columns)[:4] == ["k", "arch", "accuracy", "measured_ms"]
    assert result.paths["audit_plot"].is_file() and result.paths["onnx_0"].is_file()
    assert not result.refitted or (default_run / "predictor_refit.pt").is_file()
