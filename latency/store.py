"""The measurement store: one SQLite file (WAL mode) of latencies keyed by device fingerprint.

One row per (space key, arch string, device fingerprint id, batch, input
shape), enforced by a UNIQUE constraint, holding every field of a Measurement
(samples as JSON). Why SQLite in WAL mode: each batch of rows is committed on
its own, so a profiling run killed with ``kill -9`` loses at most the batch in
flight and the next run skips what is stored; readers (a predictor being
fitted, a notebook) can read while a profiler writes.

``latency`` does not import ``devices``: a measurement comes in as a dict or any
object with ``to_dict()``, a device as its fingerprint dict.

Opening never changes a file that is not already an hwnas store: a file that is
not SQLite, or an SQLite database with other tables, is refused with
:class:`StoreError` before anything is written.

Several processes on one machine may write one store at once (each transaction is
``BEGIN IMMEDIATE`` with a 30 s busy timeout). Several *machines* must not: SQLite's WAL
keeps its index in shared memory, so "all processes using a database must be on the
same host computer; WAL does not work over a network filesystem" (sqlite.org/wal.html).
Opening a store on NFS, SMB or a similar file system logs a warning; machines share
measurements through one Ray driver or by ``export`` + :meth:`MeasurementStore.merge` /
:func:`latency.store_exchange.import_file` (docs/shared-store.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from spaces.core import MIN_FREE_BYTES, OutputError, atomic_write, check_writable, free_bytes
from spaces.errors import HwnasError

log = logging.getLogger(__name__)

APPLICATION_ID = 0x68774E53  # "hwNS": marks a file as an hwnas measurement store
SCHEMA_VERSION = 3  # 2: reference_ms (devices.reference); 3: block_calls; older files are migrated
_SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000


class StoreError(HwnasError, RuntimeError):
    """The store file cannot be used (unwritable, not SQLite, not an hwnas store...)."""


# SQLite's messages for a problem of the machine, not of the code, and what they mean.
_SQLITE_REASONS = {
    "database or disk is full": "the disk is full",
    "unable to open database file": "its folder is missing or not writable",
    "attempt to write a readonly database": "it is read-only",
    "disk i/o error": "the disk reported an input/output error (a full disk does this)",
}


def sqlite_meaning(error: BaseException) -> str | None:
    """What an SQLite failure of the machine (full disk, read-only file...) means for the
    user; None for any other error."""
    text = str(error).lower()
    return next((v for k, v in _SQLITE_REASONS.items() if k in text), None)


def sqlite_reason(error: BaseException) -> str:
    """SQLite's message, with what it means for the user where that is known."""
    text = str(error).strip() or type(error).__name__
    meaning = sqlite_meaning(error)
    return f"{meaning} (SQLite: {text})" if meaning else text


_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id          INTEGER PRIMARY KEY,
    device_id   TEXT NOT NULL UNIQUE,
    label       TEXT NOT NULL,
    source      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS archs (
    id    INTEGER PRIMARY KEY,
    space TEXT NOT NULL,
    arch  TEXT NOT NULL,
    UNIQUE (space, arch)
);
CREATE TABLE IF NOT EXISTS measurements (
    id           INTEGER PRIMARY KEY,
    arch_ref     INTEGER NOT NULL REFERENCES archs(id),
    device_ref   INTEGER NOT NULL REFERENCES devices(id),
    batch        INTEGER NOT NULL,
    input_shape  TEXT NOT NULL,
    latency_ms   REAL NOT NULL,
    statistic    TEXT NOT NULL,
    median_ms    REAL,
    mean_ms      REAL,
    std_ms       REAL,
    min_ms       REAL,
    p10_ms       REAL,
    p90_ms       REAL,
    cv           REAL,
    robust_cv    REAL,
    round_cv     REAL,
    reference_ms REAL,
    block_calls  INTEGER,
    n_samples    INTEGER,
    rounds       INTEGER,
    warmup_iters INTEGER,
    warmup_s     REAL,
    setup_s      REAL,
    timing_s     REAL,
    precision    TEXT,
    threads      INTEGER,
    clock        TEXT,
    samples      TEXT,
    aux_samples  TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (device_ref, arch_ref, batch, input_shape)
);
"""
_TABLES = {"devices", "archs", "measurements"}

# Measurement fields copied into same-named columns.
_STAT_COLUMNS = ("median_ms", "mean_ms", "std_ms", "min_ms", "p10_ms", "p90_ms", "cv", "robust_cv",
                 "round_cv", "n_samples", "rounds", "warmup_iters", "warmup_s", "setup_s",
                 "timing_s", "precision", "threads", "clock", "reference_ms", "block_calls")
_INSERT_COLUMNS = ("arch_ref", "device_ref", "batch", "input_shape", "latency_ms", "statistic",
                   *_STAT_COLUMNS, "samples", "aux_samples", "created_at")
_INSERT_SQL = (f"INSERT OR IGNORE INTO measurements ({', '.join(_INSERT_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})")
# Imported values have no samples or statistics: a narrower insert is much faster.
_INSERT_VALUE_SQL = ("INSERT OR IGNORE INTO measurements (arch_ref, device_ref, batch, input_shape, "
                     "latency_ms, statistic, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
_FRAME_COLUMNS = ("space", "arch", "device_id", "device_label", "source", "batch", "input_shape",
                  "latency_ms", "statistic", *_STAT_COLUMNS, "created_at")
_FRAME_SELECT = ", ".join(
    {"space": "a.space", "arch": "a.arch", "device_id": "d.device_id",
     "device_label": "d.label", "source": "d.source"}.get(c, f"m.{c}") for c in _FRAME_COLUMNS)
_FRAME_FROM = ("measurements m JOIN archs a ON a.id = m.arch_ref "
               "JOIN devices d ON d.id = m.device_ref")


# File systems on which SQLite's WAL shared-memory index is not shared between machines.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "lustre",
                       "gpfs", "ceph", "fuse.glusterfs", "glusterfs", "afs", "beegfs", "fuse.s3fs",
                       "fuse.gcsfuse", "fuse.rclone", "virtiofs", "vboxsf")


def filesystem_type(path: "str | os.PathLike[str]", mounts: str | None = None) -> str | None:
    """Type of the file system holding ``path`` (the longest mount point above it in
    ``/proc/mounts``, or ``mounts`` text in that format); None where unknown."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = str(Path(path).resolve())
    best, kind = -1, None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, kind = len(point), parts[2]
    return kind


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def shape_key(input_shape: "str | Sequence[int]") -> str:
    """``(3, 32, 32)`` or ``"3x32x32"`` -> ``"3x32x32"`` (the stored form)."""
    if isinstance(input_shape, str):
        parts = input_shape.lower().replace(",", "x").split("x")
        try:
            return "x".join(str(int(p)) for p in parts)
        except ValueError:
            raise StoreError(f"input shape {input_shape!r} is not of the form 3x32x32") from None
    return "x".join(str(int(d)) for d in input_shape)


def device_id_of(fingerprint: dict[str, Any]) -> str:
    """``fingerprint["id"]`` if present, else the same hash ``devices`` computes:
    SHA-256 of the canonical JSON of every field but ``id`` and ``label``, 12 hex digits."""
    if fingerprint.get("id"):
        return str(fingerprint["id"])
    body = {k: v for k, v in fingerprint.items() if k not in ("id", "label")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _as_dict(measurement: Any) -> dict[str, Any]:
    if hasattr(measurement, "to_dict"):
        return dict(measurement.to_dict())
    if isinstance(measurement, dict):
        return dict(measurement)
    raise StoreError(f"a measurement must be a dict or have to_dict(), got {type(measurement).__name__}")


def _finite(value: Any) -> Any:
    """NaN/inf become NULL so SQL aggregates and pandas agree on 'missing'."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MeasurementStore:
    """Create or open the store at ``path`` (parent folders are created).

    ``readonly=True`` opens an existing store without ever writing (for readers
    on a file they cannot write).
    """

    def __init__(self, path: "str | os.PathLike[str]", readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        created = not self.path.exists()
        existing = self._check_file()
        fs = filesystem_type(self.path.parent)
        if fs in NETWORK_FILESYSTEMS:
            log.warning("measurement store %s is on a network file system (%s): SQLite's WAL "
                        "needs every process that opens it on one machine; profile from other "
                        "machines through Ray or export/import instead (docs/shared-store.md)",
                        self.path, fs)
        self._conn = self._connect()
        try:
            if existing:
                self._check_schema()
            if not readonly:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                if not existing or not self._has_tables():
                    self._create_schema()
        except sqlite3.Error as error:
            self._abandon(created)
            raise StoreError(f"cannot open measurement store {self.path}: "
                             f"{sqlite_reason(error)}") from None
        except StoreError:
            self._abandon(created)
            raise

    def _abandon(self, created: bool) -> None:
        """Close after a failed open; a file this open created (e.g. on a full disk) is
        removed, so a failure leaves the folder as it was."""
        self._conn.close()
        if created:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    Path(f"{self.path}{suffix}").unlink()

    # ---- opening ----------------------------------------------------------------------
    def _check_file(self) -> bool:
        """Refuse unusable paths before SQLite touches them; True if a database exists."""
        if self.path.is_dir():
            raise StoreError(f"measurement store {self.path} is a directory, not a file")
        if not self.path.exists():
            if self.readonly:
                raise StoreError(f"measurement store {self.path} does not exist")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"cannot create the folder for measurement store {self.path}: "
                                 f"{error.strerror or error}") from None
            if not os.access(self.path.parent, os.W_OK):
                raise StoreError(f"cannot create measurement store {self.path}: "
                                 f"folder {self.path.parent} is not writable")
            self._check_free()
            return False
        try:
            with open(self.path, "rb") as fh:
                header = fh.read(len(_SQLITE_HEADER))
        except OSError as error:
            raise StoreError(f"cannot read measurement store {self.path}: "
                             f"{error.strerror or error}") from None
        if not header:
            if not self.readonly:
                self._check_free()
            return False  # an empty file: a new store
        if header != _SQLITE_HEADER:
            raise StoreError(f"{self.path} is not an SQLite file, so not a measurement store; "
                             f"it was left untouched")
        if not self.readonly and not os.access(self.path, os.W_OK):
            raise StoreError(f"measurement store {self.path} is not writable")
        if not self.readonly:
            self._check_free()
        return True

    def _check_free(self) -> None:
        """A writer on a (nearly) full disk is refused before SQLite creates its journal
        files: it could not commit a row, and would fail with "disk I/O error"."""
        free = free_bytes(self.path.parent)
        if free is not None and free < MIN_FREE_BYTES:
            raise StoreError(f"cannot write to measurement store {self.path}: the disk is full "
                             f"({free:,} bytes free, at least {MIN_FREE_BYTES:,} needed)")

    def _connect(self) -> sqlite3.Connection:
        mode = "ro" if self.readonly else "rwc"
        uri = f"{self.path.resolve().as_uri()}?mode={mode}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as error:
            raise StoreError(f"cannot open measurement store {self.path}: "
                             f"{sqlite_reason(error)}") from None
        return conn

    def _has_tables(self) -> bool:
        names = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return _TABLES <= names

    def _check_schema(self) -> None:
        try:
            app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            tables = sorted(r[0] for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"))
        except sqlite3.DatabaseError as error:
            if sqlite_meaning(error) is not None:  # the machine's problem, not the file's
                raise StoreError(f"cannot open measurement store {self.path}: "
                                 f"{sqlite_reason(error)}; it was left untouched") from None
            raise StoreError(f"{self.path} is not a readable SQLite database ({error}); "
                             f"it was left untouched") from None
        if app_id == 0 and not tables:
            return  # a blank SQLite database: safe to initialise
        if app_id != APPLICATION_ID:
            raise StoreError(f"{self.path} is an SQLite database but not an hwnas measurement store "
                             f"(tables: {', '.join(tables) or 'none'}); it was left untouched")
        if version in (1, 2) and not self.readonly and _TABLES <= set(tables):
            self._migrate(version)
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise StoreError(f"measurement store {self.path} has schema version {version}, this hwnas "
                             f"reads version {SCHEMA_VERSION}; it was left untouched")
        if not _TABLES <= set(tables):
            raise StoreError(f"measurement store {self.path} lacks its tables (found: "
                             f"{', '.join(tables) or 'none'}); it was left untouched")

    def _migrate(self, version: int) -> None:
        """Version 1 lacks ``reference_ms`` and ``block_calls``, version 2 ``block_calls``
        (rows timed call by call, i.e. blocks of 1): add the columns in one transaction;
        every stored row is kept as it was."""
        added = (["ALTER TABLE measurements ADD COLUMN reference_ms REAL;"] if version == 1 else []) \
            + ["ALTER TABLE measurements ADD COLUMN block_calls INTEGER;"]
        try:
            self._conn.executescript(
                "BEGIN IMMEDIATE;" + "".join(added)
                + (" UPDATE measurements SET block_calls = 1 WHERE n_samples IS NOT NULL;")
                + f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
        except sqlite3.Error:
            self._rollback()
            raise

    def _create_schema(self) -> None:
        """Tables and the identifying pragmas in one transaction (a script, because
        ``executescript`` would commit a transaction opened outside it)."""
        try:
            self._conn.executescript(
                "BEGIN IMMEDIATE;" + _SCHEMA + f"PRAGMA application_id={APPLICATION_ID};"
                f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
        except sqlite3.Error:
            self._rollback()
            raise

    # ---- transactions -----------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed on success, rolled back on any error.

        Any SQLite failure (a full disk, a read-only file) is a :class:`StoreError`
        sentence, and the store keeps exactly what it held before. SQLite rolls some
        failed transactions back itself (SQLITE_FULL does), so the rollback here only
        runs while a transaction is still open.
        """
        if self.readonly:
            raise StoreError(f"measurement store {self.path} was opened read-only")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StoreError(f"cannot write to measurement store {self.path}: "
                             f"{sqlite_reason(error)}") from None
        try:
            yield self._conn
        except sqlite3.Error as error:
            self._rollback()
            raise StoreError(f"cannot write to measurement store {self.path}: "
                             f"{sqlite_reason(error)}; nothing of this batch was stored") from None
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback()
            raise StoreError(f"cannot commit to measurement store {self.path}: "
                             f"{sqlite_reason(error)}; nothing of this batch was stored") from None

    def _rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already done so."""
        if not self._conn.in_transaction:
            return
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error as error:  # the connection is unusable; SQLite keeps the file whole
            log.warning("rollback on measurement store %s failed: %s", self.path, error)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"cannot read measurement store {self.path}: "
                             f"{sqlite_reason(error)}") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "MeasurementStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MeasurementStore {self.path}>"

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

    def merge(self, path: "str | os.PathLike[str]") -> dict[str, int]:
        """Copy every measurement of another hwnas store file into this one, in one
        transaction, keeping device ids, fingerprints, statistics and samples; rows already
        here are kept as they are. Returns ``{device label: rows newly stored}``."""
        source = Path(path)
        if source.resolve() == self.path.resolve():
            raise StoreError(f"cannot import measurement store {source} into itself")
        MeasurementStore(source, readonly=True).close()  # an hwnas store of this schema, or one sentence
        columns = ("batch", "input_shape", "latency_ms", "statistic", *_STAT_COLUMNS, "samples",
                   "aux_samples", "created_at")
        insert = (f"INSERT OR IGNORE INTO measurements (arch_ref, device_ref, {', '.join(columns)}) "
                  f"SELECT a.id, d.id, {', '.join('m.' + c for c in columns)} "
                  f"FROM src.measurements m JOIN src.archs sa ON sa.id = m.arch_ref "
                  f"JOIN main.archs a ON a.space = sa.space AND a.arch = sa.arch "
                  f"JOIN src.devices sd ON sd.id = m.device_ref "
                  f"JOIN main.devices d ON d.device_id = sd.device_id "
                  f"WHERE sd.device_id = ? ORDER BY m.id")
        try:
            self._conn.execute("ATTACH DATABASE ? AS src", (f"{source.resolve().as_uri()}?mode=ro",))
        except sqlite3.Error as error:
            raise StoreError(f"cannot read measurement store {source}: {error}") from None
        counts: dict[str, int] = {}
        try:
            with self._write() as conn:
                conn.execute("INSERT OR IGNORE INTO devices (device_id, label, source, fingerprint, "
                             "created_at) SELECT device_id, label, source, fingerprint, created_at "
                             "FROM src.devices")
                conn.execute("INSERT OR IGNORE INTO archs (space, arch) SELECT space, arch "
                             "FROM src.archs ORDER BY id")
                for device_id, label in conn.execute(
                        "SELECT device_id, label FROM src.devices ORDER BY label").fetchall():
                    before = conn.total_changes
                    conn.execute(insert, (device_id,))
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


def drift_corrected(frame: pd.DataFrame) -> pd.Series:
    """``latency_ms`` with the machine's drift taken out (see devices.reference): each row
    times ``first reference_ms of its device / its group's reference_ms``, i.e. every group
    is put on the scale of the device's first measured group. The anchor is the *first*
    group so that adding rows never changes the corrected value of rows already stored
    (``frame`` is oldest first). Rows measured without a reference (imports, older
    files) keep their value."""
    if frame.empty:
        return frame.get("latency_ms", pd.Series(dtype=float)).astype(float)
    ref = pd.to_numeric(frame.get("reference_ms"), errors="coerce") if "reference_ms" in frame \
        else pd.Series(np.nan, index=frame.index)
    typical = ref.groupby(frame["device_id"]).transform("first")  # first non-missing
    factor = (typical / ref).where(ref.notna() & (ref > 0), 1.0)
    return frame["latency_ms"].astype(float) * factor
