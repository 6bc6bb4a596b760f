"""The pipeline with the one-shot engine against today's default engine, then a second device.

Runs ``hwnas search`` (the embedded default: fbnetv2 tiny, digits, ort:cpu) twice
with the same seed and store settings -- ``--strategy supernet`` (the FBNetV2
search supernet, one alpha search per budget, every chosen network trained alone)
and ``--strategy oneshot`` (one weight-sharing supernet trained once, NSGA-II on
inherited accuracy x predicted latency, inherited weights fine-tuned) -- and
prints per run: budgets, distinct networks on the front, the hypervolume of the
*measured* front (each exported file's validation accuracy vs its measured latency,
one reference point for both runs), budgets met, wall time. Then the one-shot run's
checkpoint and store are reused on a second device (``--second``, torch:cpu): the
first device's measurements are its references (15 measurements instead of 70),
then fit, search, export, no supernet training; its wall time is compared with the
first run's. The machine's load is printed beside every timing.

    python benchmarks/oneshot_pipeline.py
    python benchmarks/oneshot_pipeline.py --out /tmp/osp -- --supernet-epochs 20

Targets (issue 28): >= 10 distinct networks on the one-shot front (today 2), wall
time < 5 min on 2 cores including supernet training, the second device < 25% of the
first run's wall time without training.
"""

from __future__ import annotations

import argparse
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


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def search(out: Path, device: str, extra: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "w") as log:
        subprocess.run([sys.executable, "-m", "hwnas", "search", "--out", str(out), "--device",
                        device, "--no-progress", *extra], check=True, stdout=log,
                       stderr=subprocess.STDOUT, env=env)
    return time.perf_counter() - start


def _stages(run: Path) -> str:
    """The run's own breakdown ("done in N s (profile .., fit .., ...)") from its log."""
    lines = [line for line in (run.parent / f"{run.name}.log").read_text().splitlines()
             if line.startswith("done in ")]
    return lines[-1] if lines else "no breakdown in the log"


def measured_front(run: Path) -> pd.DataFrame:
    front = pd.read_csv(run / "pareto.csv")
    return front[["budget_ms", "arch", "accuracy", "measured_ms", "meets_budget"]]


def hypervolume(front: pd.DataFrame, ref_ms: float) -> float:
    """Area dominated by (accuracy up, measured latency down) above accuracy 0, left of
    ``ref_ms``: distinct networks only."""
    from hwnas.pareto import hypervolume as hv

    points = front.drop_duplicates("arch")[["accuracy", "measured_ms"]].to_numpy(dtype=float)
    return float(hv(np.stack([-points[:, 0], points[:, 1]], axis=1), np.array([0.0, ref_ms])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="ort:cpu")
    parser.add_argument("--second", default="torch:cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--engines", nargs="+", default=["supernet", "oneshot"])
    parser.add_argument("extra", nargs="*", help="extra hwnas search options (after --)")
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="oneshot_pipeline-"))
    root.mkdir(parents=True, exist_ok=True)
    runs, walls, loads = {}, {}, {}
    for engine in args.engines:
        before = _load()
        walls[engine] = search(root / engine, args.device, ["--strategy", engine, "--db",
                                                            str(root / f"{engine}.sqlite"),
                                                            *args.extra])
        runs[engine] = measured_front(root / engine)
        loads[engine] = f"{before} -> {_load()}"
        print(f"{engine}: {walls[engine]:.0f} s (load {loads[engine]}); {_stages(root / engine)}",
              flush=True)
    ref_ms = 1.1 * max(float(f["measured_ms"].max()) for f in runs.values())
    rows = []
    for engine, front in runs.items():
        rows.append({"engine": engine, "budgets": len(front),
                     "distinct networks": front["arch"].nunique(),
                     "budgets met": int(front["meets_budget"].astype(str).isin(["True", "yes"]).sum()),
                     "best accuracy": float(front["accuracy"].max()),
                     "hypervolume": hypervolume(front, ref_ms), "wall s": walls[engine]})
    print(f"\nmeasured fronts (accuracy of each exported file on the validation split vs its "
          f"measured {args.device} latency; hypervolume above 0% and left of {ref_ms:.4g} ms):")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for engine, front in runs.items():
        print(f"\n{engine} front:")
        print(front.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if "oneshot" in runs and args.second:
        ckpt = root / "oneshot" / "supernet.ckpt"
        before = _load()
        # the first device's store too: its measurements are the second's references
        wall = search(root / "second", args.second,
                      ["--strategy", "oneshot", "--supernet-ckpt", str(ckpt), "--db",
                       str(root / "oneshot.sqlite"), *args.extra])
        log = (root / "second.log").read_text()
        trained = "supernet trained once" in log
        front = measured_front(root / "second")
        print(f"\nsecond device {args.second} reusing {ckpt.name}: {wall:.0f} s "
              f"({100 * wall / walls['oneshot']:.0f}% of the first one-shot run; load {before} -> "
              f"{_load()}); supernet trained again: {'YES' if trained else 'no'}; "
              f"{front['arch'].nunique()} distinct networks for {len(front)} budgets; "
              f"{_stages(root / 'second')}")
        ok = (not trained) and wall < 0.25 * walls["oneshot"]
        print(f"target (no training, < 25% of the first run's wall time): {'met' if ok else 'NOT met'}")
    if "oneshot" in runs:
        one = [r for r in rows if r["engine"] == "oneshot"][0]
        print(f"target (>= 10 distinct networks, < 300 s): "
              f"{'met' if one['distinct networks'] >= 10 and one['wall s'] < 300 else 'NOT met'} "
              f"({one['distinct networks']} networks, {one['wall s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
