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


from latency.store.drift import drift_corrected
from latency.store.errors import (NETWORK_FILESYSTEMS, StoreError, filesystem_type, sqlite_meaning,
                                  sqlite_reason)
from latency.store.measurements import MeasurementStore
from latency.store.rows import device_id_of, shape_key
from latency.store.schema import APPLICATION_ID, SCHEMA_VERSION

__all__ = ["APPLICATION_ID", "MeasurementStore", "NETWORK_FILESYSTEMS", "SCHEMA_VERSION",
           "StoreError", "device_id_of", "drift_corrected", "filesystem_type", "shape_key",
           "sqlite_meaning", "sqlite_reason"]
