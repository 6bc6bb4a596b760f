"""The measurement store's rows: add measurements, read them back as a DataFrame, merge
another store, export to CSV/Parquet."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import pandas as pd

from latency.store.errors import StoreError
from latency.store.file import StoreFile
from latency.store.rows import _as_dict, _finite, _now, device_id_of, shape_key
from latency.store.schema import (_FRAME_COLUMNS, _FRAME_FROM, _FRAME_SELECT, _INSERT_SQL,
                                  _INSERT_VALUE_SQL, _STAT_COLUMNS)
from spaces.core import OutputError, atomic_write, check_writable

if TYPE_CHECKING:
    from spaces import Arch, Space


class MeasurementStore(StoreFile):
    """Create or open the store at ``path`` (parent folders are created); one row per
    (space key, arch string, device fingerprint id, batch, input shape).

    ``readonly=True`` opens an existing store without ever writing.
    """

    # ---- writing ----------------------------------------------------------------------
    def _device_ref(self, conn: sqlite3.Connection, fingerprint: dict[str, Any]) -> int:
        """Row id of the device, inserting it (label, source, fingerprint JSON) if new."""
        device_id = device_id_of(fingerprint)
        conn.execute("INSERT OR IGNORE INTO devices (device_id, label, source, fingerprint, created_at) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (device_id, str(fingerprint.get("label") or device_id),
                      str(fingerprint.get("source") or "measured"),
                      json.dumps(fingerprint, sort_keys=True, default=str), _now()))
        return int(conn.execute("SELECT id FROM devices WHERE device_id=?", (device_id,)).fetchone()[0])

    @staticmethod
    def _arch_refs(conn: sqlite3.Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Row ids of (space, arch) pairs, inserting the new ones."""
        wanted = sorted(set(keys))
        conn.executemany("INSERT OR IGNORE INTO archs (space, arch) VALUES (?, ?)", wanted)
        refs: dict[tuple[str, str], int] = {}
        for space in {k[0] for k in wanted}:
            names = {k[1] for k in wanted if k[0] == space}
            for arch_id, arch in conn.execute("SELECT id, arch FROM archs WHERE space=?", (space,)):
                if arch in names:
                    refs[(space, arch)] = arch_id
        return refs

    @staticmethod
    def _stats(arch_str: str, measurement: Any) -> tuple:
        m = _as_dict(measurement)
        try:
            latency = float(m["latency_ms"])
            batch = int(m.get("batch", 1))
            shape = shape_key(m["input_shape"])
        except (KeyError, TypeError, ValueError) as error:
            raise StoreError(f"measurement for {arch_str} lacks latency_ms/batch/input_shape "
                             f"({error})") from None
        samples = m.get("samples_ms")
        aux = m.get("aux_samples_ms") or None
        return (batch, shape, latency, str(m.get("statistic") or "unknown"),
                *[_finite(m.get(c)) for c in _STAT_COLUMNS],
                json.dumps([float(x) for x in samples]) if samples is not None else None,
                json.dumps({str(k): [float(x) for x in v] for k, v in aux.items()}) if aux else None)

    def add(self, space_key: str, arch_str: str, fingerprint: dict[str, Any], measurement: Any) -> bool:
        """Store one measurement; False (and nothing changed) if its key is already stored."""
        return self.add_many([(space_key, arch_str, fingerprint, measurement)]) == 1

    def add_many(self, rows: Iterable[Any]) -> int:
        """Store rows in one transaction (all or none); returns how many were new.

        A row is ``(space_key, arch_str, fingerprint, measurement)`` or a dict with
        those keys; the measurement is a dict or has ``to_dict()`` (a devices.Measurement).
        """
        parsed = []
        for row in rows:
            if isinstance(row, dict):
                row = (row["space_key"], row["arch_str"], row["fingerprint"], row["measurement"])
            space_key, arch_str, fingerprint, measurement = row
            parsed.append((str(space_key), str(arch_str), fingerprint,
                           self._stats(str(arch_str), measurement)))
        created = _now()
        with self._write() as conn:
            devices: dict[str, int] = {}
            for _, _, fingerprint, _ in parsed:
                key = device_id_of(fingerprint)
                if key not in devices:
                    devices[key] = self._device_ref(conn, fingerprint)
            archs = self._arch_refs(conn, ((sp, a) for sp, a, _, _ in parsed))
            values = [(archs[(sp, a)], devices[device_id_of(fp)], *stats, created)
                      for sp, a, fp, stats in parsed]
            before = conn.total_changes
            conn.executemany(_INSERT_SQL, values)
            return conn.total_changes - before

    def add_values(self, fingerprint: dict[str, Any],
                   rows: Iterable[tuple[str, str, int, "str | Sequence[int]", float]],
                   statistic: str = "reported") -> int:
        """Fast path for external tables: ``(space, arch, batch, input_shape, latency_ms)``
        rows of one device, without samples, in one transaction; returns how many were new."""
        return self.add_value_sets([(fingerprint, rows)], statistic)[0]

    def add_value_sets(self, sets: Iterable[tuple[dict[str, Any], Iterable[tuple]]],
                       statistic: str = "reported") -> list[int]:
        """Several devices' ``add_values`` in one transaction; new rows per device, in order."""
        created = _now()
        shapes: dict[Any, str] = {}
        materialised = []
        for fingerprint, rows in sets:
            rows = [(str(sp), str(a), int(b), shape, float(v)) for sp, a, b, shape, v in rows]
            for *_, shape, _ in rows:
                key = shape if isinstance(shape, str) else tuple(shape)
                if key not in shapes:
                    shapes[key] = shape_key(shape)
            materialised.append((fingerprint, rows))
        counts = []
        with self._write() as conn:
            archs = self._arch_refs(conn, ((r[0], r[1]) for _, rows in materialised for r in rows))
            for fingerprint, rows in materialised:
                device = self._device_ref(conn, fingerprint)
                values = [(archs[(sp, a)], device, b,
                           shapes[shape if isinstance(shape, str) else tuple(shape)], v, statistic,
                           created) for sp, a, b, shape, v in rows]
                values.sort(key=lambda r: r[0])  # index order: inserts append, not scatter
                before = conn.total_changes
                conn.executemany(_INSERT_VALUE_SQL, values)
                counts.append(conn.total_changes - before)
        return counts

    def merge(self, path: "str | os.PathLike[str]", space: str | None = None) -> dict[str, int]:
        """Copy every measurement of another hwnas store file into this one, in one
        transaction, keeping device ids, fingerprints, statistics and samples; rows already
        here are kept as they are. ``space`` (a family name such as ``nb201``) copies only
        that space's rows (and the devices that measured it). Returns ``{device label: rows
        newly stored}``."""
        from spaces.base import family_of

        source = Path(path)
        if source.resolve() == self.path.resolve():
            raise StoreError(f"cannot import measurement store {source} into itself")
        MeasurementStore(source, readonly=True).close()  # an hwnas store of this schema, or one sentence
        columns = ("batch", "input_shape", "latency_ms", "statistic", *_STAT_COLUMNS, "samples",
                   "aux_samples", "created_at")
        try:
            self._conn.execute("ATTACH DATABASE ? AS src", (f"{source.resolve().as_uri()}?mode=ro",))
        except sqlite3.Error as error:
            raise StoreError(f"cannot read measurement store {source}: {error}") from None
        counts: dict[str, int] = {}
        try:
            held = [row[0] for row in self._conn.execute("SELECT DISTINCT space FROM src.archs")]
            keys = [k for k in held if space is None or family_of(k) == space]
            if not keys:
                raise StoreError(f"measurement store {source} holds no {space} measurements "
                                 f"(its spaces: {', '.join(sorted(held)) or 'none'})")
            marks = ", ".join("?" * len(keys))
            insert = (f"INSERT OR IGNORE INTO measurements (arch_ref, device_ref, {', '.join(columns)}) "
                      f"SELECT a.id, d.id, {', '.join('m.' + c for c in columns)} "
                      f"FROM src.measurements m JOIN src.archs sa ON sa.id = m.arch_ref "
                      f"JOIN main.archs a ON a.space = sa.space AND a.arch = sa.arch "
                      f"JOIN src.devices sd ON sd.id = m.device_ref "
                      f"JOIN main.devices d ON d.device_id = sd.device_id "
                      f"WHERE sd.device_id = ? AND sa.space IN ({marks}) ORDER BY m.id")
            measured_by = (f"SELECT DISTINCT m.device_ref FROM src.measurements m JOIN src.archs sa "
                           f"ON sa.id = m.arch_ref WHERE sa.space IN ({marks})")
            with self._write() as conn:
                conn.execute("INSERT OR IGNORE INTO devices (device_id, label, source, fingerprint, "
                             "created_at) SELECT device_id, label, source, fingerprint, created_at "
                             f"FROM src.devices WHERE id IN ({measured_by})", keys)
                conn.execute(f"INSERT OR IGNORE INTO archs (space, arch) SELECT space, arch "
                             f"FROM src.archs WHERE space IN ({marks}) ORDER BY id", keys)
                for device_id, label in conn.execute(
                        f"SELECT device_id, label FROM src.devices WHERE id IN ({measured_by}) "
                        f"ORDER BY label", keys).fetchall():
                    before = conn.total_changes
                    conn.execute(insert, (device_id, *keys))
                    counts[label] = counts.get(label, 0) + conn.total_changes - before
        except sqlite3.Error as error:
            raise StoreError(f"cannot import measurement store {source}: {error}") from None
        finally:
            self._conn.execute("DETACH DATABASE src")
        return counts

    # ---- reading ----------------------------------------------------------------------
    def has(self, space_key: str, arch_str: str, device_id: str, batch: int,
            input_shape: "str | Sequence[int]") -> bool:
        return bool(self._query(
            f"SELECT 1 FROM {_FRAME_FROM} WHERE a.space=? AND a.arch=? AND d.device_id=? "
            f"AND m.batch=? AND m.input_shape=? LIMIT 1",
            (space_key, arch_str, device_id, int(batch), shape_key(input_shape))))

    def stored_archs(self, space_key: str, device_id: str, batch: int,
                     input_shape: "str | Sequence[int]") -> set[str]:
        """Arch strings already stored for this space/device/batch/shape (for resuming)."""
        return {r[0] for r in self._query(
            f"SELECT a.arch FROM {_FRAME_FROM} WHERE a.space=? AND d.device_id=? AND m.batch=? "
            f"AND m.input_shape=?", (space_key, device_id, int(batch), shape_key(input_shape)))}

    def frame(self, space: str | None = None, device: str | None = None, batch: int | None = None,
              input_shape: "str | Sequence[int] | None" = None, samples: bool = False) -> pd.DataFrame:
        """Measurements as a DataFrame, oldest first; ``device`` is a device id or a label
        such as ``help:gold_6226`` (a label can cover several fingerprints, e.g. before and
        after a library upgrade; an id is exactly one); ``samples=True`` adds the per-call
        samples (lists of ms, read from ``clock``) and ``aux_samples`` (the same calls read
        by other clocks)."""
        where, params = [], []
        for column, value in (("a.space", space), ("m.batch", batch)):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        if device is not None:
            where.append("(d.device_id=? OR d.label=?)")
            params.extend([device, device])
        if input_shape is not None:
            where.append("m.input_shape=?")
            params.append(shape_key(input_shape))
        sql = (f"SELECT {_FRAME_SELECT}{', m.samples, m.aux_samples' if samples else ''} "
               f"FROM {_FRAME_FROM}" + (f" WHERE {' AND '.join(where)}" if where else "")
               + " ORDER BY m.id")
        names = list(_FRAME_COLUMNS) + (["samples", "aux_samples"] if samples else [])
        frame = pd.DataFrame(self._query(sql, params), columns=names)
        if samples:
            # pandas reads a text column with NULLs as str dtype with NaN: test for text
            frame["samples"] = [json.loads(s) if isinstance(s, str) and s else []
                                for s in frame["samples"]]
            frame["aux_samples"] = [json.loads(s) if isinstance(s, str) and s else {}
                                    for s in frame["aux_samples"]]
        return frame

    def latencies(self, space: "Space", archs: "Sequence[Arch] | None", device: str, *,
                  batch: int = 1, input_shape: "str | Sequence[int] | None" = None,
                  corrected: bool = False) -> "dict[Arch, float]":
        """The one reader every caller uses: latency (ms) of each of ``archs`` (all stored
        ones when None) of ``space`` on ``device`` (an id or a label), at ``batch`` and
        ``input_shape``; as measured, or with the host's drift between groups taken out
        when ``corrected`` (:func:`latency.store.drift.drift_corrected`). Architectures the
        store lacks are left out; strings exist only inside the store."""
        frame = self.frame(space=space.key, device=device, batch=batch, input_shape=input_shape)
        if corrected:
            from latency.store.drift import drift_corrected

            values = drift_corrected(frame)
        else:
            values = frame["latency_ms"].astype(float)
        by_text = dict(zip(frame["arch"].astype(str), values.astype(float)))
        if archs is None:
            return {space.from_string(text): ms for text, ms in by_text.items()}
        out: dict[Arch, float] = {}
        for arch in archs:
            ms = by_text.get(space.to_string(arch))
            if ms is not None:
                out[arch] = float(ms)
        return out

    def devices(self) -> pd.DataFrame:
        """One row per device: device_id, label, source, fingerprint (JSON), rows stored."""
        rows = self._query(
            "SELECT d.device_id, d.label, d.source, d.fingerprint, "
            "(SELECT COUNT(*) FROM measurements m WHERE m.device_ref = d.id) "
            "FROM devices d ORDER BY d.label")
        return pd.DataFrame(rows, columns=["device_id", "label", "source", "fingerprint", "rows"])

    def fingerprint(self, device: str) -> dict[str, Any]:
        """The stored fingerprint of a device id or label."""
        rows = self._query("SELECT fingerprint FROM devices WHERE device_id=? OR label=?",
                           (device, device))
        if not rows:
            raise StoreError(f"no device {device!r} in measurement store {self.path}")
        return json.loads(rows[0][0])

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM measurements")[0][0])

    # ---- export -----------------------------------------------------------------------
    def export(self, path: "str | os.PathLike[str]", samples: bool = False,
               **filters: Any) -> Path:
        """Write ``frame(**filters)`` plus each device's ``fingerprint`` (JSON) to ``.csv`` or
        ``.parquet`` (Parquet needs pyarrow); ``latency.store_exchange.import_file`` reads it
        back into another store under the same device ids."""
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise StoreError(f"cannot export to {target.name}: use a .csv or .parquet file name")
        if suffix == ".parquet" and not (importlib.util.find_spec("pyarrow")
                                         or importlib.util.find_spec("fastparquet")):
            raise StoreError("writing Parquet needs pyarrow (pip install pyarrow); "
                             "export to a .csv file instead")
        try:
            check_writable(target, create_parent=True)
        except OutputError as error:
            raise StoreError(str(error)) from None
        frame = self.frame(samples=samples, **filters)
        stored = dict(self._query("SELECT device_id, fingerprint FROM devices"))
        frame["fingerprint"] = frame["device_id"].map(stored)  # so an import keeps the device
        if samples:
            for column in ("samples", "aux_samples"):
                frame[column] = [json.dumps(s) for s in frame[column]]
        data = frame.to_csv(index=False) if suffix == ".csv" else frame.to_parquet(None, index=False)
        try:
            return atomic_write(target, data)
        except OutputError as error:
            raise StoreError(str(error)) from None
