"""Do the default pipeline's latency promises survive an independent measurement?

Runs the default pipeline (``hwnas search``, the embedded default, ``ort:cpu``) for
several seeds, each in its own process, then re-times every exported
``front/<k>/model.onnx`` in a *fresh* process with a harness that shares no code
with hwnas's profilers: ONNX Runtime directly, one intra-op thread, the file's
own bytes, blocks of back-to-back calls lasting at least 1 ms, interleaved rounds
over all files of the run, p10 of the blocks (the protocol hwnas documents).

Per seed it prints: the share of chosen networks whose prediction is within
+-10% of their measurement in the run (target >= 90% overall), the share of
exported networks whose re-timed file meets its budget (target 100%), the rounds
used, and the run's wall time (target < 5 min on 2 cores); plus the machine's
load before and after.

    python benchmarks/pipeline_audit.py                  # 3 seeds
    python benchmarks/pipeline_audit.py --seeds 0 --out /tmp/audit
    python benchmarks/pipeline_audit.py --retime a.onnx b.onnx   # the harness alone (JSON)
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

ROOT = Path(__file__).resolve().parents[1]


# ---- the independent harness (ONNX Runtime only) ----------------------------------------------
def retime(paths: list[str], rounds: int = 5, blocks: int = 40, block_ms: float = 1.0,
           warmup_s: float = 0.3) -> list[dict[str, float]]:
    """p10 / median of >= ``block_ms`` blocks per file, interleaved over ``rounds``."""
    import onnxruntime as ort

    sessions = []
    for path in paths:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(Path(path).read_bytes(), options,
                                       providers=["CPUExecutionProvider"])
        inp = session.get_inputs()[0]
        shape = [1] + [int(d) for d in inp.shape[1:]]
        feed = {inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        sessions.append((session, feed))
    ks = []
    for session, feed in sessions:  # warm up, then size the block from the last calls
        calls, start = [], time.perf_counter()
        while time.perf_counter() - start < warmup_s or len(calls) < 20:
            t = time.perf_counter()
            session.run(None, feed)
            calls.append((time.perf_counter() - t) * 1e3)
        typical = float(np.median(calls[-20:]))
        ks.append(max(1, int(np.ceil(block_ms / typical))))
    samples: list[list[float]] = [[] for _ in sessions]
    for r in range(rounds):
        for j in range(len(sessions)):
            i = (j + r) % len(sessions)
            session, feed = sessions[i]
            k = ks[i]
            session.run(None, feed)
            for _ in range(blocks):
                t = time.perf_counter()
                for _ in range(k):
                    session.run(None, feed)
                samples[i].append((time.perf_counter() - t) * 1e3 / k)
    return [{"path": p, "p10_ms": float(np.percentile(s, 10)), "median_ms": float(np.median(s)),
             "block_calls": k} for p, s, k in zip(paths, samples, ks)]


def retime_in_fresh_process(paths: list[str]) -> list[dict[str, float]]:
    out = subprocess.run([sys.executable, __file__, "--retime", *paths], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


# ---- the benchmark ----------------------------------------------------------------------------
def run_pipeline(seed: int, folder: Path, extra: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    with open(folder.parent / f"seed{seed}.log", "w") as log:
        subprocess.run([sys.executable, "-m", "hwnas", "search", "--out", str(folder), "--seed",
                        str(seed), "--no-progress", *extra], check=True, stdout=log,
                       stderr=subprocess.STDOUT, env=env, cwd=str(folder.parent))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here")
    parser.add_argument("--retime", nargs="+", metavar="ONNX", help=argparse.SUPPRESS)
    parser.add_argument("extra", nargs="*", help="extra options for hwnas search (after --)")
    args = parser.parse_args(argv)
    if args.retime:
        print(json.dumps(retime(args.retime)))
        return 0
    import pandas as pd

    root = args.out or Path(tempfile.mkdtemp(prefix="pipeline_audit-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; runs in {root}", flush=True)
    rows, per_seed = [], []
    for seed in args.seeds:
        folder = root / f"seed{seed}"
        wall = run_pipeline(seed, folder, args.extra)
        front = pd.read_csv(folder / "pareto.csv")
        files = [str(folder / p) for p in front["onnx"]]
        again = retime_in_fresh_process(files)
        for row, timing in zip(front.itertuples(), again):
            error = (row.predicted_ms - row.measured_ms) / row.measured_ms
            rows.append({"seed": seed, "budget_ms": row.budget_ms, "predicted_ms": row.predicted_ms,
                         "run_ms": row.measured_ms, "retimed_ms": timing["p10_ms"],
                         "retimed/run": timing["p10_ms"] / row.measured_ms,
                         "pred_within10": abs(error) <= 0.10, "meets_in_run": bool(row.meets_budget),
                         "meets_retimed": timing["p10_ms"] <= row.budget_ms,
                         "rounds": int(row.rounds), "margin": row.margin})
        mine = [r for r in rows if r["seed"] == seed]
        per_seed.append({"seed": seed, "networks": len(mine),
                         "pred within 10%": np.mean([r["pred_within10"] for r in mine]),
                         "meets (run)": np.mean([r["meets_in_run"] for r in mine]),
                         "meets (re-timed)": np.mean([r["meets_retimed"] for r in mine]),
                         "rounds": "/".join(str(r["rounds"]) for r in mine),
                         "margin %": 100 * mine[0]["margin"], "wall s": wall})
        print(f"seed {seed}: {wall:.0f} s", flush=True)
    fmt = lambda v: f"{v:.4g}"  # noqa: E731
    print("\nEvery exported network (run_ms: hwnas's measurement in the run; retimed_ms: this "
          "script's harness, fresh process):")
    print(pd.DataFrame(rows).to_string(index=False, float_format=fmt))
    print("\nPer seed:")
    print(pd.DataFrame(per_seed).to_string(index=False, float_format=fmt))
    all_rows = pd.DataFrame(rows)
    print(f"\noverall: predictions within +-10% of the run's measurement "
          f"{100 * all_rows['pred_within10'].mean():.0f}% (target >= 90%); re-timed files within "
          f"budget {100 * all_rows['meets_retimed'].mean():.0f}% (target 100%); wall "
          f"{min(r['wall s'] for r in per_seed):.0f}-{max(r['wall s'] for r in per_seed):.0f} s "
          f"(target < 300 s)")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
