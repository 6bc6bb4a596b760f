"""How reproducible are hwnas's CPU latency measurements, and how fast is profiling?

Profiles N fbnet (CIFAR stem) and N nb201 architectures on ``torch:cpu`` and
``ort:cpu``, then re-measures them all in a second pass, and prints per space,
device and protocol:

* median CV of the samples (std/mean), median robust CV (IQR/1.349/median) and
  median round CV (spread of p10 between rounds), for both clocks (each call is
  read by the wall clock and by the thread's CPU time, see devices.timing);
* the share of architectures whose second-pass value is within 5% and 2% of
  the first, for several statistics of the same samples (p10, p25, median,
  mean, min), so the choice of reported statistic is made on data;
* the ORT/torch latency ratio;
* throughput (architectures per minute) and the share of time spent
  building/exporting vs timing.

Protocols: ``interleaved`` is hwnas's default (groups of G networks, R rounds,
C calls per network per round, pooled); ``sequential`` times one network after
another with the same number of calls (R*C) as the baseline DESIGN.md measured.

    python benchmarks/profile_stability.py            # full: 50 + 50 archs, both protocols
    python benchmarks/profile_stability.py --n 10     # small check
    python benchmarks/profile_stability.py --protocols interleaved --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import devices  # noqa: E402
import spaces  # noqa: E402
from devices import Measurement, TimingPlan, statistic_of  # noqa: E402

STATISTICS = ("p10", "p25", "median", "mean", "min")


@dataclass
class Run:
    """One pass of one protocol on one device over one space's architectures."""

    measurements: list[Measurement]
    wall_s: float
    build_s: float
    setup_s: float = field(init=False)
    timing_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.setup_s = sum(m.setup_s for m in self.measurements)
        self.timing_s = sum(m.timing_s + m.warmup_s for m in self.measurements)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=50, help="architectures per space (default 50)")
    p.add_argument("--spaces", nargs="+", default=["fbnet", "nb201"])
    p.add_argument("--devices", nargs="+", default=["torch:cpu", "ort:cpu"])
    p.add_argument("--protocols", nargs="+", default=["interleaved", "sequential"],
                   choices=["interleaved", "sequential"])
    p.add_argument("--group", type=int, default=10, help="networks per interleaved group (default 10)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--block-ms", type=float, nargs="+", default=[1.0], metavar="MS",
                   help="minimum duration of one timed sample (k back-to-back calls); 0 = single "
                        "calls; several values are compared in one run (default 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exporters", type=int, default=2, metavar="K",
                   help="time the legacy vs dynamo ONNX exporter on K fbnet archs (0: skip)")
    p.add_argument("--json", type=Path, help="write every number (and all samples) to this file")
    return p.parse_args(argv)


def measure_pass(profiler: Any, space: Any, archs: list[Any], modules: list[Any], protocol: str,
                 group: int) -> Run:
    """Time every module once with the given protocol; modules are built on first use."""
    shape = space.input_shape()
    plan = profiler.plan
    if protocol == "sequential":
        # One network after another, the same number of calls, no interleaving.
        profiler.plan = plan.updated(rounds=1, calls=plan.rounds * plan.calls, max_s=plan.max_s)
        group = 1
    out: list[Measurement] = []
    build_s = 0.0
    start = time.perf_counter()
    try:
        for i in range(0, len(archs), group):
            for j in range(i, min(i + group, len(archs))):
                if modules[j] is None:
                    t = time.perf_counter()
                    modules[j] = space.build(archs[j])
                    build_s += time.perf_counter() - t
            out.extend(profiler.measure_many(modules[i:i + group], shape))
    finally:
        profiler.plan = plan
    return Run(out, time.perf_counter() - start, build_s)


def within(first: list[float], second: list[float], tol: float) -> float:
    a, b = np.asarray(first), np.asarray(second)
    return float(np.mean(np.abs(b - a) / a <= tol))


def summarise(first: Run, second: Run, clock: str) -> dict[str, Any]:
    """Spread and pass-to-pass agreement of one clock's samples (both clocks read the same calls)."""
    m1, m2 = first.measurements, second.measurements
    s1 = [np.asarray(m.samples_of(clock)) for m in m1]
    s2 = [np.asarray(m.samples_of(clock)) for m in m2]
    both = s1 + s2

    def robust_cv(x: np.ndarray) -> float:
        q25, q50, q75 = np.percentile(x, [25, 50, 75])
        return float((q75 - q25) / 1.349 / q50)

    def round_cv(m: Measurement) -> float:
        per_round = np.array_split(np.asarray(m.samples_of(clock)), m.rounds)
        values = [np.percentile(r, 10) for r in per_round if len(r)]
        return float(np.std(values, ddof=1) / np.mean(values)) if len(values) > 1 else 0.0

    row: dict[str, Any] = {
        "clock": clock,
        "n": len(m1),
        "p10 ms": float(np.median([np.percentile(x, 10) for x in s1])),
        "CV": float(np.median([x.std(ddof=1) / x.mean() for x in both])),
        "robust CV": float(np.median([robust_cv(x) for x in both])),
        "round CV": float(np.median([round_cv(m) for m in m1 + m2])),
    }
    for stat in STATISTICS:
        a = [statistic_of(x, stat) for x in s1]
        b = [statistic_of(x, stat) for x in s2]
        row[f"{stat} <5%"] = within(a, b, 0.05)
        row[f"{stat} <2%"] = within(a, b, 0.02)
    if all(m.reference_ms for m in m1 + m2):
        # drift-corrected (devices.reference): each value over its group's reference network
        for stat in ("p10", "median"):
            a = [statistic_of(x, stat) / m.reference_ms for x, m in zip(s1, m1)]
            b = [statistic_of(x, stat) / m.reference_ms for x, m in zip(s2, m2)]
            row[f"{stat}/ref <5%"] = within(a, b, 0.05)
            row[f"{stat}/ref <2%"] = within(a, b, 0.02)
        refs = np.array([m.reference_ms for m in m1 + m2])
        row["ref drift"] = float((refs.max() - refs.min()) / np.median(refs))
    return row


def throughput(run: Run, first_pass: bool) -> dict[str, Any]:
    total = run.wall_s  # includes building, exporting and timing
    return {
        "pass": 1 if first_pass else 2,
        "archs/min": len(run.measurements) / (total / 60) if total else float("nan"),
        "build %": 100 * run.build_s / total,
        "export+session %": 100 * run.setup_s / total,
        "timing %": 100 * run.timing_s / total,
        "wall s": total,
    }


def compare_exporters(space: Any, archs: list[Any]) -> list[dict[str, Any]]:
    """Seconds per export: legacy TorchScript exporter vs dynamo (both in memory)."""
    import io
    import warnings

    import torch

    rows = []
    for arch in archs:
        module = space.build(arch).eval()
        example = torch.randn(1, *space.input_shape())
        row: dict[str, Any] = {"arch": space.to_string(arch)[:30]}
        for name, kwargs in (("legacy s", dict(dynamo=False, opset_version=17)),
                             ("dynamo s", dict(dynamo=True, external_data=False, verbose=False))):
            start = time.perf_counter()
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    result = torch.onnx.export(module, (example,), None if kwargs.get("dynamo") else io.BytesIO(),
                                               **kwargs)
                    if result is not None:
                        result.save(io.BytesIO(), external_data=False)
                row[name] = time.perf_counter() - start
            except Exception as error:  # noqa: BLE001 - report, keep benchmarking
                row[name] = f"failed: {str(error).splitlines()[0][:40]}"
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    plans = {b: TimingPlan(threads=args.threads, rounds=args.rounds, calls=args.calls, block_ms=b)
             for b in args.block_ms}
    plan = plans[args.block_ms[0]]
    print(f"plan: {plan}; block_ms {', '.join(map(str, args.block_ms))}")
    import os

    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: dict[str, Any] = {"plan": plan.__dict__, "args": {k: str(v) for k, v in vars(args).items()},
                               "runs": []}
    stability, speed = [], []
    latencies: dict[tuple[str, str, str], list[float]] = {}
    for space_name in args.spaces:
        space = spaces.get(space_name)
        archs = space.sample_many(args.n, args.seed)
        modules: list[Any] = [None] * len(archs)  # kept: the second pass reuses exports
        for spec in args.devices:
            profiler = devices.get(spec, plan=plan)
            print(f"{space.key} on {profiler.label} [{profiler.fingerprint_id}]", flush=True)
            settings = [(p, b) for p in args.protocols for b in args.block_ms]
            # pass 1 of every setting, then pass 2 of every setting: a slow phase of the
            # host lands on all settings alike instead of on whichever ran then
            passes: dict[tuple[str, float], list[Run]] = {k: [] for k in settings}
            for _ in range(2):
                for protocol, block in settings:
                    profiler.plan = plans[block]
                    passes[(protocol, block)].append(
                        measure_pass(profiler, space, archs, modules, protocol, args.group))
            for protocol, block in settings:
                first, second = passes[(protocol, block)]
                key = {"space": space.key, "device": spec, "protocol": protocol, "block ms": block,
                       "k": int(np.median([m.block_calls for m in first.measurements]))}
                for clock in ("wall", "cpu"):
                    stability.append({**key, **summarise(first, second, clock)})
                speed.append({**key, **throughput(first, True)})
                speed.append({**key, **throughput(second, False)})
                if protocol == args.protocols[0] and block == args.block_ms[0]:
                    for clock in ("wall", "cpu"):
                        latencies[(space.key, spec, clock)] = [
                            statistic_of(m.samples_of(clock), "p10") for m in first.measurements]
                results["runs"].append({**key, "archs": [space.to_string(a) for a in archs],
                                        "pass1": [m.to_dict() for m in first.measurements],
                                        "pass2": [m.to_dict() for m in second.measurements]})
                print(f"  {protocol}, block {block} ms: p10 within 5%: {stability[-2]['p10 <5%']:.0%} (wall clock), "
                      f"{stability[-1]['p10 <5%']:.0%} (cpu clock); drift-corrected "
                      f"{stability[-2].get('p10/ref <5%', float('nan')):.0%} (wall); "
                      f"{first.wall_s + second.wall_s:.0f} s", flush=True)

    fmt = {"float_format": lambda v: f"{v:.3f}"}
    table = pd.DataFrame(stability)
    print("\nSpread (medians over archs; CV = std/mean, robust CV = IQR/1.349/median, round CV = "
          "between-round spread of p10):")
    spread = ["space", "device", "protocol", "block ms", "k", "clock", "n", "p10 ms", "CV",
              "robust CV", "round CV"]
    print(table[spread + [c for c in ("ref drift",) if c in table]].to_string(index=False, **fmt))
    print("\nReproducibility (share of archs whose pass-2 value is within 5% / 2% of pass 1):")
    share = [c for c in table.columns if c.endswith("%")]
    print(table[["space", "device", "protocol", "block ms", "clock", *share]].to_string(index=False, **fmt))
    ratios = []
    for space_name, clock in sorted({(k[0], k[2]) for k in latencies}):
        ort_ms, torch_ms = (latencies.get((space_name, d, clock)) for d in ("ort:cpu", "torch:cpu"))
        if ort_ms and torch_ms:
            r = np.asarray(ort_ms) / np.asarray(torch_ms)
            ratios.append({"space": space_name, "clock": clock, "ORT/torch median": float(np.median(r)),
                           "min": float(r.min()), "max": float(r.max())})
    if ratios:
        print("\nORT/torch latency ratio (p10, per architecture):")
        print(pd.DataFrame(ratios).to_string(index=False, **fmt))
    print("\nThroughput (pass 2 reuses each architecture's ONNX export):")
    print(pd.DataFrame(speed).to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if args.exporters and "fbnet" in args.spaces:
        space = spaces.get("fbnet")
        rows = compare_exporters(space, space.sample_many(args.exporters, args.seed + 1))
        print("\nONNX export time, legacy (dynamo=False) vs dynamo exporter:")
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        results["exporters"] = rows
    results["stability"], results["throughput"], results["ratios"] = stability, speed, ratios
    print(f"\nload average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
