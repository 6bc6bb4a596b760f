"""Regenerate ``nb201_index.npy``, the official NAS-Bench-201 index order.

The benchmark numbers its 15,625 cells in the order its authors enumerated and
trained them; that order is not a formula of the cell (it looks shuffled), so it
is shipped as a table. Row k of NATS-Bench's topology table (column
``ArchitectureString`` of ``nas-bench-201/nats_bench.csv`` in the shared data) is
index k; the same order is used by HW-NAS-Bench and HELP.

The file holds one ``uint16`` per index: the cell's base-5 code, the first decision
(edge 1<-0) as the most significant digit (see ``spaces.nb201.encode``). 31 kB,
read with ``allow_pickle=False``.

Usage: ``python spaces/data/make_nb201_index.py PATH/TO/nats_bench.csv``
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("nb201_index.npy")


def build_index_table(csv_path: str | Path) -> np.ndarray:
    """Codes of the cells in table order; checks that every cell appears exactly once."""
    from spaces.nb201 import NB201Space, encode

    space = NB201Space()
    with open(csv_path, newline="") as handle:
        codes = [encode(space.from_string(row["ArchitectureString"]).choices)
                 for row in csv.DictReader(handle)]
    table = np.asarray(codes, dtype=np.uint16)
    if sorted(codes) != list(range(space.size)):
        raise SystemExit(f"{csv_path}: expected each of the {space.size} cells exactly once")
    return table


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    from spaces.core import atomic_write

    table = build_index_table(argv[0])
    atomic_write(OUT, lambda handle: np.save(handle, table, allow_pickle=False))
    logging.getLogger(__name__).warning("wrote %s (%d bytes, %d cells)", OUT, OUT.stat().st_size,
                                        len(table))


if __name__ == "__main__":
    main(sys.argv[1:])
