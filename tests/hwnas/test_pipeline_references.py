"""A second device in the store's shadow: references found, judged and used, or refused.

Both devices are exact stand-ins (tests/hwnas/macs_device.py: latency = a + b * MACs with
different a, b), so what is tested is the choice of references and predictors, not
the load of the test machine.
"""

from __future__ import annotations

import json

import pytest

from hwnas.cli import main
from tests.hwnas import macs_device

REDUCED = ["--holdout", "8", "--active-measurements", "0", "--sweep", "1", "--max-rounds", "1",
           "--search-epochs", "1", "--retrain-epochs", "1", "--max-samples", "300",
           "--margin", "0.05", "--no-progress"]


@pytest.fixture(scope="module")
def first_device_store(tmp_path_factory):
    db = tmp_path_factory.mktemp("store") / "lat.sqlite"
    assert main(["profile", "--device", macs_device.SPEC, "--space", "fbnetv2", "--preset", "tiny",
                 "-n", "60", "--seed", "3", "--db", str(db), "--no-progress"]) == 0
    # other spaces / input sizes in the same store must be ignored, never mixed
    assert main(["profile", "--device", macs_device.SPEC, "--space", "fbnetv2", "--preset",
                 "mobile", "-n", "2", "--seed", "3", "--db", str(db), "--no-progress"]) == 0
    return db


def test_the_second_device_starts_from_the_first(first_device_store, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--out", str(out), "--device", macs_device.SPEC2, "--db",
                 str(first_device_store), *REDUCED]) == 0
    printed = capsys.readouterr().out
    stages = json.loads((out / "stages.json").read_text())
    assert stages["profile"]["train"] == 15  # the default with references
    record = json.loads((out / "references.json").read_text())
    used = [r for r in record["references"] if r["used"]]
    assert [r["label"].split("/")[0] for r in used] == [macs_device.SPEC]
    assert used[0]["overlap"] >= 15 and used[0]["spearman"] > 0.9
    assert any("ignored" in n and "fbnetv2:mobile" in n for n in record["notices"])
    assert set(record["scores"]) == {"mlp", "transfer"} and record["chosen"] in record["scores"]
    best = record["scores"][record["chosen"]]
    assert best["within10"] >= max(v["within10"] for v in record["scores"].values())
    assert "kept the" in printed and "ignored" in printed
    # devices a+bMACs and a'+b'MACs: with 15 measurements, what the first device taught beats
    # an ensemble that starts from nothing (real devices: benchmarks/second_device.py)
    scores = record["scores"]
    assert scores["transfer"]["mape"] < scores["mlp"]["mape"] and record["chosen"] == "transfer"
    assert stages["fit"]["kind"] == "transfer"


def test_too_little_overlap_falls_back_to_the_ensemble_and_says_so(first_device_store, tmp_path,
                                                                  capsys):
    out = tmp_path / "run"
    assert main(["search", "--out", str(out), "--device", macs_device.SPEC2, "--db",
                 str(first_device_store), "--initial", "6", *REDUCED]) == 0
    record = json.loads((out / "references.json").read_text())
    assert record["chosen"] == "mlp" and not any(r["used"] for r in record["references"])
    assert "plain ensemble" in capsys.readouterr().out


def test_unknown_reference_device_is_one_sentence_before_the_folder(first_device_store, tmp_path,
                                                                   capsys):
    out = tmp_path / "never"
    assert main(["search", "--out", str(out), "--device", macs_device.SPEC2, "--db",
                 str(first_device_store), "--references", "help:abacus", *REDUCED]) == 2
    err = capsys.readouterr().err.strip()
    assert "--references names 'help:abacus'" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_new_empty_store_given_with_db_is_the_one_filled(tmp_path):
    """An empty --db (a team's new shared store) must be filled, not a store in the run
    folder: the first device's run is what a second device's run learns from."""
    from latency.store import MeasurementStore

    db, out = tmp_path / "shared.sqlite", tmp_path / "run"
    MeasurementStore(db).close()  # exists, holds nothing yet
    assert main(["search", "--out", str(out), "--device", macs_device.SPEC, "--db", str(db),
                 "--initial", "12", *REDUCED]) == 0
    assert len(MeasurementStore(db, readonly=True)) >= 12 + 8
    assert not (out / "lat.sqlite").exists()
