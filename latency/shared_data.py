"""Where the benchmark tables live (measured latencies, NAS-Bench-201 accuracies).

Nothing is downloaded at run time: the tables are read from ``$HWNAS_DATA_DIR``
or, by default, from ``shared/data`` beside the repository checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from spaces.core.errors import NotFound


DataNotFound = NotFound  # A benchmark table the user asked for is not on this machine.


def data_dir() -> Path:
    env = os.environ.get("HWNAS_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def data_file(relative: str) -> Path:
    """Path of a table under the data folder; DataNotFound (one sentence) if absent."""
    path = data_dir() / relative
    if not path.is_file():
        raise DataNotFound(f"benchmark table {path} not found; set HWNAS_DATA_DIR to the folder "
                           f"holding help-latency/ and nas-bench-201/")
    return path


NB201_ACCURACY = "nas-bench-201/nats_bench.csv"
HELP_NB201_LATENCY = "help-latency/nasbench201_latency.csv"
HELP_FBNET_LATENCY = "help-latency/fbnet_latency.csv"
