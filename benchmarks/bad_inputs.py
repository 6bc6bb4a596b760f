"""Bad input, as a new user would type it, across every verb: does hwnas keep its promise?

The promise (README, "Command line"): bad input -- an unknown name, a malformed or
infeasible setting, a corrupt file, a path that cannot be written, a full disk --
prints one sentence and exits 2, with no traceback, and every file that was there
before is byte-identical afterwards (no half-written predictor, store or model, no
partial run folder). A few valid-but-unusual inputs are checked to *work* (networks
whose output ignores their input), and counts beyond a space's size to be capped
with a notice.

Each case runs ``python -m hwnas ...`` as a subprocess in its own temporary folder.
Machine failures are made real where this machine allows: as root with ``mount``, a
small tmpfs is filled up (0 bytes free, or too little for an import); otherwise, and
for failures a real disk cannot be made to produce at a chosen moment, the failure is
injected where hwnas meets the OS by a small launcher (``os.fsync`` raising ENOSPC,
``os.access`` refusing writes, the free space reported as 0, SQLite's "database or
disk is full" on every insert). Each row says which.

"Intact" compares the SHA-256 of every file under the case's folder (and its tmpfs)
before and after, so a new file or folder counts as a change too -- except SQLite's
shared-memory index (``*-shm``) and an *empty* write-ahead log (``*-wal``) that a
read-only reader of a store leaves beside it (SQLite keeps them when its last
connection is read-only); they hold no data, and a non-empty log would count.

    python benchmarks/bad_inputs.py [--only SUBSTRING] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DEGENERATE = "|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|none~2|"
SMALL_NB201 = ["--space-opt", "C=4", "--space-opt", "N=1"]
PIPELINE_SMALL = ["--initial", "8", "--holdout", "6", "--active-measurements", "6", "--active-batch", "3",
                  "--pool", "60", "--sweep", "2", "--search-epochs", "1", "--retrain-epochs", "1",
                  "--max-samples", "300", "--quick", "--no-progress"]

# Launchers that inject a machine failure, then run the CLI exactly as `python -m hwnas`.
RUN = "import runpy, sys; sys.argv = ['hwnas'] + sys.argv[1:]; runpy.run_module('hwnas', run_name='__main__')"
FAULTS = {
    "enospc": ("import errno, os\n"
               "def _full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
               "os.fsync = _full\n"),
    "readonly": ("import os\n_access = os.access\n"
                 "os.access = lambda p, m, **k: False if m & os.W_OK else _access(p, m, **k)\n"),
    "nofree": ("import shutil, types\n"
               "shutil.disk_usage = lambda p: types.SimpleNamespace(total=1, used=1, free=0)\n"),
    "sqlite_full": ("import sqlite3\nfrom latency.store import MeasurementStore\n"
                    "class _Full:\n"
                    "    def __init__(self, c): self._c = c\n"
                    "    def _check(self, sql):\n"
                    "        if sql.lstrip().upper().startswith('INSERT'):\n"
                    "            raise sqlite3.OperationalError('database or disk is full')\n"
                    "    def execute(self, sql, *a): self._check(sql); return self._c.execute(sql, *a)\n"
                    "    def executemany(self, sql, *a): self._check(sql); return self._c.executemany(sql, *a)\n"
                    "    def __getattr__(self, n): return getattr(self._c, n)\n"
                    "_connect = MeasurementStore._connect\n"
                    "MeasurementStore._connect = lambda self: _Full(_connect(self))\n"),
}


@dataclass
class Case:
    """One command and what it must do: ``error`` (exit 2, one sentence, all intact),
    ``ok`` (exit 0) or ``notice`` (a capping notice on stdout; the run is then stopped)."""

    verb: str
    name: str
    argv: Callable[["Env"], list[str]]
    expect: str = "error"
    fault: str | None = None          # a key of FAULTS
    disk: str | None = None           # "zero" / "tight": a real tmpfs for the case (else a fault)
    contains: str = ""                # the sentence must contain this
    timeout: float = 240.0


@dataclass
class Env:
    """The fixtures every case may use, built once; each case works on its own copies."""

    base: Path
    folder: Path = Path()             # the case's own folder (copies of the fixtures)
    disk_dir: Path | None = None      # the case's tmpfs, when it has one
    notes: list[str] = field(default_factory=list)

    def copy(self, name: str, into: Path | None = None) -> Path:
        source = self.base / name
        target = (into or self.folder) / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        return target


# ---- fixtures ------------------------------------------------------------------------------
def build_fixtures(base: Path) -> None:
    """A small store (synthetic NB201 latencies), a valid predictor and its plot, a finished
    tabular search run, a pipeline-run config, a valid ONNX export."""
    import numpy as np

    import spaces
    from latency.store import MeasurementStore

    nb201 = spaces.get("nb201")
    archs = nb201.sample_many(120, 0)
    rng = np.random.default_rng(0)
    cost = rng.uniform(0.1, 2.0, nb201.num_options)
    ms = 1.0 + nb201.one_hot_many(archs) @ cost
    with MeasurementStore(base / "lat.sqlite") as store:
        store.add_values({"source": "imported", "device": "ref", "label": "help:ref"},
                         [("nb201", nb201.to_string(a), 1, "3x32x32", float(v))
                          for a, v in zip(archs, ms)])
    cli(["predictor", "fit", "--db", base / "lat.sqlite", "--device", "help:ref", "--space", "nb201",
         "--kind", "lut", "-o", base / "p.pt"])
    cli(["explore", "--space", "nb201", "--device-table", "gold_6226", "--queries", "20",
         "--no-progress", "--out", base / "run"])
    cli(["export", "--space", "nb201", "--arch", NB201_ARCH, "--no-measure", "--exporter",
         "torchscript", "--untrained", "-o", base / "model.onnx"])
    from hwnas.pipeline import PipelineSettings

    settings = PipelineSettings.merged({"initial": 8, "holdout": 6, "active_measurements": 6,
                                        "active_batch": 3, "pool": 60, "sweep": 2,
                                        "search_epochs": 1, "retrain_epochs": 1,
                                        "max_samples": 300, "quick_timing": True})
    pipe = base / "pipe"
    pipe.mkdir()
    (pipe / "config.json").write_text(json.dumps(
        {"pipeline": settings.to_json(), "space": "fbnetv2:tiny", "hwnas_version": "0.1.0",
         "created": "2026-01-01T00:00:00"}, indent=2))
    (pipe / "stages.json").write_text("")  # damaged: what a resume must refuse
    (base / "degenerate.txt").write_text(DEGENERATE + "\n")
    # a SMASH checkpoint and a shared-weights one, each an evaluator refuses the other of
    tiny = ["supernet", "-q", "train", "--space", "nb201", *SMALL_NB201, "--input-size", "8",
            "--epochs", "1", "--max-samples", "80", "--batch-size", "32"]
    cli([*tiny, "--objective", "smash", "--hidden", "2", "-o", base / "smash.ckpt"])
    cli([*tiny, "--sampler", "uniform", "-o", base / "shared.ckpt"])


def cli(argv: list) -> None:
    proc = subprocess.run([sys.executable, "-m", "hwnas", *map(str, argv)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"fixture command failed: hwnas {' '.join(map(str, argv))}\n{proc.stderr}")


ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


# ---- real small disks ---------------------------------------------------------------------
def can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="hwnas-mount-"))
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


@contextlib.contextmanager
def small_disk(path: Path, size_kib: int):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of ``folder`` until about ``leave_bytes`` are free."""
    size = max(0, shutil.disk_usage(folder).free - leave_bytes)
    with open(folder / "filler", "wb", buffering=0) as handle:
        chunk = b"\0" * 4096
        while size > 0:
            try:
                size -= handle.write(chunk[: min(size, len(chunk))])
            except OSError:  # full
                break


# ---- the cases ----------------------------------------------------------------------------
def snapshot(*roots: Path | None) -> dict[str, str]:
    out = {}
    for root in roots:
        if root is None or not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            if path.name.endswith("-shm") or (path.name.endswith("-wal") and path.is_file()
                                               and path.stat().st_size == 0):
                continue  # SQLite's index and an empty log (see the module docstring)
            if path.is_symlink():
                out[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.is_dir():
                out[str(path)] = "dir"
            else:
                out[str(path)] = "special"
    return out


def special(env: Env, kind: str, name: str) -> Path:
    target = env.folder / name
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dev_full":
        target.symlink_to("/dev/full")
    return target


def f(env: Env, name: str) -> str:
    return str(env.folder / name)


def cases() -> list[Case]:
    c = []
    add = c.append
    # spaces
    add(Case("spaces", "unknown space", lambda e: ["spaces", "nope"], contains="unknown space"))
    add(Case("spaces", "--sample 0", lambda e: ["spaces", "nb201", "--sample", "0"]))
    add(Case("spaces", "--sample 10^12 on fbnet", lambda e: ["spaces", "fbnet", "--sample",
                                                             "1000000000000"],
             contains="more than any run could finish"))
    add(Case("spaces", "--input-size 0", lambda e: ["spaces", "nb201", "--input-size", "0"]))
    # devices
    add(Case("devices", "--threads 0", lambda e: ["devices", "--threads", "0"]))
    # profile
    add(Case("profile", "unknown device", lambda e: ["profile", "--device", "tpu", "--space",
                                                     "nb201", "-n", "3", "--db", f(e, "l.sqlite")]))
    add(Case("profile", "-n 10^12 on fbnet (refused before sampling)",
             lambda e: ["profile", "--device", "ort:cpu", "--space", "fbnet", "-n",
                        "1000000000000", "--db", f(e, "l.sqlite")],
             contains="more than any run could finish"))
    add(Case("profile", "-n 10^12 on nb201 (capped to 15,625)",
             lambda e: ["profile", "--device", "ort:cpu", "--space", "nb201", "-n",
                        "1000000000000", "--db", f(e, "l.sqlite"), "--quick", "--no-progress"],
             expect="notice", contains="taking all 15,625"))
    add(Case("profile", "--db is not SQLite", lambda e: [
        "profile", "--device", "ort:cpu", "--space", "nb201", "-n", "2",
        "--db", (Path(f(e, "notes.sqlite")).write_text("my notes\n"), f(e, "notes.sqlite"))[1]],
        contains="not an SQLite file"))
    add(Case("profile", "--db is a folder", lambda e: [
        "profile", "--device", "ort:cpu", "--space", "nb201", "-n", "2", "--db", str(e.folder)]))
    add(Case("profile", "--input-size 0", lambda e: ["profile", "--device", "ort:cpu", "--space",
                                                "nb201", "-n", "2", "--input-size", "0",
                                                "--db", f(e, "l.sqlite")]))
    add(Case("profile", "--threads 0", lambda e: ["profile", "--device", "ort:cpu", "--space",
                                                  "nb201", "-n", "2", "--threads", "0",
                                                  "--db", f(e, "l.sqlite")]))
    add(Case("profile", "--export-table to /dev/full (checked before measuring)", lambda e: [
        "profile", "--device", "ort:cpu", "--space", "nb201", *SMALL_NB201, "-n", "2",
        "--db", str(e.copy("lat.sqlite")), "--export-table", str(special(e, "dev_full", "out.csv"))],
        contains="not a regular file"))
    add(Case("profile", "full disk: existing store", lambda e: [
        "profile", "--device", "ort:cpu", "--space", "nb201", *SMALL_NB201, "-n", "2", "--quick",
        "--db", str(e.disk_dir / "lat.sqlite")], disk="zero", fault="nofree",
        contains="disk is full"))
    add(Case("profile", "full disk mid-write: --import", lambda e: [
        "profile", "--import", str(data_table()), "--db", str(e.disk_dir / "lat.sqlite")],
        disk="tight", fault="sqlite_full", contains="disk is full"))
    add(Case("profile", "full disk mid-write: measuring", lambda e: [
        "profile", "--device", "ort:cpu", "--space", "nb201", *SMALL_NB201, "-n", "2", "--quick",
        "--no-progress", "--db", str(e.copy("lat.sqlite"))], fault="sqlite_full",
        contains="disk is full"))
    add(Case("profile", "--archs with a bad line", lambda e: [
        "profile", "--device", "ort:cpu", "--space", "nb201", "--db", f(e, "l.sqlite"), "--archs",
        (Path(f(e, "a.txt")).write_text("|bogus~0|\n"), f(e, "a.txt"))[1]], contains="line 1"))
    add(Case("profile", "degenerate NB201 cells on ort:cpu (must work)", lambda e: [
        "profile", "--device", "ort:cpu", "--space", "nb201", *SMALL_NB201, "--archs",
        str(e.copy("degenerate.txt")), "--quick", "--no-progress", "--db", f(e, "l.sqlite")],
        expect="ok"))
    # predictor
    fit = ["predictor", "fit", "--device", "help:ref", "--space", "nb201", "--kind", "lut"]
    add(Case("predictor", "fit -o over a valid file, disk full at write", lambda e: [
        *fit, "--db", str(e.copy("lat.sqlite")), "-o", str(e.copy("p.pt")), "--seed", "1"],
        fault="enospc", contains="No space left"))
    add(Case("predictor", "fit -o, disk full (checked before the fit)", lambda e: [
        *fit, "--db", str(e.copy("lat.sqlite")), "-o", str(e.disk_dir / "p.pt")],
        disk="zero", fault="nofree", contains="free"))
    add(Case("predictor", "fit -o into a read-only folder (before the fit)", lambda e: [
        *fit, "--db", str(e.base / "lat.sqlite"), "-o", f(e, "p.pt")], fault="readonly",
        contains="not writable"))
    add(Case("predictor", "fit -o a FIFO", lambda e: [
        *fit, "--db", str(e.copy("lat.sqlite")), "-o", str(special(e, "fifo", "p.pt"))]))
    add(Case("predictor", "fit -o /proc/x.pt", lambda e: [
        *fit, "--db", str(e.copy("lat.sqlite")), "-o", "/proc/x.pt"]))
    add(Case("predictor", "fit --db missing", lambda e: [*fit, "--db", f(e, "none.sqlite"),
                                                         "-o", f(e, "p.pt")]))
    add(Case("predictor", "fit --train-size 0", lambda e: [
        *fit, "--db", str(e.copy("lat.sqlite")), "-o", f(e, "p.pt"), "--train-size", "0"]))
    add(Case("predictor", "eval --plot /proc/x.png", lambda e: [
        "predictor", "eval", str(e.copy("p.pt")), "--db", str(e.copy("lat.sqlite")),
        "--plot", "/proc/x.png"]))
    add(Case("predictor", "eval --plot a FIFO", lambda e: [
        "predictor", "eval", str(e.copy("p.pt")), "--db", str(e.copy("lat.sqlite")),
        "--plot", str(special(e, "fifo", "x.png"))]))
    add(Case("predictor", "eval a truncated predictor", lambda e: [
        "predictor", "eval", (Path(f(e, "t.pt")).write_bytes((e.base / "p.pt").read_bytes()[:200]),
                              f(e, "t.pt"))[1], "--db", str(e.copy("lat.sqlite"))],
        contains="corrupt"))
    add(Case("predictor", "predict an fbnet arch with an nb201 predictor", lambda e: [
        "predictor", "predict", str(e.copy("p.pt")), "7-8-1-8-4-8-8-8-7-4-1-4-7-3-2-7-3-2-4-2-4-5"]))
    # search, single
    tab = ["explore", "--space", "nb201", "--device-table", "gold_6226", "--queries", "20",
           "--no-progress"]
    add(Case("search", "tabular: budgets no cell meets together", lambda e: [
        *tab, "--budget", "accuracy>=94", "--budget", "latency_ms<=5", "--out", f(e, "run")],
        contains="no architecture of nb201 meets the budgets"))
    add(Case("search", "--resume with a corrupt cache.jsonl", lambda e: [
        "search", "--out", str(damage(e.copy("run"), "cache.jsonl", b"\x00\xff\n{}\n")),
        "--resume", "--queries", "30", "--no-progress"], contains="cache.jsonl"))
    add(Case("search", "--resume with an empty config.json", lambda e: [
        "search", "--out", str(damage(e.copy("run"), "config.json", b"")), "--resume",
        "--no-progress"], contains="config.json is empty"))
    add(Case("search", "--resume with an empty history.csv", lambda e: [
        "search", "--out", str(damage(e.copy("run"), "history.csv", b"")), "--resume",
        "--queries", "30", "--no-progress"], contains="history.csv is empty"))
    add(Case("search", "--queries 0", lambda e: [*tab, "--queries", "0", "--out", f(e, "run")]))
    # controllers (issue 30)
    add(Case("search", "rl --memory-buffer 0", lambda e: [
        *tab, "--strategy", "rl", "--memory-buffer", "0", "--out", f(e, "run")]))
    add(Case("search", "rl --entropy-weight -1", lambda e: [
        *tab, "--strategy", "rl", "--entropy-weight", "-1", "--out", f(e, "run")]))
    add(Case("search", "rl --reward that does not exist", lambda e: [
        *tab, "--strategy", "rl", "--reward", "nope", "--out", f(e, "run")], contains="unknown reward"))
    add(Case("search", "enas without a supernet", lambda e: [
        *tab, "--strategy", "enas", "--out", f(e, "run")], contains="--evaluator oneshot"))
    add(Case("search", "evolution --memory-buffer 5", lambda e: [
        *tab, "--strategy", "evolution", "--memory-buffer", "5", "--out", f(e, "run")]))
    add(Case("supernet", "train --sampler uniform --memory-buffer 5", lambda e: [
        "supernet", "train", "--space", "nb201", "--sampler", "uniform", "--memory-buffer", "5",
        "-o", f(e, "s.ckpt")], contains="has no controller"))
    add(Case("search", "--seed -1", lambda e: [*tab, "--seed", "-1", "--out", f(e, "run")]))
    # SMASH (hwnas.oneshot.smash): a hypernetwork's checkpoint and the evaluators that read it
    smash_train = ["supernet", "train", "--space", "nb201", *SMALL_NB201, "--objective", "smash"]
    one = ["explore", "--space", "nb201", *SMALL_NB201, "--input-size", "8", "--objective",
           "accuracy", "--queries", "2", "--no-progress"]
    add(Case("supernet", "train --objective smash --sampler sandwich", lambda e: [
        *smash_train, "--sampler", "sandwich", "-o", f(e, "s.ckpt")], contains="leave --sampler out"))
    add(Case("supernet", "train --objective smash on a space without smash (fbnet)", lambda e: [
        "supernet", "train", "--space", "fbnet", "--objective", "smash", "-o", f(e, "s.ckpt")],
        contains="no SMASH hypernetwork"))
    add(Case("supernet", "train --hidden 4 without --objective smash", lambda e: [
        "supernet", "train", "--space", "nb201", "--hidden", "4", "-o", f(e, "s.ckpt")],
        contains="--objective smash"))
    add(Case("supernet", "train --objective smash --hidden 0", lambda e: [
        *smash_train, "--hidden", "0", "-o", f(e, "s.ckpt")], contains="--hidden"))
    add(Case("search", "--evaluator smash without --supernet-ckpt", lambda e: [
        *one, "--evaluator", "smash", "--out", f(e, "run")], contains="--supernet-ckpt"))
    add(Case("search", "--evaluator smash with a shared-weights checkpoint", lambda e: [
        *one, "--evaluator", "smash", "--supernet-ckpt", str(e.copy("shared.ckpt")),
        "--out", f(e, "run")], contains="--evaluator oneshot"))
    add(Case("search", "--evaluator oneshot with a smash checkpoint", lambda e: [
        *one, "--evaluator", "oneshot", "--supernet-ckpt", str(e.copy("smash.ckpt")),
        "--out", f(e, "run")], contains="--evaluator smash"))
    # InstaNAS (--strategy instanas): the controller's settings, checked before any folder
    insta = ["search", "--space", "nb201", *SMALL_NB201, "--input-size", "8", "--no-progress"]
    add(Case("search", "--strategy instanas --paths 1", lambda e: [
        *insta, "--strategy", "instanas", "--paths", "1", "--out", f(e, "run")],
        contains="--paths is the number of architectures"))
    add(Case("search", "--paths with the oneshot engine", lambda e: [
        *insta, "--strategy", "oneshot", "--paths", "3", "--out", f(e, "run")],
        contains="go with --strategy instanas"))
    add(Case("search", "full disk: no partial run folder", lambda e: [
        *tab, "--out", str(e.disk_dir / "run")], disk="zero", fault="nofree", contains="free"))
    add(Case("search", "disk full at the first write: no partial run folder", lambda e: [
        *tab, "--out", f(e, "run")], fault="enospc", contains="No space left"))
    # search, pipeline
    add(Case("search", "pipeline: latency_ms<=0.000001", lambda e: [
        "search", *PIPELINE_SMALL, "--budget", "latency_ms<=0.000001", "--out", f(e, "run")],
        contains="below anything"))
    add(Case("search", "pipeline: macs<=1", lambda e: [
        "search", *PIPELINE_SMALL, "--budget", "macs<=1", "--out", f(e, "run")],
        contains="below anything"))
    add(Case("search", "pipeline: corrupt --predictor", lambda e: [
        "search", *PIPELINE_SMALL, "--predictor",
        (Path(f(e, "c.pt")).write_bytes(b"PK\x03\x04 torn"), f(e, "c.pt"))[1], "--out", f(e, "run")],
        contains="corrupt"))
    add(Case("search", "pipeline: --predictor of another space", lambda e: [
        "search", *PIPELINE_SMALL, "--predictor", str(e.copy("p.pt")), "--out", f(e, "run")]))
    add(Case("search", "pipeline: --initial 0", lambda e: [
        "search", *PIPELINE_SMALL, "--initial", "0", "--out", f(e, "run")]))
    add(Case("search", "pipeline: --resume with a damaged stages.json", lambda e: [
        "search", "--out", str(e.copy("pipe")), "--resume", "--no-progress"],
        contains="stages.json"))
    add(Case("search", "pipeline: full disk, no run folder", lambda e: [
        "search", *PIPELINE_SMALL, "--out", str(e.disk_dir / "run")], disk="zero", fault="nofree",
        contains="free"))
    # pareto
    add(Case("pareto", "empty history.csv", lambda e: [
        "pareto", str(damage(e.copy("run"), "history.csv", b""))], contains="history.csv is empty"))
    add(Case("pareto", "history.csv with words for numbers", lambda e: [
        "pareto", str(damage(e.copy("run"), "history.csv",
                             b"arch,accuracy,latency_ms\nx,high,1\n"))], contains="numbers"))
    add(Case("pareto", "--plot /proc/x.png", lambda e: [
        "pareto", str(e.copy("run")), "--plot", "/proc/x.png"]))
    add(Case("pareto", "not a run folder", lambda e: ["pareto", str(e.folder)]))
    add(Case("pareto", "disk full while writing the plot", lambda e: [
        "pareto", str(e.copy("run"))], fault="enospc", contains="No space left"))
    # export
    ex = ["export", "--space", "nb201", "--arch", NB201_ARCH, "--no-measure", "--exporter",
          "torchscript", "--untrained"]
    add(Case("export", "-o a link to /dev/full", lambda e: [
        *ex, "-o", str(special(e, "dev_full", "m.onnx"))], contains="not a regular file"))
    add(Case("export", "-o /proc/x.onnx", lambda e: [*ex, "-o", "/proc/x.onnx"]))
    add(Case("export", "-o into a missing folder", lambda e: [*ex, "-o", f(e, "no/such/m.onnx")]))
    add(Case("export", "--num-classes -1", lambda e: [*ex, "--num-classes", "-1", "-o", f(e, "m.onnx")]))
    add(Case("export", "--input-size 0", lambda e: [*ex, "--input-size", "0", "-o", f(e, "m.onnx")]))
    add(Case("export", "--inspect a 0-byte file", lambda e: [
        "export", "--inspect", (Path(f(e, "z.onnx")).write_bytes(b""), f(e, "z.onnx"))[1]]))
    add(Case("export", "-o over a valid file, disk full at write", lambda e: [
        *ex, "-o", str(e.copy("model.onnx")), "--seed", "2"], fault="enospc",
        contains="No space left"))
    add(Case("export", "--pick on a run whose pareto.csv is empty", lambda e: [
        "export", str(damage(e.copy("run"), "pareto.csv", b"")), "--pick", "0", "--no-measure"],
        contains="pareto.csv is empty"))
    add(Case("export", "degenerate NB201 cell, measured on ort:cpu (must work)", lambda e: [
        "export", "--space", "nb201", "--arch", DEGENERATE, "--quick", "--untrained",
        "-o", f(e, "d.onnx")], expect="ok"))
    add(Case("export", "random weights without --untrained", lambda e: [
        "export", "--space", "nb201", "--arch", NB201_ARCH, "--no-measure", "-o", f(e, "r.onnx")],
        contains="no trained weights"))
    add(Case("export", "--int8 without calibration images", lambda e: [
        *ex, "--int8", "-o", f(e, "i.onnx")], contains="calibration images"))
    add(Case("export", "--pick out of range on a pipeline-less run", lambda e: [
        "export", str(e.copy("run")), "--pick", "99", "--no-measure", "--untrained"],
        contains="out of range"))
    return c


def damage(folder: Path, name: str, content: bytes) -> Path:
    (folder / name).write_bytes(content)
    return folder


def data_table() -> Path:
    from latency.shared_data import HELP_NB201_LATENCY, data_file

    return data_file(HELP_NB201_LATENCY)


# ---- running ------------------------------------------------------------------------------
@dataclass
class Result:
    case: Case
    code: int | None
    first: str
    traceback: bool
    intact: bool | None
    passed: bool
    how: str
    seconds: float


def run_case(case: Case, env: Env, mountable: bool) -> Result:
    env.disk_dir = None
    with contextlib.ExitStack() as stack:
        fault = case.fault
        how = "real"
        if case.disk:
            if mountable:
                env.disk_dir = stack.enter_context(small_disk(env.folder / "disk",
                                                              512 if case.disk == "zero" else 3072))
                for name in ("lat.sqlite", "p.pt"):  # what was there before the disk filled up
                    shutil.copy2(env.base / name, env.disk_dir / name)
                fill(env.disk_dir, 0 if case.disk == "zero" else 1_400_000)
                fault = None
                how = f"tmpfs, {shutil.disk_usage(env.disk_dir).free:,} B free"
            else:
                env.disk_dir = env.folder / "disk"
                env.disk_dir.mkdir()
                for name in ("lat.sqlite", "p.pt"):
                    shutil.copy2(env.base / name, env.disk_dir / name)
        if fault:
            how = f"injected: {fault}"
        argv = case.argv(env)
        before = snapshot(env.folder)
        cmd = ([sys.executable, "-c", FAULTS[fault] + RUN] if fault
               else [sys.executable, "-m", "hwnas"]) + [str(a) for a in argv]
        start = time.perf_counter()
        if case.expect == "notice":
            code, out, err = _until_notice(cmd, case, env.folder)
        else:
            try:
                proc = subprocess.run(cmd, cwd=env.folder, env=ENV, capture_output=True, text=True,
                                      timeout=case.timeout)
                code, out, err = proc.returncode, proc.stdout, proc.stderr
            except subprocess.TimeoutExpired as timeout:
                code, out, err = None, str(timeout.stdout or ""), f"timed out after {case.timeout} s"
        seconds = time.perf_counter() - start
        after = snapshot(env.folder)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    traceback = "Traceback" in err
    if case.expect == "error":
        intact = before == after
        passed = (code == 2 and len(lines) == 1 and first.startswith("hwnas: error: ")
                  and not traceback and intact and case.contains in first)
    elif case.expect == "ok":
        intact = None
        passed = code == 0 and not traceback
        first = first or (out.strip().splitlines() or [""])[-1]
    else:
        intact = None
        notice = [line for line in out.splitlines() if case.contains in line]
        passed = bool(notice) and not traceback
        first = notice[0] if notice else first
    return Result(case, code, first, traceback, intact, passed, how, seconds)


def _until_notice(cmd: list[str], case: Case, cwd: Path) -> tuple[int | None, str, str]:
    """Run until the capping notice is printed (the run itself would take hours), then stop."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out = []
    deadline = time.monotonic() + case.timeout
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            out.append(line)
            if case.contains in line or time.monotonic() > deadline:
                break
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    return proc.returncode, "".join(out), err or ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    mountable = can_mount()
    top = Path(tempfile.mkdtemp(prefix="hwnas-bad-inputs-"))
    try:
        base = top / "fixtures"
        base.mkdir()
        t0 = time.perf_counter()
        build_fixtures(base)
        print(f"fixtures built in {time.perf_counter() - t0:.0f} s in {base}; full disks: "
              f"{'real tmpfs (root, mount)' if mountable else 'injected (no mount here)'}; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        selected = [c for c in cases() if not args.only or args.only in c.name or args.only == c.verb]
        results = []
        for i, case in enumerate(selected, 1):
            env = Env(base)
            env.folder = top / f"case{i:02d}"
            env.folder.mkdir()
            result = run_case(case, env, mountable)
            results.append(result)
            mark = "pass" if result.passed else "FAIL"
            print(f"[{i:2d}/{len(selected)}] {mark} {case.verb}: {case.name} ({result.seconds:.1f} s)",
                  flush=True)
        print()
        table(results, top)
        passed = sum(r.passed for r in results)
        verbs = sorted({r.case.verb for r in results})
        print(f"\n{passed} of {len(results)} cases pass ({len(verbs)} verbs: {', '.join(verbs)}); "
              f"total {sum(r.seconds for r in results):.0f} s")
        return 0 if passed == len(results) else 1
    finally:
        if args.keep:
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


def table(results: list[Result], top: Path) -> None:
    rows = [("#", "verb", "case", "exit", "first stderr line (or the notice / last line); TMP = the "
             "case's temporary folder", "traceback", "intact", "failure made", "result")]
    for i, r in enumerate(results, 1):
        first = r.first.replace(str(top), "TMP")
        first = first if len(first) <= 150 else first[:147] + "..."
        intact = "n/a" if r.intact is None else ("yes" if r.intact else "NO")
        rows.append((str(i), r.case.verb, r.case.name, str(r.code), first,
                     "YES" if r.traceback else "no", intact, r.how, "pass" if r.passed else "FAIL"))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
