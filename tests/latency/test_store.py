"""The measurement store: round trip, uniqueness, refusing foreign files, concurrent readers."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from latency.store import MeasurementStore, StoreError, device_id_of, shape_key

ROOT = Path(__file__).resolve().parents[2]
FP = {"backend": "torch", "target": "cpu", "cpu_model": "Test CPU", "threads": 1, "precision": "fp32",
      "label": "torch:cpu/1t@Test CPU"}


def meas(latency=1.0, batch=1, shape=(3, 32, 32), n=5):
    samples = [latency + 0.01 * i for i in range(n)]
    return {"latency_ms": latency, "statistic": "p10", "samples_ms": samples,
            "median_ms": samples[n // 2], "mean_ms": sum(samples) / n, "std_ms": 0.01, "min_ms": latency,
            "p10_ms": latency, "p90_ms": samples[-1], "cv": 0.01, "robust_cv": 0.005,
            "round_cv": 0.002, "n_samples": n, "rounds": 1, "warmup_iters": 3, "warmup_s": 0.1,
            "batch": batch, "input_shape": list(shape), "precision": "fp32", "threads": 1}


@pytest.fixture
def store(tmp_path):
    with MeasurementStore(tmp_path / "runs" / "lat.sqlite") as s:
        yield s


def test_round_trip_keeps_fields_and_samples(store):
    assert store.add("nb201", "arch-a", FP, meas(1.5))
    frame = store.frame(samples=True)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row.space, row.arch, row.batch, row.input_shape) == ("nb201", "arch-a", 1, "3x32x32")
    assert row.device_id == device_id_of(FP) and row.device_label == FP["label"]
    assert row.source == "measured" and row.statistic == "p10"
    assert row.latency_ms == 1.5 and row.median_ms == pytest.approx(1.52) and row.n_samples == 5
    assert row.samples == pytest.approx([1.5, 1.51, 1.52, 1.53, 1.54])
    for column in ("space", "arch", "device_id", "device_label", "source", "batch", "input_shape",
                   "latency_ms", "median_ms", "p10_ms", "mean_ms", "std_ms", "cv", "n_samples"):
        assert column in frame.columns
    devices = store.devices()
    assert list(devices.label) == [FP["label"]] and json.loads(devices.fingerprint[0])["cpu_model"] == "Test CPU"


def test_measurement_objects_with_to_dict_are_accepted(store):
    from devices import Measurement

    m = Measurement.from_samples([[2.0, 2.1, 2.2]], "median", batch=4, input_shape=(3, 16, 16),
                                 warmup_iters=1, warmup_s=0.0, aux_rounds_ms={"cpu": [[1.9, 2.0, 2.1]]})
    assert store.add("toy", "x", FP, m)
    assert store.has("toy", "x", device_id_of(FP), 4, (3, 16, 16))
    frame = store.frame(batch=4, samples=True)
    assert frame.latency_ms.tolist() == [2.1] and frame.clock.tolist() == ["wall"]
    assert frame.samples[0] == [2.0, 2.1, 2.2] and frame.aux_samples[0] == {"cpu": [1.9, 2.0, 2.1]}


def test_unique_key_is_enforced(store):
    device = device_id_of(FP)
    assert store.add("nb201", "a", FP, meas(1.0))
    assert not store.add("nb201", "a", FP, meas(9.0))  # same key: ignored, first value kept
    assert store.add("nb201", "a", FP, meas(1.0, batch=32))  # other batch
    assert store.add("nb201", "a", FP, meas(1.0, shape=(3, 64, 64)))  # other input
    assert store.add("fbnet", "a", FP, meas(1.0))  # other space
    assert store.add("nb201", "a", {**FP, "threads": 2, "label": "2t"}, meas(1.0))  # other device
    assert store.add_many([("nb201", "a", FP, meas()), ("nb201", "b", FP, meas())]) == 1
    assert len(store) == 6
    assert store.frame(space="nb201", device=device, batch=1, input_shape="3x32x32").latency_ms.tolist() == [1.0, 1.0]
    assert store.has("nb201", "a", device, 1, "3x32x32")
    assert not store.has("nb201", "zzz", device, 1, "3x32x32")
    assert store.stored_archs("nb201", device, 1, (3, 32, 32)) == {"a", "b"}
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 6


def test_frame_filters_by_label_or_id(store):
    other = {**FP, "cpu_model": "Other CPU", "label": "torch:cpu/1t@Other CPU"}
    store.add_many([("nb201", "a", FP, meas(1.0)), ("nb201", "a", other, meas(2.0)),
                    ("fbnet", "b", FP, meas(3.0))])
    assert store.frame(device="torch:cpu/1t@Other CPU").latency_ms.tolist() == [2.0]
    assert store.frame(device=device_id_of(FP)).latency_ms.tolist() == [1.0, 3.0]
    assert store.frame(space="fbnet").arch.tolist() == ["b"]
    assert store.frame(device="no such device").empty


def test_add_many_is_all_or_nothing(store):
    with pytest.raises(StoreError, match="lacks latency_ms"):
        store.add_many([("nb201", "a", FP, meas()), ("nb201", "b", FP, {"batch": 1})])
    assert len(store) == 0


def test_reopen_sees_rows_and_uses_wal(tmp_path):
    path = tmp_path / "lat.sqlite"
    MeasurementStore(path).add("nb201", "a", FP, meas())
    again = MeasurementStore(path)
    assert len(again) == 1
    assert again._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(MeasurementStore(path, readonly=True).frame()) == 1


def test_garbage_file_is_refused_and_untouched(tmp_path):
    path = tmp_path / "lat.sqlite"
    garbage = bytes(range(256)) * 40
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match="not an SQLite file") as info:
        MeasurementStore(path)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lat.sqlite"]  # no -wal/-shm created


def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
        conn.execute("INSERT INTO people VALUES ('ada')")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not an hwnas measurement store .*people"):
        MeasurementStore(path)
    assert path.read_bytes() == before


def test_corrupt_store_is_refused(tmp_path):
    path = tmp_path / "lat.sqlite"
    MeasurementStore(path).add("nb201", "a", FP, meas())
    data = bytearray(path.read_bytes())
    data[100:len(data)] = b"\xff" * (len(data) - 100)  # keep the magic header, wreck the rest
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with pytest.raises(StoreError):
        MeasurementStore(path).frame()
    assert path.read_bytes() == bytes(data)


def test_unwritable_locations_are_one_sentence(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        MeasurementStore(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the folder"):
        MeasurementStore(blocker / "lat.sqlite")
    with pytest.raises(StoreError, match="does not exist"):
        MeasurementStore(tmp_path / "missing.sqlite", readonly=True)


def test_export_csv_and_parquet(store, tmp_path):
    store.add_many([("nb201", f"a{i}", FP, meas(float(i + 1))) for i in range(3)])
    out = store.export(tmp_path / "out" / "lat.csv", samples=True)
    table = pd.read_csv(out)
    assert table.latency_ms.tolist() == [1.0, 2.0, 3.0]
    assert json.loads(table.samples[0])[0] == 1.0
    with pytest.raises(StoreError, match="use a .csv or .parquet"):
        store.export(tmp_path / "lat.xlsx")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(StoreError, match="Parquet needs pyarrow"):
            store.export(tmp_path / "lat.parquet")
    else:
        assert pd.read_parquet(store.export(tmp_path / "lat.parquet")).shape[0] == 3


def test_device_id_matches_the_devices_package():
    from devices.fingerprint import fingerprint_id

    fp = {k: v for k, v in FP.items() if k != "label"}
    assert device_id_of(fp) == fingerprint_id(fp)
    assert device_id_of({**fp, "id": "given"}) == "given"


def test_shape_key_normalises():
    assert shape_key((3, 32, 32)) == shape_key("3x32x32") == shape_key("3, 32, 32") == "3x32x32"
    with pytest.raises(StoreError):
        shape_key("three")


WRITER = """
import sys, time
from pathlib import Path
from latency.store import MeasurementStore
fp = {"backend": "w", "label": "writer"}
store = MeasurementStore(sys.argv[1])
n, flags = int(sys.argv[2]), Path(sys.argv[3])
for i in range(n):
    store.add("nb201", f"arch-{i}", fp, {"latency_ms": 1.0 + i, "batch": 1, "input_shape": [3, 32, 32],
                                         "samples_ms": [1.0] * 50})
    if i + 1 in (n // 3, 2 * n // 3):  # pause mid-write until the reader has looked
        (flags / f"paused-{i + 1}").touch()
        deadline = time.monotonic() + 120
        while not (flags / f"go-{i + 1}").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
"""


def test_readers_work_while_another_process_writes(tmp_path):
    """The writer pauses twice with rows committed and more to come, and waits for the
    reader: so the reader reads mid-write however loaded the machine is."""
    path = tmp_path / "lat.sqlite"
    MeasurementStore(path)  # create it first, so the reader never races the creation
    n = 150
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n), str(tmp_path)],
                              cwd=ROOT)
    reader = MeasurementStore(path)
    counts, mid = [], []
    try:
        while writer.poll() is None:
            frame = reader.frame()
            counts.append(len(frame))
            assert frame.arch.is_unique
            for k in (n // 3, 2 * n // 3):
                if (tmp_path / f"paused-{k}").exists() and not (tmp_path / f"go-{k}").exists():
                    mid.append(len(reader))
                    (tmp_path / f"go-{k}").touch()
            time.sleep(0.01)
    finally:
        writer.wait(timeout=300)
    assert writer.returncode == 0
    counts.append(len(reader))
    assert counts == sorted(counts)  # committed rows only ever appear, never vanish
    assert counts[-1] == n
    assert mid == [n // 3, 2 * n // 3]  # read while it wrote: every committed row, no more


CREATOR = """
import sys
from pathlib import Path
from latency.store import MeasurementStore
me, other, folder, rounds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
for r in range(rounds):
    (folder / f"ready-{r}-{me}").touch()
    while not (folder / f"ready-{r}-{other}").exists():
        pass  # a tight spin: both processes open the new store within microseconds
    with MeasurementStore(folder / f"store-{r}.sqlite") as store:
        store.add("nb201", "arch", {"backend": me, "label": me},
                  {"latency_ms": 1.0, "batch": 1, "input_shape": [3, 32, 32]})
"""


def test_two_processes_create_one_new_store_at_once(tmp_path):
    """Both processes open the same not-yet-existing store at the same moment, 12 times:
    without the folder lock one lost SQLite's switch to WAL ("database is locked") and
    deleted the file under the other (109 failures in 150 such openings)."""
    rounds = 12
    procs = [subprocess.Popen([sys.executable, "-c", CREATOR, me, other, str(tmp_path), str(rounds)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for me, other in (("a", "b"), ("b", "a"))]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    for r in range(rounds):
        with MeasurementStore(tmp_path / f"store-{r}.sqlite", readonly=True) as store:
            assert len(store) == 2


def _fill_disk(store: MeasurementStore) -> None:
    """The store's file may not grow (SQLite's own limit): every write that needs a new
    page fails with "database or disk is full", as on a full disk."""
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count={pages}")


def test_full_disk_is_one_sentence_and_the_store_stays_intact(tmp_path):
    import hashlib

    path = tmp_path / "lat.sqlite"
    with MeasurementStore(path) as s:
        s.add_many([("nb201", f"a{i}", FP, meas(float(i + 1))) for i in range(3)])
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with MeasurementStore(path) as s:
        _fill_disk(s)
        big = [("nb201", f"b{i}", FP, meas(1.0, n=2000)) for i in range(50)]
        with pytest.raises(StoreError, match="disk is full") as info:
            s.add_many(big)
        assert "rollback" not in str(info.value)
        assert not s._conn.in_transaction
        with pytest.raises(StoreError, match="disk is full"):
            s.add_values(FP, [("nb201", f"c{i}", 1, "3x32x32", 1.0) for i in range(5000)])
        assert len(s) == 3
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    with MeasurementStore(path) as s:  # and it still takes rows once there is room
        s.add_many(big[:2])
        assert len(s) == 5


def test_a_new_store_that_cannot_be_created_leaves_no_file(tmp_path, monkeypatch):
    def full(self, *args):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(MeasurementStore, "_create_schema", full)
    with pytest.raises(StoreError, match="disk is full"):
        MeasurementStore(tmp_path / "new.sqlite")
    assert list(tmp_path.iterdir()) == []


def test_export_failure_keeps_the_previous_file(store, tmp_path, monkeypatch):
    import errno
    import hashlib

    from spaces.core import files

    store.add_many([("nb201", f"a{i}", FP, meas(float(i + 1))) for i in range(3)])
    out = store.export(tmp_path / "lat.csv")
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    store.add("nb201", "a9", FP, meas(9.0))

    def enospc(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", enospc)
    with pytest.raises(StoreError, match="No space left"):
        store.export(out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lat.csv", "runs"]
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="not a regular file"):
        store.export(fifo)


@pytest.mark.parametrize("version", [1, 2])
def test_older_stores_are_migrated_without_losing_rows(tmp_path, version):
    path = tmp_path / "old.sqlite"
    with MeasurementStore(path) as s:
        s.add("nb201", "arch-a", FP, meas(1.5))
    conn = sqlite3.connect(path)  # make it an older file: version 1 lacks reference_ms too
    conn.execute("ALTER TABLE measurements DROP COLUMN block_calls")
    if version == 1:
        conn.execute("ALTER TABLE measurements DROP COLUMN reference_ms")
    conn.execute(f"PRAGMA user_version={version}")
    conn.commit()
    conn.close()
    with MeasurementStore(path) as s:
        frame = s.frame()
        assert len(frame) == 1 and frame.iloc[0].latency_ms == 1.5
        assert frame.iloc[0].block_calls == 1  # older rows were timed call by call
        if version == 1:
            assert pd.isna(frame.iloc[0].reference_ms)
        assert s.add("nb201", "arch-b", FP, {**meas(2.0), "reference_ms": 0.5, "block_calls": 7})
        row = s.frame().set_index("arch").loc["arch-b"]
        assert row.reference_ms == 0.5 and row.block_calls == 7


def test_drift_correction_puts_groups_on_one_scale(store):
    from latency.store import drift_corrected

    # two groups measured while the machine ran at different speeds: the reference network
    # read 1.0 ms in the first and 1.1 ms in the second (10% slower)
    store.add_many([("s", "a", FP, {**meas(2.0), "reference_ms": 1.0}),
                    ("s", "b", FP, {**meas(4.0), "reference_ms": 1.0}),
                    ("s", "c", FP, {**meas(2.2), "reference_ms": 1.1}),
                    ("s", "d", FP, {**meas(3.0)})])  # no reference: kept as measured
    frame = store.frame()
    corrected = dict(zip(frame["arch"], drift_corrected(frame)))
    assert corrected["a"] == pytest.approx(2.0) and corrected["b"] == pytest.approx(4.0)
    assert corrected["c"] == pytest.approx(2.0)  # its group's 10% slowdown taken out
    assert corrected["d"] == 3.0
