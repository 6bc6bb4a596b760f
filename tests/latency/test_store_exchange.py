"""Moving measurements between stores: merging a store file, exporting and importing
an export under the same device ids, skipping what is there, refusing bad files; the
network file system check."""

import logging

import pandas as pd
import pytest

from latency.store import MeasurementStore, StoreError, filesystem_type
from latency.store_exchange import import_file
from tests.latency.test_store import FP, meas

OTHER = {"source": "imported", "device": "ref", "kind": "cpu", "label": "help:ref"}
COLUMNS = ["space", "arch", "device_id", "device_label", "source", "batch", "input_shape",
           "latency_ms", "statistic", "median_ms", "p10_ms", "n_samples", "block_calls"]


@pytest.fixture
def first(tmp_path):
    """The first machine's store: a measured device (with samples) and an imported one."""
    with MeasurementStore(tmp_path / "first.sqlite") as store:
        store.add_many([("nb201", f"a{i}", FP, {**meas(1.0 + i), "block_calls": 4}) for i in range(5)])
        store.add_values(OTHER, [("nb201", f"a{i}", 1, "3x32x32", 2.0 + i) for i in range(7)])
        yield store


def table(store, **kw):
    return store.frame(samples=True, **kw).sort_values(["device_label", "arch"]).reset_index(drop=True)


def test_merge_copies_everything_and_twice_adds_nothing(first, tmp_path):
    with MeasurementStore(tmp_path / "second.sqlite") as second:
        second.add("nb201", "a0", FP, meas(9.0))  # already here: kept as it is
        counts = second.merge(first.path)
        assert counts == {FP["label"]: 4, "help:ref": 7}
        assert second.merge(first.path) == {FP["label"]: 0, "help:ref": 0}
        got, want = table(second), table(first)
        assert len(got) == 12 and not got.duplicated(["arch", "device_id"]).any()
        assert got.loc[(got.arch == "a0") & (got.device_label == FP["label"]), "latency_ms"].item() == 9.0
        keep = ~((got.arch == "a0") & (got.device_label == FP["label"]))
        cols = COLUMNS + ["samples"]
        assert got.loc[keep, cols].reset_index(drop=True).equals(
            want.loc[keep.values, cols].reset_index(drop=True))
        assert second.fingerprint(FP["label"]) == first.fingerprint(FP["label"])


@pytest.mark.parametrize("suffix,samples", [(".csv", False), (".csv", True), (".parquet", True)])
def test_export_then_import_keeps_devices_and_values(first, tmp_path, suffix, samples):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    exported = first.export(tmp_path / f"first{suffix}", samples=samples)
    assert "fingerprint" in pd.read_csv(exported).columns if suffix == ".csv" else True
    with MeasurementStore(tmp_path / "second.sqlite") as second:
        assert import_file(second, exported) == {FP["label"]: 5, "help:ref": 7}
        assert import_file(second, exported) == {FP["label"]: 0, "help:ref": 0}
        got, want = table(second), table(first)
        assert got[COLUMNS].equals(want[COLUMNS])
        assert set(second.devices().device_id) == set(first.devices().device_id)
        assert second.fingerprint("help:ref") == first.fingerprint("help:ref")
        if samples:
            assert got.samples.tolist() == want.samples.tolist()


def test_import_file_merges_a_store_file(first, tmp_path):
    with MeasurementStore(tmp_path / "second.sqlite") as second:
        assert sum(import_file(second, first.path).values()) == 12


def test_bad_files_are_one_sentence(first, tmp_path):
    with pytest.raises(StoreError, match="into itself"):
        first.merge(first.path)
    with pytest.raises(StoreError, match="not found"):
        import_file(first, tmp_path / "missing.csv")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(StoreError, match=r"is not an hwnas export \(missing columns: space, arch"):
        import_file(first, tmp_path / "x.csv")
    import sqlite3

    with sqlite3.connect(tmp_path / "foreign.sqlite") as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="not an hwnas measurement store"):
        import_file(first, tmp_path / "foreign.sqlite")
    assert len(first) == 12


MOUNTS = """\
/dev/sda1 / ext4 rw 0 0
server:/export /mnt/team nfs4 rw 0 0
/dev/sdb1 /mnt/team/local\\040disk xfs rw 0 0
"""


def test_filesystem_type_takes_the_longest_mount_point():
    assert filesystem_type("/mnt/team/lat.sqlite", MOUNTS) == "nfs4"
    assert filesystem_type("/mnt/team/local disk/lat.sqlite", MOUNTS) == "xfs"
    assert filesystem_type("/mnt/teamwork/lat.sqlite", MOUNTS) == "ext4"


def test_a_store_on_a_network_file_system_is_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("latency.store.file.filesystem_type", lambda path, mounts=None: "nfs4")
    with caplog.at_level(logging.WARNING, logger="latency.store"):
        MeasurementStore(tmp_path / "lat.sqlite").close()
    assert "network file system (nfs4)" in caplog.text and "docs/shared-store.md" in caplog.text
