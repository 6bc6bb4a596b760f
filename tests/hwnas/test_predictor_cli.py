"""`hwnas predictor fit / eval / predict` on a small synthetic store, and its bad-input exits."""

import os
from pathlib import Path

import numpy as np
import pytest

import spaces
from hwnas.cli import main
from latency.store import MeasurementStore
from tests.hwnas.failures import (digests, fails_in_one_sentence, full_disk, no_free_space,
                                  read_only_folders)

CPU = {"backend": "ort", "spec": "ort:cpu", "cpu_model": "Test CPU", "threads": 1,
       "label": "ort:cpu/1t@Test CPU"}
REF = {"source": "imported", "device": "ref", "label": "help:ref"}
REF2 = {"source": "imported", "device": "ref2", "label": "help:ref2"}


@pytest.fixture(scope="module")
def nb201():
    return spaces.get("nb201")


@pytest.fixture(scope="module")
def db(tmp_path_factory, nb201):
    """300 NB201 cells: an additive 'CPU', two reference devices, and one bad device."""
    path = tmp_path_factory.mktemp("store") / "lat.sqlite"
    archs = nb201.sample_many(300, 0)
    onehot = nb201.one_hot_many(archs).astype(np.float64)
    rng = np.random.default_rng(0)
    costs = {name: rng.uniform(0.1, 2.0, nb201.num_options) for name in ("cpu", "ref", "ref2")}
    ms = {name: 1.0 + onehot @ c for name, c in costs.items()}
    ms["cpu"] = np.sqrt(ms["ref"] * ms["ref2"])  # the CPU is a blend of the references
    strings = [nb201.to_string(a) for a in archs]
    with MeasurementStore(path) as store:
        for fp, key in ((CPU, "cpu"), (REF, "ref"), (REF2, "ref2")):
            store.add_values(fp, [("nb201", s, 1, "3x32x32", float(v)) for s, v in zip(strings, ms[key])])
        store.add_values({"label": "bad:neg", "device": "neg"},
                         [("nb201", s, 1, "3x32x32", -1.0 if i == 3 else 1.0)
                          for i, s in enumerate(strings[:40])])
        store.add_values({"label": "ort:cpu/4t@Other", "device": "other"},
                         [("nb201", s, 1, "3x32x32", 2.0) for s in strings[:40]])
    return path


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_fit_eval_predict_round_trip(tmp_path, capsys, db, nb201):
    pred = tmp_path / "lut.pt"
    code, out, err = run(capsys, "predictor", "fit", "--db", db, "--device", "ort:cpu/1t@Test CPU",
                         "--space", "nb201", "--kind", "lut", "-o", pred, "--train-size", 100)
    assert code == 0, err
    assert "trained on 100 of 300 measurements" in out
    assert "held-out (200 architectures)" in out
    spearman = float(out.split("Spearman ")[1].split()[0])
    assert spearman > 0.95
    assert pred.is_file() and (tmp_path / "lut.png").stat().st_size > 1000

    code, out, err = run(capsys, "predictor", "eval", pred, "--db", db)
    assert code == 0, err
    assert "held-out (200 architectures)" in out  # the 100 training cells are not scored

    cells = nb201.sample_many(2, 5)
    code, out, err = run(capsys, "predictor", "predict", pred, *[nb201.to_string(c) for c in cells])
    assert code == 0, err
    assert "device ort:cpu/1t@Test CPU" in out and out.count("|+|") == 4


def test_mlp_predict_prints_the_ensemble_spread(tmp_path, capsys, db, nb201):
    pred = tmp_path / "mlp.pt"
    code, out, err = run(capsys, "predictor", "fit", "--db", db, "--device", help_id(db, "help:ref"),
                         "--space", "nb201", "--kind", "mlp", "-o", pred, "--train-size", 60)
    assert code == 0, err
    code, out, err = run(capsys, "predictor", "predict", pred, nb201.to_string(nb201.sample(1)))
    assert code == 0, err
    assert "std_ms" in out


def help_id(db, label):
    with MeasurementStore(db, readonly=True) as store:
        devices = store.devices()
    return devices.loc[devices.label == label, "device_id"].item()


def test_transfer_uses_the_other_devices_as_references(tmp_path, capsys, db):
    pred = tmp_path / "tr.pt"
    code, out, err = run(capsys, "predictor", "fit", "--db", db, "--device", "ort:cpu/1t@Test CPU",
                         "--space", "nb201", "--kind", "transfer", "-o", pred, "--train-size", 10,
                         "--references", "help:ref,help:ref2")
    assert code == 0, err
    assert "references: help:ref2@b1, help:ref@b1" in out or "references: help:ref@b1, help:ref2@b1" in out
    mape = float(out.split("MAPE ")[1].split("%")[0])
    assert mape < 2.0  # ten measurements suffice for a blend of known devices


@pytest.mark.parametrize("references,message", [
    ("help:ref,help:nope", "no reference data for help:nope@b1 (nb201 at input shape 3x32x32); "
                           "available: bad:neg@b1, help:ref@b1, help:ref2@b1, ort:cpu/4t@Other@b1"),
    ("ort:cpu/1t@Test CPU", "ort:cpu/1t@Test CPU@b1 is the device being fitted; it cannot be its own "
                            "reference"),
])
def test_transfer_references_bad_input_exits_2(tmp_path, capsys, db, references, message):
    code, out, err = run(capsys, "predictor", "fit", "--db", db, "--device", "ort:cpu/1t@Test CPU",
                         "--space", "nb201", "--kind", "transfer", "-o", tmp_path / "tr.pt",
                         "--train-size", 10, "--references", references)
    assert code == 2 and err == f"hwnas: error: {message}.\n", err
    assert not (tmp_path / "tr.pt").exists()


def test_device_prefix_must_be_unambiguous(tmp_path, capsys, db):
    code, _, err = run(capsys, "predictor", "fit", "--db", db, "--device", "ort:cpu", "--space", "nb201",
                       "--kind", "lut", "-o", tmp_path / "x.pt")
    assert code == 2 and "matches several devices" in err and err.count("\n") == 1
    code, _, err = run(capsys, "predictor", "fit", "--db", db, "--device", "tensorrt", "--space",
                       "nb201", "--kind", "lut", "-o", tmp_path / "x.pt")
    assert code == 2 and "no device 'tensorrt'" in err and "help:ref" in err


@pytest.mark.parametrize("argv,message", [
    (["--device", "bad:neg", "--kind", "lut"], "finite and positive"),
    (["--device", "help:ref", "--kind", "mlp", "--train-size", "3"], "needs at least 5 measurements"),
    (["--device", "help:ref", "--kind", "lut", "--train-size", "301"], "exceeds the 300 measurements"),
    (["--device", "help:ref", "--kind", "lut", "--space", "fbnet"], "no measurements of space fbnet"),
])
def test_fit_bad_input_exits_2(tmp_path, capsys, db, argv, message):
    space = [] if "--space" in argv else ["--space", "nb201"]
    code, _, err = run(capsys, "predictor", "fit", "--db", db, *space, "-o", tmp_path / "x.pt", *argv)
    assert code == 2 and message in err, err


def test_eval_and_predict_bad_input_exit_2(tmp_path, capsys, db, nb201):
    pred = tmp_path / "lut.pt"
    assert run(capsys, "predictor", "fit", "--db", db, "--device", "help:ref", "--space", "nb201",
               "--kind", "lut", "-o", pred)[0] == 0
    code, _, err = run(capsys, "predictor", "eval", pred, "--db", db, "--device", "help:ref2")
    assert code == 2 and "trained on device 'help:ref'" in err and "--allow-device-mismatch" in err
    code, out, _ = run(capsys, "predictor", "eval", pred, "--db", db, "--device", "help:ref2",
                       "--allow-device-mismatch")
    assert code == 0 and "all stored (300 architectures)" in out
    code, _, err = run(capsys, "predictor", "predict", pred, "7-8-1-8-4-8-8-8-7-4-1-4-7-3-2-7-3-2-4-2-4-5")
    assert code == 2 and "invalid nb201 architecture" in err
    code, _, err = run(capsys, "predictor", "predict", pred, nb201.to_string(nb201.sample(0)),
                       "--device", "help:ref2")
    assert code == 2 and "--allow-device-mismatch" in err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(pred.read_bytes()[:300])
    code, _, err = run(capsys, "predictor", "predict", broken, nb201.to_string(nb201.sample(0)))
    assert code == 2 and "corrupt or not a predictor file" in err
    code, _, err = run(capsys, "predictor", "eval", pred, "--db", tmp_path / "missing.sqlite")
    assert code == 2 and "does not exist" in err


# ---- nothing lost, nothing half-written ---------------------------------------------------
FIT = ["predictor", "fit", "--device", "help:ref", "--space", "nb201", "--kind", "lut"]


@pytest.fixture
def fitted(tmp_path, capsys, db):
    """A valid predictor and its plot at tmp_path/p.pt, p.png: what a failure must keep."""
    pred = tmp_path / "p.pt"
    assert run(capsys, *FIT, "--db", db, "-o", pred)[0] == 0
    return pred


def _fit_must_not_run(monkeypatch):
    from latency.predictors.base import Predictor

    def never(self, *args, **kwargs):
        raise AssertionError("the predictor was fitted before the output was checked")

    monkeypatch.setattr(Predictor, "fit", never)


def test_fit_on_a_full_disk_keeps_the_previous_predictor(tmp_path, capsys, db, fitted, monkeypatch):
    before = digests(tmp_path)
    full_disk(monkeypatch)
    line = fails_in_one_sentence(capsys, *FIT, "--db", db, "-o", fitted, "--seed", 1,
                                 contains="No space left on device")
    assert str(fitted) in line
    assert digests(tmp_path) == before  # the valid file is intact, no temporary file left


def test_fit_refuses_a_full_disk_before_fitting(tmp_path, capsys, db, fitted, monkeypatch):
    before = digests(tmp_path)
    _fit_must_not_run(monkeypatch)
    no_free_space(monkeypatch)
    fails_in_one_sentence(capsys, *FIT, "--db", db, "-o", fitted, contains="0 bytes free")
    assert digests(tmp_path) == before


def test_fit_refuses_a_read_only_folder_before_fitting(tmp_path, capsys, db, monkeypatch):
    _fit_must_not_run(monkeypatch)
    read_only_folders(monkeypatch)
    fails_in_one_sentence(capsys, *FIT, "--db", db, "-o", tmp_path / "p.pt",
                          contains=f"folder {tmp_path} is not writable")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["devnull_link", "fifo", "proc"])
def test_fit_refuses_special_targets_before_fitting(tmp_path, capsys, db, monkeypatch, target):
    _fit_must_not_run(monkeypatch)
    out = tmp_path / "p.pt"
    if target == "devnull_link":
        out.symlink_to("/dev/null")
    elif target == "fifo":
        os.mkfifo(out)
    else:
        out = Path("/proc/hwnas-test.pt")
    fails_in_one_sentence(capsys, *FIT, "--db", db, "-o", out, contains="cannot write")
    if target == "devnull_link":
        assert os.readlink(out) == "/dev/null"


@pytest.mark.parametrize("plot", ["/proc/x.png", "fifo", "missing/folder/x.png"])
def test_eval_plot_to_an_unwritable_path_is_one_sentence_before_scoring(tmp_path, capsys, db,
                                                                         fitted, plot):
    if plot == "fifo":
        plot = tmp_path / "plot.png"
        os.mkfifo(plot)
    elif not plot.startswith("/"):
        blocker = tmp_path / "missing"
        blocker.write_text("a file where a folder is expected")
        plot = tmp_path / plot
    before = digests(tmp_path)
    fails_in_one_sentence(capsys, "predictor", "eval", fitted, "--db", db, "--plot", plot,
                          contains="cannot write")
    assert digests(tmp_path) == before


def test_eval_plot_on_a_full_disk_keeps_the_previous_plot(tmp_path, capsys, db, fitted, monkeypatch):
    png = tmp_path / "p.png"
    before = digests(tmp_path)
    full_disk(monkeypatch)
    fails_in_one_sentence(capsys, "predictor", "eval", fitted, "--db", db, "--device", "help:ref2",
                          "--allow-device-mismatch", "--plot", png, contains="No space left")
    assert digests(tmp_path) == before


def test_fit_writes_a_small_predictor_on_a_nearly_full_real_disk(small_tmpfs, capsys, db):
    """256 KiB free and a predictor of a few KiB: written (a fixed 1 MiB rule refused it)."""
    target = small_tmpfs / "p.pt"
    assert main([*FIT, "--db", str(db), "-o", str(target)]) == 0
    assert 0 < target.stat().st_size < 200 * 1024
    capsys.readouterr()
