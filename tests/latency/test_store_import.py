"""Importing the HELP latency tables (shared data) into the store's schema."""

import pandas as pd
import pytest

from latency.help_import import HELP_DEVICES, help_fingerprint, import_help_table, split_column
from latency.shared_data import HELP_FBNET_LATENCY, HELP_NB201_LATENCY, data_file
from latency.store import MeasurementStore, StoreError


@pytest.fixture(scope="module")
def imported(tmp_path_factory, shared_data):
    store = MeasurementStore(tmp_path_factory.mktemp("help") / "lat.sqlite")
    counts = {"nb201": import_help_table(store, data_file(HELP_NB201_LATENCY)),
              "fbnet": import_help_table(store, data_file(HELP_FBNET_LATENCY))}
    return store, counts


def test_every_device_column_becomes_rows(imported):
    store, counts = imported
    assert sum(counts["nb201"].values()) == 15_625 * 27
    assert sum(counts["fbnet"].values()) == 5_000 * 27
    assert counts["nb201"]["help:gold_6226"] == 15_625 and counts["fbnet"]["help:gold_6226"] == 5_000
    assert counts["nb201"]["help:1080ti"] == 3 * 15_625  # batches 1, 32, 256
    # how long it takes depends on the machine's load: that is a benchmark's to report
    frame = store.frame(device="help:gold_6226")
    assert frame.groupby("space").size().to_dict() == {"fbnet": 5_000, "nb201": 15_625}
    assert set(frame.source) == {"imported"} and set(frame.input_shape) == {"3x32x32"}
    assert set(frame.statistic) == {"reported"}


def test_batches_come_from_the_column_suffix(imported):
    store, _ = imported
    gpu = store.frame(device="help:titan_rtx")
    assert gpu.groupby(["space", "batch"]).size().to_dict() == {
        ("fbnet", 1): 5_000, ("fbnet", 32): 5_000, ("fbnet", 64): 5_000,
        ("nb201", 1): 15_625, ("nb201", 32): 15_625, ("nb201", 256): 15_625}
    assert set(store.frame(device="help:essential_ph_1").batch) == {1}  # a phone, not batch 1 of "essential_ph"


def test_values_and_keys_match_the_csv(imported, shared_data):
    store, _ = imported
    table = pd.read_csv(data_file(HELP_NB201_LATENCY))
    frame = store.frame(space="nb201", device="help:2080ti", batch=32).set_index("arch")
    assert frame.latency_ms.loc[table.arch_str].tolist() == pytest.approx(table["2080ti_32"].tolist())
    fb = pd.read_csv(data_file(HELP_FBNET_LATENCY))
    fb_frame = store.frame(space="fbnet", device="help:pixel3").set_index("arch")
    assert fb_frame.latency_ms.loc[fb.op_idx_list].tolist() == pytest.approx(fb["pixel3"].tolist())


def test_devices_are_described_and_shared_between_tables(imported):
    store, _ = imported
    devices = store.devices().set_index("label")
    assert len(devices) == len(HELP_DEVICES) == 17
    assert set(devices.source) == {"imported"}
    assert "Xeon Gold 6226" in devices.loc["help:gold_6226", "fingerprint"]
    assert devices.loc["help:gold_6226", "rows"] == 15_625 + 5_000


def test_reimport_adds_nothing(imported):
    store, _ = imported
    before = len(store)
    counts = import_help_table(store, data_file(HELP_FBNET_LATENCY))
    assert sum(counts.values()) == 0 and len(store) == before


def test_column_names_split_into_device_and_batch():
    assert split_column("1080ti_256") == ("1080ti", 256)
    assert split_column("titan_rtx_32") == ("titan_rtx", 32)
    assert split_column("gold_6226") == ("gold_6226", 1)
    assert split_column("essential_ph_1") == ("essential_ph_1", 1)
    assert help_fingerprint("1080ti")["label"] == "help:1080ti"


def test_a_table_of_another_kind_is_refused(tmp_path):
    csv = tmp_path / "other.csv"
    csv.write_text("name,value\na,1\n")
    store = MeasurementStore(tmp_path / "lat.sqlite")
    with pytest.raises(StoreError, match="not a HELP latency table"):
        import_help_table(store, csv)
    with pytest.raises(StoreError, match="not found"):
        import_help_table(store, tmp_path / "missing.csv")
