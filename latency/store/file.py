"""The store's SQLite file: opening, identifying, migrating, transactions.

Opening never changes a file that is not already an hwnas store: a file that is
not SQLite, or an SQLite database with other tables, is refused with
:class:`StoreError` before anything is written. Several processes on one machine may
write one store at once (each transaction is ``BEGIN IMMEDIATE`` with a 30 s busy
timeout); several machines must not (see :mod:`latency.store`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from latency.store.errors import (NETWORK_FILESYSTEMS, StoreError, filesystem_type, sqlite_meaning,
                                  sqlite_reason)
from latency.store.schema import (APPLICATION_ID, BUSY_TIMEOUT_MS, SCHEMA_VERSION, _SCHEMA,
                                  _SQLITE_HEADER, _TABLES)
from spaces.core import free_bytes

log = logging.getLogger("latency.store")


# What one WAL commit of a few rows needs on disk: SQLite's -shm index (32 KiB) and a
# handful of 4 KiB pages in the -wal file; below this a write fails with "disk I/O error".
STORE_ROOM_BYTES = 64 * 1024


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the store's folder while a writer opens the store.

    Only opening is serialised (a few milliseconds); writes are SQLite's business. The
    folder, not the file, is locked because the file may not exist yet and a failed
    creation removes it. Where ``flock`` is unavailable (Windows, some network file
    systems) opening goes on unlocked, as before."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)  # a failure is reported by _check_file
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            log.debug("no lock on %s (%s): opening the store unlocked", folder, error)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class StoreFile:
    """The SQLite file behind a store: opened (or created) only if it is an hwnas store,
    checked, migrated, and written in transactions that keep it whole on any failure.

    ``readonly=True`` opens an existing store without ever writing (for readers
    on a file they cannot write).
    """

    def __init__(self, path: "str | os.PathLike[str]", readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            self._open()
        else:
            with _folder_lock(self.path.parent):
                self._open()

    def _open(self) -> None:
        """Check, connect, and (a writer) switch to WAL and create the tables.

        Writers run this under :func:`_folder_lock`: two processes creating one new store
        at once otherwise collide in SQLite's switch to WAL ("database is locked", no busy
        wait), and the loser's clean-up deleted the file the winner was using (measured:
        109 failures in 150 simultaneous creations)."""
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
            if not self.readonly:
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
        if free is not None and free < STORE_ROOM_BYTES:
            raise StoreError(f"cannot write to measurement store {self.path}: the disk is full "
                             f"({free:,} bytes free; a commit needs {STORE_ROOM_BYTES:,}: the "
                             f"32 KiB shared-memory index and a few 4 KiB pages of write-ahead log)")

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

    def __enter__(self) -> "StoreFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"
