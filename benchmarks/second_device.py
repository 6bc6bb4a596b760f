"""A second device in 10-20 measurements: the default pipeline on one device, then another.

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

    python benchmarks/second_device.py                       # ort:cpu, then torch:cpu
    python benchmarks/second_device.py --first ort:cpu --second torch:cpu --out /tmp/two
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", default="ort:cpu")
    parser.add_argument("--second", default="torch:cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("extra", nargs="*", help="extra hwnas search options (after --)")
    args = parser.parse_args(argv)
    import spaces
    from hwnas.pipeline.latency_model import heldout_metrics
    from latency import predictors
    from latency.store import MeasurementStore

    root = args.out or Path(tempfile.mkdtemp(prefix="second_device-"))
    root.mkdir(parents=True, exist_ok=True)
    db = root / "lat.sqlite"
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    t1 = run(root / "first", args.first, db, args.extra)
    t2 = run(root / "second", args.second, db, args.extra)
    second = root / "second"
    stages = json.loads((second / "stages.json").read_text())
    refs = json.loads((second / "references.json").read_text()) if (second / "references.json").is_file() else {}
    space = spaces.get("fbnetv2", preset="tiny")
    kept = predictors.load(second / "predictor.pt", space=space)
    store = MeasurementStore(db)
    frame = store.frame(space=space.key, device=kept.device["id"])
    ms = dict(zip(frame["arch"], frame["latency_ms"].astype(float)))
    train = stages["profile"]["train_archs"] + list(stages["active"].get("archs", []))
    hold = stages["profile"]["holdout_archs"]
    train_a, hold_a = [space.from_string(a) for a in train], [space.from_string(a) for a in hold]
    y, yh = np.array([ms[a] for a in train]), np.array([ms[a] for a in hold])
    plain = predictors.create("mlp", space, seed=0).fit(train_a, y)
    rows = [{"predictor": f"kept ({kept.kind})", **heldout_metrics(kept, hold_a, yh)},
            {"predictor": "plain mlp, same measurements", **heldout_metrics(plain, hold_a, yh)}]
    print(f"\nsecond device {args.second}: {len(stages['profile']['train_archs'])} first measurements"
          f" + {len(stages['active'].get('archs', []))} by active profiling = {len(train)} training "
          f"measurements; {len(hold)} held out")
    if refs:
        print("references: " + "; ".join(f"{r['label']} ({r['why']})" for r in refs["references"]))
        print(f"stage 2 on the first {len(stages['profile']['train_archs'])}: "
              + ", ".join(f"{k} within +-10% {100 * v['within10']:.0f}%, Spearman {v['spearman']:.3f}"
                          for k, v in refs.get("scores", {}).items()) + f"; kept {refs.get('chosen')}")
    table = pd.DataFrame(rows)[["predictor", "n", "spearman", "within10", "within5", "mape"]]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    front = pd.read_csv(second / "pareto.csv")
    print("\naudit of the second device's networks:")
    print(front[["budget_ms", "predicted_ms", "measured_ms", "meets_budget", "rounds"]]
          .to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    ok = len(train) <= 20 and rows[0]["within10"] >= 0.9
    print(f"\ntarget (>= 90% within +-10% with <= 20 training measurements): "
          f"{'met' if ok else 'NOT met'}; plain ensemble on the same: "
          f"{100 * rows[1]['within10']:.0f}%")
    print(f"runs: first {t1:.0f} s, second {t2:.0f} s; load average after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
