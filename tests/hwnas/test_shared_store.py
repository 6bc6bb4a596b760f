"""Several profilers, one store (docs/shared-store.md): two ``hwnas profile`` processes
writing one SQLite file at the same time lose and duplicate nothing; a second machine
starts from the first one's store through --export / --import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import spaces
from hwnas.cli import main
from latency.store import MeasurementStore

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1"]
N = 16


# Runs ``hwnas profile`` with MeasurementStore.add_many wrapped: after its first commit
# the process says so (a marker file) and waits for the other process's first commit.
# So each writer's second commit follows the other's first: the writes interleave by
# construction, whichever process the scheduler favours (a race left to the scheduler
# failed CI on 2 cores: one process wrote all its rows before the other started).
HANDSHAKE = """
import sys, time
from pathlib import Path
from latency.store import MeasurementStore
import atexit
mine, other = Path(sys.argv[1]), Path(sys.argv[2])
atexit.register(lambda: mine.touch())  # a process that ends never keeps the other waiting
original = MeasurementStore.add_many
def add_many(self, rows):
    added = original(self, rows)
    if not mine.exists():
        mine.touch()
        deadline = time.monotonic() + 240
        while not other.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the other profiler never committed its first group")
            time.sleep(0.02)
    return added
MeasurementStore.add_many = add_many
from hwnas.cli import main
raise SystemExit(main(sys.argv[3:]))
"""


def _profile(device: str, db: Path, mine: Path, other: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", HANDSHAKE, str(mine), str(other),
           "profile", "--device", device, *SMALL, "-n", str(N),
           "--seed", "3", "--group", "2", "--quick", "--db", str(db), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_two_processes_profile_into_one_new_store_at_once(tmp_path):
    db = tmp_path / "team.sqlite"  # does not exist yet: both processes race to create it
    marks = {"ort:cpu": tmp_path / "ort.first", "torch:cpu": tmp_path / "torch.first"}
    procs = {device: _profile(device, db, marks[device], marks[other])
             for device, other in (("ort:cpu", "torch:cpu"), ("torch:cpu", "ort:cpu"))}
    results = {device: proc.communicate(timeout=300) for device, proc in procs.items()}
    both = " | ".join(f"{d} (exit {p.returncode}): {results[d][1][-1500:]}" for d, p in procs.items())
    for device, proc in procs.items():
        assert proc.returncode == 0, both  # both processes' errors: one may explain the other
        assert f"{N} measured now, 0 already stored" in results[device][0]
    space = spaces.get("nb201", C=4, N=1)
    wanted = {space.to_string(a) for a in space.sample_many(N, 3)}
    with MeasurementStore(db, readonly=True) as store:
        frame = store.frame()
        devices = store.devices()
    assert len(devices) == 2 and len(frame) == 2 * N
    for prefix in ("ort:cpu/", "torch:cpu/"):
        rows = frame[frame.device_label.str.startswith(prefix)]
        assert set(rows.arch) == wanted and rows.arch.is_unique and (rows.latency_ms > 0).all()
    # the writes interleaved (frame is in commit order), as the handshake forces: each
    # process's first group is committed before either's second
    switches = int((frame.device_label != frame.device_label.shift()).sum()) - 1
    assert switches >= 2, frame.device_label.tolist()


def test_second_machine_starts_from_the_first_ones_store(tmp_path, capsys):
    """Machine A profiled a device; B imports A's store file (or its export) and has A's
    rows under A's device id, ready as transfer references."""
    first, second, third = (tmp_path / f"{name}.sqlite" for name in ("a", "b", "c"))
    assert main(["profile", "--device", "ort:cpu", *SMALL, "-n", "4", "--group", "2", "--quick",
                 "--db", str(first), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["profile", "--db", str(first), "--export", str(tmp_path / "a.csv")]) == 0
    assert "exported 4 rows to" in capsys.readouterr().out
    assert main(["profile", "--import", str(first), "--db", str(second)]) == 0
    assert "a.sqlite: 4 new rows for 1 devices" in capsys.readouterr().out
    assert main(["profile", "--import", str(tmp_path / "a.csv"), "--db", str(third)]) == 0
    assert main(["profile", "--import", str(tmp_path / "a.csv"), "--db", str(third)]) == 0
    assert "a.csv: 0 new rows for 1 devices" in capsys.readouterr().out.splitlines()[-2]
    with MeasurementStore(first, readonly=True) as a, MeasurementStore(second, readonly=True) as b, \
            MeasurementStore(third, readonly=True) as c:
        want = a.frame()[["arch", "device_id", "latency_ms", "n_samples"]]
        for other in (b, c):
            got = other.frame()[["arch", "device_id", "latency_ms", "n_samples"]]
            assert got.sort_values("arch").reset_index(drop=True).equals(
                want.sort_values("arch").reset_index(drop=True))
        assert len(b.frame(samples=True).samples.iloc[0]) == len(a.frame(samples=True).samples.iloc[0])
