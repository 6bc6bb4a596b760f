"""A new device in 10-20 measurements: with public references, or after another device.

**Public references** (``--case public``): a fresh store gets HELP's latency table of the
space (``hwnas profile --import TABLE --space S``: 17 or 18 devices measured by others),
then ``hwnas search --space S --input-size 32 --device ort:cpu --db STORE`` for fbnet and
for nb201. Printed per space: the measurements spent on the new device (training set +
active profiling; target <= 20), the kept predictor's held-out share within +-10% (target
>= 90%) and Spearman beside a plain MLP ensemble fitted on exactly the same
measurements, and the wall time. The search itself runs light (``--strategy nao
--queries 4 --epochs 1``): this case measures the latency side; the accuracy side is
``oneshot_pipeline.py``'s.

**Two local devices** (``--case local``, the part below; ``--case both`` runs both):

Runs ``hwnas search`` (the embedded default) on ``--first`` (ort:cpu) into a store,
then on ``--second`` (torch:cpu) with the same ``--db``: the second run finds the first
device's measurements, draws its first 15 measurements from them, fits the transfer
predictor beside the plain MLP ensemble and keeps the better (stage 2).

Prints for the second device: the measurements it spent (training set, active
profiling, the held-out set), held-out Spearman and share within +-10% of the kept
predictor and of a plain MLP ensemble fitted here on *exactly the same* training
measurements, and the run's audit (budget, predicted, measured, meets). Target: >= 90%
of held-out within +-10% with <= 20 training measurements, where the plain ensemble
given the same ones does not get there. The machine's load is printed beside the
timings.

    python benchmarks/second_device.py                       # both cases
    python benchmarks/second_device.py --case public --spaces fbnet nb201
    python benchmarks/second_device.py --case local --first ort:cpu --second torch:cpu --out /tmp/two
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(out: Path, device: str, db: Path, extra: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "w") as log:
        subprocess.run([sys.executable, "-m", "hwnas", "search", "--out", str(out), "--device",
                        device, "--db", str(db), "--no-progress", *extra], check=True,
                       stdout=log, stderr=subprocess.STDOUT, env=env)
    return time.perf_counter() - start


LIGHT_SEARCH = ["--strategy", "nao", "--queries", "4", "--epochs", "1", "--retrain-epochs", "1", "--max-samples", "500",
                "--sweep", "2", "--max-rounds", "1"]
HELP_TABLES = {"fbnet": "HELP_FBNET_LATENCY", "nb201": "HELP_NB201_LATENCY"}


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def public_case(root: Path, space_names: list[str], device: str, extra: list[str]) -> list[dict]:
    """Import HELP's table of each space, then the pipeline on ``device`` at 32 px."""
    import spaces
    from latency import shared_data

    rows = []
    for name in space_names:
        folder = root / f"public-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "lat.sqlite"
        table = shared_data.data_file(getattr(shared_data, HELP_TABLES[name]))
        subprocess.run([sys.executable, "-m", "hwnas", "profile", "--import", str(table), "--space",
                        name, "--db", str(db)], check=True, capture_output=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
        print(f"\n{name}: imported {table.name}; load average {_load()}", flush=True)
        wall = run(folder / "run", device, db, ["--space", name, "--input-size", "32",
                                                *LIGHT_SEARCH, *extra])
        report = analyse(folder / "run", db, spaces.get(name))
        report.update(space=name, wall_s=wall)
        rows.append(report)
    print("\npublic references -> a new device (" + device + "), 32 px:")
    table = pd.DataFrame(rows)[["space", "references", "measurements", "kept", "kept_within10",
                                "kept_spearman", "plain_within10", "plain_spearman", "wall_s"]]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for r in rows:
        ok = r["measurements"] <= 20 and r["kept_within10"] >= 0.9
        print(f"target {r['space']} (<= 20 measurements, >= 90% of held-out within +-10%): "
              f"{'met' if ok else 'NOT met'} ({r['measurements']} measurements, "
              f"{100 * r['kept_within10']:.0f}%)")
    return rows


def analyse(run_dir: Path, db: Path, space) -> dict:
    """The kept predictor against a plain ensemble fitted on the same measurements."""
    from hwnas.pipeline.latency_model import heldout_metrics
    from latency import predictors
    from latency.store import MeasurementStore

    stages = json.loads((run_dir / "stages.json").read_text())
    refs = json.loads((run_dir / "references.json").read_text()) \
        if (run_dir / "references.json").is_file() else {}
    kept = predictors.load(run_dir / "predictor.pt", space=space)
    with MeasurementStore(db, readonly=True) as store:
        frame = store.frame(space=space.key, device=kept.device["id"])
    ms = dict(zip(frame["arch"], frame["latency_ms"].astype(float)))
    train = stages["profile"]["train_archs"] + list(stages["active"].get("archs", []))
    hold = stages["profile"]["holdout_archs"]
    train_a, hold_a = [space.from_string(a) for a in train], [space.from_string(a) for a in hold]
    y, yh = np.array([ms[a] for a in train]), np.array([ms[a] for a in hold])
    plain = predictors.create("mlp", space, seed=0).fit(train_a, y)
    k, p = heldout_metrics(kept, hold_a, yh), heldout_metrics(plain, hold_a, yh)
    return {"references": sum(1 for r in refs.get("references", []) if r.get("used")),
            "first": len(stages["profile"]["train_archs"]), "kept_metrics": k,
            "plain_metrics": p, "refs": refs,
            "measurements": len(train), "heldout": len(hold), "kept": kept.kind,
            "kept_within10": k["within10"], "kept_spearman": k["spearman"],
            "plain_within10": p["within10"], "plain_spearman": p["spearman"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("public", "local", "both"), default="both")
    parser.add_argument("--spaces", nargs="+", default=["fbnet", "nb201"], choices=sorted(HELP_TABLES))
    parser.add_argument("--first", default="ort:cpu")
    parser.add_argument("--second", default="torch:cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("extra", nargs="*", help="extra hwnas search options (after --)")
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="second_device-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.case in ("public", "both"):
        print(f"load average before: {_load()}", flush=True)
        public_case(root, args.spaces, args.first, args.extra)
        print(f"load average after: {_load()}", flush=True)
    if args.case in ("local", "both"):
        print("\n-- two local devices (a weakly correlated pair on this host) --")
        local_case(root, args)
    return 0


def local_case(root: Path, args: argparse.Namespace) -> int:
    import spaces

    db = root / "lat.sqlite"
    print(f"load average before: {_load()}", flush=True)
    t1 = run(root / "first", args.first, db, args.extra)
    t2 = run(root / "second", args.second, db, args.extra)
    second = root / "second"
    r = analyse(second, db, spaces.get("fbnetv2", preset="tiny"))
    print(f"\nsecond device {args.second}: {r['first']} first measurements + "
          f"{r['measurements'] - r['first']} by active profiling = {r['measurements']} training "
          f"measurements; {r['heldout']} held out")
    refs = r["refs"]
    if refs:
        print("references: " + "; ".join(f"{x['label']} ({x['why']})" for x in refs["references"]))
        print(f"stage 2 on the first {r['first']}: "
              + ", ".join(f"{k} within +-10% {100 * v['within10']:.0f}%, Spearman {v['spearman']:.3f}"
                          for k, v in refs.get("scores", {}).items()) + f"; kept {refs.get('chosen')}")
    rows = [{"predictor": f"kept ({r['kept']})", **r["kept_metrics"]},
            {"predictor": "plain mlp, same measurements", **r["plain_metrics"]}]
    table = pd.DataFrame(rows)[["predictor", "n", "spearman", "within10", "within5", "mape"]]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    front = pd.read_csv(second / "pareto.csv")
    print("\naudit of the second device's networks:")
    print(front[["budget_ms", "predicted_ms", "measured_ms", "meets_budget", "rounds"]]
          .to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    ok = r["measurements"] <= 20 and r["kept_within10"] >= 0.9
    print(f"\ntarget (>= 90% within +-10% with <= 20 training measurements): "
          f"{'met' if ok else 'NOT met'}; plain ensemble on the same: "
          f"{100 * r['plain_within10']:.0f}%")
    print(f"runs: first {t1:.0f} s, second {t2:.0f} s; load average after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
