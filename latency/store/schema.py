"""What makes a file an hwnas measurement store: its identifying pragmas, tables and the
SQL that reads and writes rows (one place, so the file's layout is written once)."""

from __future__ import annotations

APPLICATION_ID = 0x68774E53  # "hwNS": marks a file as an hwnas measurement store
SCHEMA_VERSION = 3  # 2: reference_ms (devices.reference); 3: block_calls; older files are migrated
_SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000


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
