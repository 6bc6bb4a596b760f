"""The default pipeline (hwnas search with no arguments), reduced, and its budget loop.

Two kinds of runs:

* the real default, shrunk (few archs, one epoch, quick timing) on ``ort:cpu``: every
  artefact exists and parses, a SIGKILLed run resumes without re-measuring or
  retraining anything, bad input is one sentence;
* the budget loop on ``test:macs`` (tests/hwnas/macs_device.py), a device whose every
  measurement is exact, so that "a biased predictor is corrected" or "a 3%-off one is
  left alone" are decided by the code, not by the load of the test machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spaces
from hwnas.cli import main
from tests.hwnas import macs_device  # registers the test:macs device

pytest.importorskip("onnxruntime")

REDUCED = ["--initial", "8", "--holdout", "6", "--active-measurements", "6", "--active-batch", "3",
           "--target", "1.0", "--pool", "60", "--sweep", "2", "--search-epochs", "1",
           "--retrain-epochs", "1", "--max-samples", "300", "--quick-timing", "--no-progress"]
SPACE = spaces.get("fbnetv2", preset="tiny")
TOLERANCE = 0.10


def _store_frame(path):
    from latency.store import MeasurementStore

    return MeasurementStore(path).frame()


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "run"
    assert main(["search", "--out", str(out), *REDUCED]) == 0
    return out


def test_every_artefact_exists_and_parses(default_run):
    import onnx
    import onnxruntime as ort

    from hwnas import onnx_meta
    from latency import predictors

    config = json.loads((default_run / "config.json").read_text())
    assert config["pipeline"]["space"] == "fbnetv2" and config["pipeline"]["device"] == "ort:cpu"
    stages = json.loads((default_run / "stages.json").read_text())
    assert list(stages) == ["profile", "fit", "active", "budgets", "export"]
    assert stages["profile"]["train"] == 8 and stages["profile"]["holdout"] == 6
    assert len(stages["profile"]["budgets"]) == 2
    lo, hi = stages["profile"]["min_ms"], stages["profile"]["max_ms"]
    assert all(lo < b < hi for b in stages["profile"]["budgets"])  # inside the measured range
    assert 0 < len(stages["active"]["archs"]) <= 6 and stages["active"]["rule"] == "diverse"
    stored = _store_frame(default_run / "lat.sqlite")
    assert len(stored) >= 8 + 6 + len(stages["active"]["archs"])
    assert (stored["block_calls"] >= 1).all()
    pred = predictors.load(default_run / "predictor.pt")
    assert pred.kind == "mlp" and pred.space.key == "fbnetv2:tiny"
    assert pred.device["label"].startswith("ort:cpu")

    audit = pd.read_csv(default_run / "audit.csv")
    for column in ("budget_ms", "round", "predicted_ms", "measured_ms", "error", "missed",
                   "meets_budget", "network"):
        assert column in audit.columns, column
    # the audit's verdicts are the tolerance and the budget, nothing else
    assert (audit["missed"] == ((audit["predicted_ms"] - audit["measured_ms"]).abs()
                                > TOLERANCE * audit["measured_ms"])).all()
    margin = stages["budgets"]["margin"]
    assert (audit["meets_budget"] == (audit["measured_ms"] * (1 + margin) <= audit["budget_ms"])).all()
    assert (default_run / "audit.png").stat().st_size > 1000
    assert (default_run / "pareto.png").stat().st_size > 1000

    front = pd.read_csv(default_run / "pareto.csv")
    assert list(front["budget_ms"]) == stages["profile"]["budgets"]
    for column in ("predicted_ms", "measured_ms", "meets_budget", "rounds"):
        assert column in front.columns
    for row in front.itertuples():
        path = default_run / row.onnx  # relative to the run folder
        assert not Path(row.onnx).is_absolute() and path.is_file()
        onnx.checker.check_model(onnx.load(str(path)))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
        assert session.run(None, {session.get_inputs()[0].name: x})[0].shape == (2, 10)
        meta = onnx_meta.read_metadata(path)
        assert meta["latency_ms"] == pytest.approx(row.measured_ms, rel=1e-9)
        assert meta["latency_measured_on"] == "file" and meta["latency_block_calls"] >= 1
        assert meta["budget_ms"] == pytest.approx(row.budget_ms) and meta["rounds"] == row.rounds
        assert meta["meets_budget"] == bool(row.meets_budget)
        assert bool(row.meets_budget) == (row.measured_ms * (1 + row.margin) <= row.budget_ms)
        record = json.loads((path.parent / "arch.json").read_text())
        assert record["measured_ms"] == pytest.approx(row.measured_ms)


def test_every_candidate_file_carries_its_own_measurement(default_run):
    """Each file the loop timed is stamped with that timing, kept beside it, and stored."""
    from devices import Measurement
    from hwnas import onnx_meta

    stored = set(_store_frame(default_run / "lat.sqlite")["arch"])
    for row in pd.read_csv(default_run / "audit.csv").drop_duplicates("arch").itertuples():
        folder = default_run / row.network
        timing = Measurement.from_dict(json.loads((folder / "timing.json").read_text()))
        meta = onnx_meta.read_metadata(folder / "model.onnx")
        assert meta["latency_ms"] == timing.latency_ms == pytest.approx(row.measured_ms, rel=1e-9)
        assert meta["latency_block_calls"] == timing.block_calls and row.arch in stored


def test_python_api_returns_the_front(default_run):
    import hwnas

    result = hwnas.search(default_run, resume=True, progress=False)
    assert list(result.front.columns)[:4] == ["k", "budget_ms", "arch", "accuracy"]
    assert result.paths["audit_plot"].is_file() and result.paths["onnx_0"].is_file()
    assert result.refitted == (default_run / "predictor_refit.pt").is_file()


def test_a_pipeline_run_can_be_loaded_listed_and_exported(default_run, capsys, tmp_path):
    import hwnas
    from hwnas import onnx_meta

    loaded = hwnas.load_run(default_run)
    assert list(loaded.front["budget_ms"]) == list(pd.read_csv(default_run / "pareto.csv")["budget_ms"])
    assert loaded.paths["onnx_0"].is_file() and len(loaded.audit) >= len(loaded.front)
    assert main(["pareto", str(default_run), "--plot", str(tmp_path / "front.png")]) == 0
    out = capsys.readouterr().out
    assert "pipeline" in out and "meets_budget" in out and (tmp_path / "front.png").is_file()
    assert main(["export", str(default_run), "--no-measure"]) == 2  # which network? say so
    assert "--pick K" in capsys.readouterr().err
    target = tmp_path / "again.onnx"
    assert main(["export", str(default_run), "--pick", "1", "-o", str(target), "--no-measure"]) == 0
    meta = onnx_meta.read_metadata(target)
    front = pd.read_csv(default_run / "pareto.csv")
    assert meta["arch"] == front["arch"][1] and meta["trained"] is True
    assert meta["accuracy"] == pytest.approx(front["accuracy"][1])
    assert meta["preprocessing"]["input_size"] == [16, 16] and len(meta["class_names"]) == 10
    assert main(["export", str(default_run), "--pick", "9", "--no-measure"]) == 2


def test_sigkill_mid_loop_then_resume_repeats_nothing(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-m", "hwnas", "search", "--out", str(out), *REDUCED],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not list(out.glob("networks/*/weights.pt")):
            assert proc.poll() is None, "the run ended before the budget loop trained a network"
            time.sleep(0.05)
        assert list(out.glob("networks/*/weights.pt")), "no network was trained in time"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = time.time_ns()
    stages = json.loads((out / "stages.json").read_text())
    assert "budgets" not in stages  # killed inside the loop
    loop_path = out / "loop.json"
    rows_before = json.loads(loop_path.read_text())["rows"] if loop_path.is_file() else []
    before = _store_frame(out / "lat.sqlite")
    trained = {p: p.stat().st_mtime_ns for p in out.glob("networks/*/weights.pt")
               if (p.parent / "result.json").is_file()}

    import devices.base

    timed: list[int] = []
    original = devices.base.Profiler.measure_many

    def counting(self, modules, *args, **kwargs):
        timed.append(len(modules))
        return original(self, modules, *args, **kwargs)

    devices.base.Profiler.measure_many = counting
    try:
        assert main(["search", "--out", str(out), "--resume", "--no-progress"]) == 0
    finally:
        devices.base.Profiler.measure_many = original
    after = _store_frame(out / "lat.sqlite")
    kept = after.set_index("arch").loc[before["arch"]]
    assert (kept["created_at"].to_numpy() == before["created_at"].to_numpy()).all()
    # only files never timed before the kill were timed: none of stages 1-3, none kept
    rows = json.loads((out / "loop.json").read_text())["rows"]
    earlier = {r["arch"] for r in rows_before}
    timed_before = {p.parent.name for p in out.glob("networks/*/timing.json")
                    if p.stat().st_mtime_ns <= killed_at}
    new_files = {r["network"] for r in rows if r["arch"] not in earlier} - \
        {f"networks/{name}" for name in timed_before}
    assert sum(timed) == len(new_files)
    for path, mtime in trained.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was retrained"
    assert json.loads((out / "stages.json").read_text()).keys() >= {"budgets", "export"}


# ---- the budget loop on an exact device ---------------------------------------------------
def _true_ms(archs):
    return np.array([macs_device.latency_of(SPACE.cost(a).macs) for a in archs])


def _biased_predictor(path, kind, factor):
    """A predictor of ``kind`` fitted on the exact latencies times ``factor``, labelled as
    the test device's."""
    from hwnas.pipeline.measuring import DeviceMeter
    from latency import predictors

    meter = DeviceMeter(SPACE, macs_device.SPEC, None, progress=False)
    archs = SPACE.sample_many(30, rng=5)
    model = predictors.create(kind, SPACE).fit(archs, factor * _true_ms(archs))
    model.set_device(meter.device_id, meter.label)
    model.save(path)
    return path


def _earlier_store(path):
    assert main(["profile", "--device", macs_device.SPEC, "--space", "fbnetv2", "--preset", "tiny",
                 "-n", "12", "--seed", "7", "--db", str(path), "--no-progress"]) == 0
    return path


def _loop_run(tmp_path, predictor, budget, *extra):
    out = tmp_path / "run"
    code = main(["search", "--out", str(out), "--device", macs_device.SPEC, "--predictor",
                 str(predictor), "--holdout", "6", "--budget", f"latency_ms<={budget}",
                 "--margin", "0.05", "--search-epochs", "1", "--retrain-epochs", "1",
                 "--max-samples", "300", "--no-progress", *extra])
    assert code == 0
    return (out, pd.read_csv(out / "audit.csv"), pd.read_csv(out / "pareto.csv"),
            json.loads((out / "loop.json").read_text()))


MEDIAN_MS = float(np.median(_true_ms(SPACE.sample_many(30, rng=5))))
NAO = ("--strategy", "nao", "--queries", "6", "--epochs", "1")


def _check_verdicts(audit, front):
    assert (audit["missed"] == ((audit["predicted_ms"] - audit["measured_ms"]).abs()
                                > TOLERANCE * audit["measured_ms"])).all()
    for row in front.itertuples():
        assert bool(row.meets_budget) == (row.measured_ms * 1.05 <= row.budget_ms)
        # exact device: the measurement is the truth
        arch = SPACE.from_string(row.arch)
        assert row.measured_ms == pytest.approx(float(_true_ms([arch])[0]), rel=1e-9)


def test_supernet_loop_corrects_a_predictor_that_is_30_percent_low(tmp_path):
    predictor = _biased_predictor(tmp_path / "low.pt", "lut", 0.7)
    out, audit, front, loop = _loop_run(tmp_path, predictor, MEDIAN_MS, "--db",
                                        str(_earlier_store(tmp_path / "lat.sqlite")))
    _check_verdicts(audit, front)
    first = audit[audit["round"] == 1].iloc[0]
    assert first["predicted_ms"] < first["measured_ms"]  # the bias shows in round 1
    assert bool(first["missed"]) or not bool(first["meets_budget"])
    assert loop["refits"] and loop["refits"][0]["refitted"]
    assert (out / "predictor_refit.pt").is_file()
    assert audit["round"].max() >= 2
    assert bool(front["meets_budget"].iloc[0])  # corrected: the shipped file meets it
    assert front["measured_ms"].iloc[0] * 1.05 <= MEDIAN_MS


def test_nao_loop_refits_a_predictor_20_percent_low_and_keeps_macs_budget(tmp_path):
    macs_cap = int(np.percentile([SPACE.cost(a).macs for a in SPACE.sample_many(30, rng=5)], 75))
    predictor = _biased_predictor(tmp_path / "low.pt", "flops", 0.8)
    out, audit, front, loop = _loop_run(tmp_path, predictor, MEDIAN_MS, *NAO, "--db",
                                        str(_earlier_store(tmp_path / "lat.sqlite")),
                                        "--budget", f"macs<={macs_cap}")
    _check_verdicts(audit, front)
    assert bool(audit["missed"].iloc[0]) and audit["error"].iloc[0] == pytest.approx(-0.2, abs=1e-6)
    assert loop["refits"][0]["refitted"] and (out / "predictor_refit.pt").is_file()
    later = audit[audit["round"] > 1]
    assert len(later) and later["error"].abs().max() < 1e-6  # the refit learnt the truth
    assert bool(front["meets_budget"].iloc[0]) and (front["macs"] <= macs_cap).all()


def test_a_predictor_3_percent_off_is_left_alone(tmp_path):
    predictor = _biased_predictor(tmp_path / "close.pt", "flops", 1.03)
    out, audit, front, loop = _loop_run(tmp_path, predictor, MEDIAN_MS, *NAO)
    _check_verdicts(audit, front)
    assert not audit["missed"].any() and loop["refits"] == [] and loop["rounds_done"] == 1
    assert not (out / "predictor_refit.pt").exists()
    assert bool(front["meets_budget"].iloc[0]) and front["rounds"].iloc[0] == 1


def test_too_few_measurements_to_refit_is_said_and_nothing_refitted(tmp_path, capsys):
    predictor = _biased_predictor(tmp_path / "low.pt", "flops", 0.7)
    out, audit, front, loop = _loop_run(tmp_path, predictor, MEDIAN_MS, *NAO, "--max-rounds", "2")
    assert audit["missed"].any()
    assert loop["refits"] and not any(r["refitted"] for r in loop["refits"])
    assert "too few to refit" in capsys.readouterr().out
    assert not (out / "predictor_refit.pt").exists()


def test_an_unreachable_budget_is_reported_unmet_never_met(tmp_path, capsys):
    from hwnas.pipeline.floor import cheapest_arch

    arch, macs = cheapest_arch(SPACE, 16, 10)
    floor_ms = macs_device.latency_of(macs)
    predictor = _biased_predictor(tmp_path / "exact.pt", "flops", 1.0)
    out, audit, front, loop = _loop_run(tmp_path, predictor, 0.95 * floor_ms, *NAO)
    assert not audit["meets_budget"].any() and not front["meets_budget"].any()
    assert "NOT met after" in capsys.readouterr().out
    from hwnas import onnx_meta

    assert onnx_meta.read_metadata(out / front["onnx"].iloc[0])["meets_budget"] is False


# ---- nothing lost, nothing half-written ---------------------------------------------------
def test_a_corrupt_or_other_device_predictor_is_refused_before_the_folder(tmp_path, capsys):
    from latency import predictors
    from tests.hwnas.failures import fails_in_one_sentence

    out = tmp_path / "never"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 half a zip file")
    fails_in_one_sentence(capsys, "search", "--out", out, *REDUCED, "--predictor", corrupt,
                          contains="corrupt or not a predictor file")
    other = tmp_path / "other.pt"
    archs = SPACE.sample_many(12, rng=1)
    model = predictors.create("lut", SPACE).fit(archs, [1.0 + sum(a.choices) / 10 for a in archs])
    model.set_device("0123456789ab", "ort:cpu/1t@Another machine").save(other)
    line = fails_in_one_sentence(capsys, "search", "--out", out, *REDUCED, "--predictor", other,
                                 contains="was trained on 'ort:cpu/1t@Another machine'")
    assert "--allow-device-mismatch" not in line  # hwnas search has no such flag
    assert not out.exists()


def test_a_full_disk_is_refused_before_the_folder(tmp_path, capsys, monkeypatch):
    from tests.hwnas.failures import fails_in_one_sentence, no_free_space

    out = tmp_path / "never"
    no_free_space(monkeypatch)
    fails_in_one_sentence(capsys, "search", "--out", out, *REDUCED, contains="0 bytes free")
    assert not out.exists()


@pytest.mark.parametrize("name, content, message", [
    ("stages.json", b"", "stages.json"),
    ("loop.json", b"", "loop.json is empty"),
    ("loop.json", b'{"rows": 3}', "loop.json is not a budget-loop record"),
    ("pareto.csv", b"", "pareto.csv is empty"),
    ("pareto.csv", b"k,arch\n0,x\n", "pareto.csv lacks the column(s)"),
    ("history.csv", b"\x00\xff\xfe\x01", "history.csv is not a readable CSV table"),
    ("predictor.pt", b"PK\x03\x04 torn", "predictor.pt is corrupt or not a predictor file"),
    ("config.json", b"", "config.json is empty"),
])
def test_resume_of_a_damaged_run_names_the_file_and_writes_nothing(default_run, tmp_path, capsys,
                                                                   name, content, message):
    import shutil

    from tests.hwnas.failures import digests, fails_in_one_sentence

    copy = tmp_path / "run"
    shutil.copytree(default_run, copy)
    (copy / name).write_bytes(content)
    before = digests(copy)
    fails_in_one_sentence(capsys, "search", "--out", copy, "--resume", "--no-progress",
                          contains=message)
    assert digests(copy) == before


def test_pareto_shows_a_pipeline_run(default_run, capsys, tmp_path):
    assert main(["pareto", str(default_run), "--plot", str(tmp_path / "front.png")]) == 0
    out = capsys.readouterr().out
    assert "pipeline run" in out and "measured_ms" in out and (tmp_path / "front.png").is_file()
