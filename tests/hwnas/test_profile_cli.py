"""`hwnas devices` and `hwnas profile`: bad input is one sentence (exit 2), runs resume after kill -9."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import spaces
from hwnas.cli import main
from latency.shared_data import HELP_FBNET_LATENCY, data_file
from latency.store import MeasurementStore

ROOT = Path(__file__).resolve().parents[2]
# A small NB201 (C=4, one cell per stage) and a tiny timing plan: the protocol, not the numbers.
SMALL = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1", "--quick"]


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("argv,message", [
    (["--device", "torch:cpu", "--space", "nb201", "-n", "0"], "-n must be at least 1"),
    (["--device", "torch:cpu", "--space", "nope", "-n", "3"], "unknown space 'nope'"),
    (["--device", "tpu", "--space", "nb201", "-n", "3"], "unknown device 'tpu'"),
    (["--device", "torch:cpu", "--space", "nb201"], "give -n N"),
    (["--space", "nb201", "-n", "3"], "needs --space and --device"),
    (["--device", "torch:cpu", "--space", "nb201", "-n", "2", "--statistic", "p0"], "unknown statistic"),
    (["--device", "torch:cpu", "--space", "nb201", "-n", "2", "--rounds", "0"], "rounds must be at least 1"),
])
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, capsys, argv, message):
    assert main(["profile", "--db", str(tmp_path / "lat.sqlite"), *argv]) == 2
    line = _error(capsys)
    assert line.startswith("hwnas: error: ") and message in line


def test_unavailable_gpu_device_is_one_sentence(tmp_path, capsys):
    import devices

    if "ort:cuda" in {s.spec for s in devices.available() if s.available}:
        pytest.skip("the ONNX Runtime CUDA provider works here")
    assert main(["profile", "--device", "ort:cuda", "--space", "nb201", "-n", "2",
                 "--db", str(tmp_path / "lat.sqlite")]) == 2
    assert "ort:cuda requested but ONNX Runtime fell back to CPUExecutionProvider" in _error(capsys)


def test_corrupt_db_is_one_sentence_and_untouched(tmp_path, capsys):
    db = tmp_path / "lat.sqlite"
    db.write_bytes(b"not a database at all" * 50)
    assert main(["profile", "--device", "torch:cpu", *SMALL, "-n", "2", "--db", str(db)]) == 2
    assert "not an SQLite file" in _error(capsys)
    assert db.read_bytes() == b"not a database at all" * 50


def test_bad_arch_file_names_the_line(tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    archs.write_text("# comment\n\n|nor_conv_3x3~0|+|bogus~0|\n")
    assert main(["profile", "--device", "torch:cpu", "--space", "nb201", "--archs", str(archs),
                 "--db", str(tmp_path / "lat.sqlite")]) == 2
    assert "line 3" in _error(capsys)


def test_devices_verb_lists_backends(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    for spec in ("torch:cpu", "ort:cpu", "ort:cuda", "tensorrt:0"):
        assert spec in out
    assert "ort:cpu fingerprint [" in out and "cpu_model" in out


def test_profile_from_arch_file_then_resume_skips_stored(tmp_path, capsys):
    space = spaces.get("nb201", C=4, N=1)
    strings = [space.to_string(a) for a in space.sample_many(4, 3)]
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(strings[:3]) + "\n")
    db = tmp_path / "lat.sqlite"
    common = ["profile", "--device", "ort:cpu", *SMALL, "--db", str(db), "--group", "2", "--no-progress"]
    assert main([*common, "--archs", str(archs)]) == 0
    assert "3 measured now, 0 already stored" in capsys.readouterr().out
    archs.write_text("\n".join(strings) + "\n")
    assert main([*common, "--archs", str(archs), "--export", str(tmp_path / "lat.csv")]) == 0
    assert "1 measured now, 3 already stored" in capsys.readouterr().out
    frame = MeasurementStore(db).frame()
    assert sorted(frame.arch) == sorted(strings) and frame.arch.is_unique
    assert set(frame.device_label) == {frame.device_label[0]} and frame.device_label[0].startswith("ort:cpu/1t@")
    assert (frame.latency_ms > 0).all() and (frame.n_samples == 2 * 5).all()
    assert (tmp_path / "lat.csv").is_file()


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


@pytest.mark.slow
def test_kill_9_loses_at_most_the_group_in_flight_and_rerun_completes(tmp_path):
    db = tmp_path / "lat.sqlite"
    n, group = 15, 3
    # --warmup-s 0.2 makes each architecture take >= 0.2 s, so the run outlives the first commit.
    cmd = [sys.executable, "-m", "hwnas", "profile", "--device", "torch:cpu", *SMALL, "-n", str(n),
           "--seed", "5", "--group", str(group), "--warmup-s", "0.2", "--db", str(db), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while _rows(db) < group and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed = _rows(db)
    assert 0 < killed < n and killed % group == 0  # whole groups only

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    frame = MeasurementStore(db).frame()
    space = spaces.get("nb201", C=4, N=1)
    wanted = {space.to_string(a) for a in space.sample_many(n, 5)}
    assert len(frame) == n and frame.arch.is_unique and set(frame.arch) == wanted
    assert f"{n - killed} measured now, {killed} already stored" in done.stdout


def test_import_verb_imports_the_fbnet_table(tmp_path, capsys, shared_data):
    db = tmp_path / "lat.sqlite"
    assert main(["profile", "--import", str(data_file(HELP_FBNET_LATENCY)), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "135,000 new rows for 17 devices" in out and "help:gold_6226" in out
    frame = MeasurementStore(db).frame(device="help:gold_6226")
    assert len(frame) == 5_000 and set(frame.space) == {"fbnet"}
    assert main(["profile", "--import", str(data_file(HELP_FBNET_LATENCY)), "--db", str(db),
                 "--device", "ort:cpu"]) == 2


ACTIVE = ["profile", "--active", "--device", "ort:cpu", *SMALL, "--pool", "20", "--initial", "5",
          "--holdout", "4", "-n", "4", "--per-round", "2", "--target", "1.0", "--no-progress"]


def test_active_profiling_rounds_save_and_resume(tmp_path, capsys):
    from latency import predictors

    db, saved = tmp_path / "lat.sqlite", tmp_path / "pred.pt"
    assert main([*ACTIVE, "--db", str(db), "-o", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "measured  spearman" in out
    rounds = [line.split()[:4] for line in out.splitlines() if line.strip()[:1].isdigit()]
    measured = [int(r[0]) for r in rounds]
    assert measured == [5, 7, 9][:len(measured)] and measured  # stops early only at the target
    total = measured[-1] + 4  # training + held out
    assert f"{total} measured now, 0 already stored" in out
    frame = MeasurementStore(db).frame()
    assert len(frame) == total and frame.arch.is_unique
    pred = predictors.load(saved, space=spaces.get("nb201", C=4, N=1), device=frame.device_label[0])
    assert pred.train_size == measured[-1]
    # re-running replays the same deterministic choices from the store: nothing is measured
    assert main([*ACTIVE, "--db", str(db)]) == 0
    again = capsys.readouterr().out
    assert f"0 measured now, {total} already stored" in again
    assert [line.split()[:4] for line in again.splitlines() if line.strip()[:1].isdigit()] == rounds


@pytest.mark.parametrize("extra,message", [
    (["--initial", "2"], "--initial must be at least 5"),
    (["--choose", "greedy"], "unknown active-profiling rule 'greedy'"),
    (["--target", "1.5"], "--target is a share between 0 and 1"),
])
def test_active_profiling_bad_input_is_one_sentence(tmp_path, capsys, extra, message):
    assert main([*ACTIVE, "--db", str(tmp_path / "lat.sqlite"), *extra]) == 2
    assert message in _error(capsys)


def test_save_needs_active(tmp_path, capsys):
    assert main(["profile", "--device", "ort:cpu", *SMALL, "-n", "2", "--db", str(tmp_path / "l.sqlite"),
                 "--output", str(tmp_path / "p.pt")]) == 2
    assert "-o/--output (the predictor file) needs --active" in _error(capsys)


# ---- nothing lost, nothing half-written ---------------------------------------------------
FP = {"backend": "w", "label": "earlier:device"}


def _small_store(path):
    with MeasurementStore(path) as store:
        store.add_values(FP, [("nb201", f"a{i}", 1, "3x32x32", 1.0 + i) for i in range(5)])
    return path


def cap_store_growth(monkeypatch):
    """From now on, a store's file cannot grow (SQLite's page limit): writes fail with "database or
    disk is full" exactly as on a full disk."""
    real = MeasurementStore._connect

    def capped(self):
        conn = real(self)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={max(pages, 1)}")
        return conn

    monkeypatch.setattr(MeasurementStore, "_connect", capped)


class _FullDisk:
    """A store connection on a disk that filled up: SQLite's own error on every insert
    (a few small rows may still fit in a store's free pages, so SQLite's page limit
    cannot make this deterministic); everything else goes to the real connection."""

    def __init__(self, conn):
        self._conn = conn

    def _check(self, sql):
        if sql.lstrip().upper().startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")

    def execute(self, sql, *args):
        self._check(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql, *args):
        self._check(sql)
        return self._conn.executemany(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_profiling_into_a_full_store_is_one_sentence_and_keeps_it(tmp_path, capsys, monkeypatch):
    from tests.hwnas.failures import digests, fails_in_one_sentence

    db = _small_store(tmp_path / "lat.sqlite")
    before = digests(db)
    real = MeasurementStore._connect
    monkeypatch.setattr(MeasurementStore, "_connect", lambda self: _FullDisk(real(self)))
    line = fails_in_one_sentence(capsys, "profile", "--device", "torch:cpu", *SMALL, "-n", "3",
                                 "--db", db, "--no-progress", contains="disk is full")
    assert "rollback" not in line
    assert digests(db) == before
    assert len(MeasurementStore(db, readonly=True)) == 5


def test_importing_into_a_full_store_is_one_sentence_and_keeps_it(tmp_path, capsys, shared_data,
                                                                  monkeypatch):
    from tests.hwnas.failures import digests, fails_in_one_sentence

    db = _small_store(tmp_path / "lat.sqlite")
    before = digests(db)
    cap_store_growth(monkeypatch)
    fails_in_one_sentence(capsys, "profile", "--import", data_file(HELP_FBNET_LATENCY), "--db", db,
                          contains="disk is full")
    assert digests(db) == before


def test_a_full_disk_is_refused_before_measuring(tmp_path, capsys, monkeypatch):
    from tests.hwnas.failures import digests, fails_in_one_sentence, no_free_space

    db = _small_store(tmp_path / "lat.sqlite")
    before = digests(tmp_path)
    no_free_space(monkeypatch)
    import devices.base

    def never(*args, **kwargs):
        raise AssertionError("measured on a full disk")

    monkeypatch.setattr(devices.base.Profiler, "measure_many", never)
    fails_in_one_sentence(capsys, "profile", "--device", "torch:cpu", *SMALL, "-n", "3", "--db", db,
                          contains="the disk is full")
    fails_in_one_sentence(capsys, "profile", "--device", "torch:cpu", *SMALL, "-n", "3",
                          "--db", tmp_path / "new.sqlite", contains="the disk is full")
    assert digests(tmp_path) == before  # no new store file either


@pytest.mark.parametrize("target", ["fifo", "devnull_link"])
def test_export_target_is_checked_before_measuring(tmp_path, capsys, monkeypatch, target):
    from tests.hwnas.failures import fails_in_one_sentence

    out = tmp_path / "lat.csv"
    if target == "fifo":
        os.mkfifo(out)
    else:
        out.symlink_to("/dev/null")
    fails_in_one_sentence(capsys, "profile", "--device", "torch:cpu", *SMALL, "-n", "2",
                          "--db", tmp_path / "l.sqlite", "--export", out, contains="not a regular file")
    assert not (tmp_path / "l.sqlite").exists()


def test_n_beyond_the_space_is_capped_with_a_notice(tmp_path, capsys, monkeypatch):
    from hwnas.cli import profile_cmd
    from spaces.errors import HwnasError

    asked = []

    def stop(args, executor, job, store, strings):
        asked.append(len(strings))
        raise HwnasError("stopped before measuring")

    monkeypatch.setattr(profile_cmd, "_measure", stop)
    assert main(["profile", "--device", "torch:cpu", "--space", "nb201", "-n", "1000000000000",
                 "--db", str(tmp_path / "l.sqlite")]) == 2
    out = capsys.readouterr().out
    assert asked == [15_625]
    assert "-n 1,000,000,000,000 is more than the 15,625 architectures of nb201" in out


def test_n_no_run_could_finish_is_refused_before_sampling(tmp_path, capsys, monkeypatch):
    from tests.hwnas.failures import fails_in_one_sentence

    def never(self, *args, **kwargs):
        raise AssertionError("sampled before the count was checked")

    monkeypatch.setattr(spaces.Space, "sample_many", never)
    fails_in_one_sentence(capsys, "profile", "--device", "torch:cpu", "--space", "fbnet",
                          "-n", "1000000000000", "--db", tmp_path / "l.sqlite",
                          contains="more than any run could finish")
    assert list(tmp_path.iterdir()) == []


def test_cells_whose_output_ignores_the_input_are_profiled_on_ort(tmp_path, capsys):
    """Valid NB201 members cut off from their input are measured like the rest (once the
    export had no input and the run exited 2)."""
    from tests.devices.test_onnx_export import degenerate_cells

    space = spaces.get("nb201", C=4, N=1)
    cells = [space.to_string(a) for a in degenerate_cells(space, 3)]
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(cells) + "\n")
    db = tmp_path / "lat.sqlite"
    assert main(["profile", "--device", "ort:cpu", *SMALL, "--archs", str(archs), "--db", str(db),
                 "--no-progress"]) == 0
    frame = MeasurementStore(db, readonly=True).frame()
    assert sorted(frame["arch"]) == sorted(cells) and (frame["latency_ms"] > 0).all()


# ---- builder-function spaces and --model -------------------------------------------------------

from tests.spaces.builder_sources import plain  # noqa: E402

BUILDER = plain(widths=(8, 16))


@pytest.mark.slow
def test_builder_space_through_profile_predictor_search_and_export(tmp_path, capsys):
    builder = tmp_path / "myspace.py"
    builder.write_text(BUILDER)
    spec = f"{builder}:build"
    db, pred, run = tmp_path / "lat.sqlite", tmp_path / "pred.pt", tmp_path / "run"
    assert main(["profile", "--device", "ort:cpu", "--space", spec, "-n", "12", "--input-size", "16",
                 "--quick", "--db", str(db), "--no-progress"]) == 0
    frame = MeasurementStore(db).frame()
    assert len(frame) == 12 and set(frame.space) == {str(builder.resolve()) + ":build"}
    assert all(a.startswith("width=") and ",kernel=" in a for a in frame.arch)
    assert set(frame.input_shape) == {"3x16x16"}
    capsys.readouterr()

    assert main(["predictor", "fit", "--db", str(db), "--device", "ort:cpu", "--space", spec,
                 "--kind", "gbdt", "--train-size", "10", "-o", str(pred)]) == 0
    assert main(["predictor", "predict", str(pred), "width=16,kernel=5,depth=3",
                 "width=8,kernel=3,depth=1"]) == 0
    out = capsys.readouterr().out
    assert "width=16,kernel=5,depth=3" in out and "width=8,kernel=3,depth=1" in out

    assert main(["explore", "--space", spec, "--evaluator", "train", "--dataset",
                 "digits", "--queries", "4", "--epochs", "1", "--max-samples", "200",
                 "--input-size", "16", "--predictor", str(pred), "--out", str(run),
                 "--no-progress"]) == 0
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 4 and history["arch"].str.match(r"^width=\d+,kernel=\d,depth=\d$").all()
    best = json.loads((run / "best" / "arch.json").read_text())
    assert best["space"] == str(builder.resolve()) + ":build" and best["input_size"] == 16
    assert (run / "study.db").is_file()

    assert main(["export", str(run), "--device", "ort:cpu", "--quick", "--untrained"]) == 0
    onnx_file = run / "best" / "model.onnx"
    assert onnx_file.is_file()
    capsys.readouterr()
    assert main(["export", "--inspect", str(onnx_file)]) == 0
    assert best["arch"] in capsys.readouterr().out


def _onnx_file(path, inputs):
    """A one-node ONNX model (Relu, or Add of two inputs) with the given input shapes."""
    import onnx
    from onnx import TensorProto, helper

    names = [f"x{i}" for i in range(len(inputs))]
    node = helper.make_node("Add" if len(inputs) == 2 else "Relu", names, ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                            for n, s in zip(names, inputs)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_profile_model_onnx_file_is_stored_by_content_hash(tmp_path, capsys):
    import hashlib

    from devices.onnx_export import export_onnx

    space = spaces.get("nb201", C=4, N=1)
    net = space.build(space.sample(0)).eval()
    path = tmp_path / "exported.onnx"
    path.write_bytes(export_onnx(net, (3, 16, 16), dynamic_batch=True))
    db = tmp_path / "lat.sqlite"
    argv = ["profile", "--model", str(path), "--device", "ort:cpu", "--quick", "--db", str(db)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    arch = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert "exported.onnx (onnx" in out and "input 1x3x16x16" in out and arch in out
    assert "measured now" in out
    frame = MeasurementStore(db).frame()
    assert list(frame.space) == ["model"] and list(frame.arch) == [arch]
    assert frame.latency_ms[0] > 0 and frame.input_shape[0] == "3x16x16"
    assert main(argv) == 0  # stored for this device: shown again, not measured again
    assert "already stored" in capsys.readouterr().out and len(MeasurementStore(db).frame()) == 1


@pytest.mark.slow
def test_profile_model_function_torchvision(tmp_path, capsys):
    db = tmp_path / "lat.sqlite"
    assert main(["profile", "--model", "torchvision.models:mobilenet_v3_small", "--device",
                 "ort:cpu", "--input-size", "32", "--quick", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "torchvision.models:mobilenet_v3_small (function" in out and "input 1x3x32x32" in out
    frame = MeasurementStore(db).frame()
    assert list(frame.space) == ["model"] and frame.arch[0].startswith("sha256:")
    assert frame.latency_ms[0] > 0


def test_profile_model_torchscript_on_torch_device(tmp_path, capsys):
    import warnings

    import torch

    space = spaces.get("nb201", C=4, N=1)
    path = tmp_path / "net.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(space.build(space.sample(1)).eval(), torch.zeros(1, 3, 16, 16)).save(str(path))
    assert main(["profile", "--model", str(path), "--device", "torch:cpu", "--input-size", "16",
                 "--quick", "--db", str(tmp_path / "lat.sqlite")]) == 0
    assert "net.pt (torchscript" in capsys.readouterr().out


BAD_BUILDERS = {
    "wrong signature": ("def build(choice):\n    pass\n", "must take (choice, num_classes)"),
    "raises": ("def build(choice, num_classes):\n    raise RuntimeError('no luck')\n",
               "raised RuntimeError: no luck"),
    "not a module": ("def build(choice, num_classes):\n    choice('w', [1])\n    return [1]\n",
                     "returned list, not a torch.nn.Module"),
    "empty options": ("def build(choice, num_classes):\n    choice('w', [])\n", "with no options"),
    "non-list options": ("def build(choice, num_classes):\n    choice('w', 3)\n",
                         "with a int; give a list of options"),
    "repeated name": ("def build(choice, num_classes):\n    choice('w', [1, 2])\n"
                      "    choice('w', [1, 2])\n", "twice in one build"),
}


@pytest.mark.parametrize("case", sorted(BAD_BUILDERS))
def test_bad_builder_is_one_sentence_and_exit_2(tmp_path, capsys, case):
    source, reason = BAD_BUILDERS[case]
    (tmp_path / "bad.py").write_text(source)
    assert main(["profile", "--device", "torch:cpu", "--space", f"{tmp_path / 'bad.py'}:build",
                 "-n", "2", "--db", str(tmp_path / "lat.sqlite")]) == 2
    line = _error(capsys)
    assert line.startswith("hwnas: error: ") and reason in line and "bad.py" in line


@pytest.mark.parametrize("spec,message", [
    ("{tmp}/missing.py:build", "missing.py does not exist"),
    ("no_such_module_xyz:build", "no module 'no_such_module_xyz'"),
    ("{tmp}/ok.py:nope", "has no 'nope'"),
])
def test_missing_builder_is_one_sentence_and_exit_2(tmp_path, capsys, spec, message):
    (tmp_path / "ok.py").write_text(BUILDER)
    assert main(["profile", "--device", "torch:cpu", "--space", spec.format(tmp=tmp_path), "-n", "2",
                 "--db", str(tmp_path / "lat.sqlite")]) == 2
    assert message in _error(capsys)


def test_bad_models_are_one_sentence_and_exit_2(tmp_path, capsys):
    two = _onnx_file(tmp_path / "two.onnx", [[1, 3, 8, 8], [1, 3, 8, 8]])
    dynamic = _onnx_file(tmp_path / "dyn.onnx", [["N", 3, "H", "W"]])
    (tmp_path / "garbage.onnx").write_bytes(b"\x00not onnx at all")
    (tmp_path / "m.py").write_text("def make():\n    return 42\n")
    cases = [
        (["--model", str(two), "--device", "ort:cpu"], "has 2 inputs (x0, x1)"),
        (["--model", str(dynamic), "--device", "ort:cpu"], "give its size with --input-size"),
        (["--model", str(dynamic), "--device", "torch:cpu", "--input-size", "8"],
         "measure it on an ONNX Runtime device"),
        (["--model", str(tmp_path / "nope.onnx"), "--device", "ort:cpu"], "does not exist"),
        (["--model", str(tmp_path / "garbage.onnx"), "--device", "ort:cpu"], "is not an ONNX model"),
        (["--model", f"{tmp_path / 'm.py'}:make", "--device", "ort:cpu"], "returned int, not a"),
        (["--model", str(two), "--space", "nb201", "--device", "ort:cpu"], "give no --space"),
    ]
    for argv, message in cases:
        assert main(["profile", *argv, "--quick", "--db", str(tmp_path / "lat.sqlite")]) == 2, argv
        line = _error(capsys)
        assert line.startswith("hwnas: error: ") and message in line, (argv, line)
    # with the size given, the dynamic file is measured
    assert main(["profile", "--model", str(dynamic), "--device", "ort:cpu", "--input-size", "8",
                 "--quick", "--db", str(tmp_path / "lat.sqlite")]) == 0
    assert "input 1x3x8x8" in capsys.readouterr().out


def test_import_with_space_takes_only_that_spaces_rows(tmp_path, shared_data, capsys):
    from latency.shared_data import HELP_NB201_LATENCY

    # the first 60 architectures of each HELP table (the whole NB201 one is 15,625 x 27
    # devices; importing it four times took 45 s): the same format, found by its header
    tables = {}
    for table in (HELP_NB201_LATENCY, HELP_FBNET_LATENCY):
        lines = data_file(table).read_text(encoding="utf-8").splitlines(keepends=True)
        tables[table] = tmp_path / Path(table).name
        tables[table].write_text("".join(lines[:61]), encoding="utf-8")
    both = tmp_path / "both.sqlite"  # a store holding the HELP tables of two spaces
    for table in tables.values():
        assert main(["profile", "--import", str(table), "--db", str(both)]) == 0
    assert main(["profile", "--db", str(both), "--export", str(tmp_path / "both.csv")]) == 0
    capsys.readouterr()
    for source in (tables[HELP_NB201_LATENCY], both, tmp_path / "both.csv"):
        db = tmp_path / f"nb201-{Path(source).suffix.strip('.')}.sqlite"
        assert main(["profile", "--import", str(source), "--space", "nb201", "--db", str(db)]) == 0
        with MeasurementStore(db, readonly=True) as store:
            frame, devices = store.frame(), store.devices()
        assert set(frame["space"]) == {"nb201"} and len(frame) > 1000, source  # 60 x 27
        assert len(devices) == frame["device_id"].nunique()  # no device without nb201 rows
    capsys.readouterr()


@pytest.mark.parametrize("space, message", [
    ("nb201", "is a HELP latency table of the fbnet space, not of nb201"),
    ("nope", "unknown space"),
])
def test_import_of_another_spaces_table_is_one_sentence(tmp_path, shared_data, capsys, space,
                                                        message):
    db = tmp_path / "lat.sqlite"
    assert main(["profile", "--import", str(data_file(HELP_FBNET_LATENCY)), "--space", space,
                 "--db", str(db)]) == 2
    assert message in _error(capsys)
    assert not db.exists() or len(MeasurementStore(db, readonly=True).frame()) == 0


def test_import_of_a_store_without_the_space_is_one_sentence(tmp_path, shared_data, capsys):
    fbnet = tmp_path / "fbnet.sqlite"
    assert main(["profile", "--import", str(data_file(HELP_FBNET_LATENCY)), "--db", str(fbnet)]) == 0
    capsys.readouterr()
    db = tmp_path / "lat.sqlite"
    assert main(["profile", "--import", str(fbnet), "--space", "nb201", "--db", str(db)]) == 2
    assert "holds no nb201 measurements (its spaces: fbnet)" in _error(capsys)
