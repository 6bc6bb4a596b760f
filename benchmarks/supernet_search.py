"""The supernet strategy end to end on digits, single-path vs multi-path: budgets in,
measured latencies and retrained accuracies out.

1. Profile ``--profile-archs`` random ``fbnetv2`` tiny architectures on ``ort:cpu``
   (``devices.get("ort:cpu").measure_many``, interleaved in chunks) and fit a
   latency predictor on 80 % of them; its error on the other 20 % is printed.
2. For each search seed (``--search-seeds``) and supernet kind (``--supernets``, default
   ``singlepath multipath``) run ``SupernetStrategy.choose`` on the same budgets, data,
   predictor and seed (warm-up once, one alpha search per budget); its wall time is the
   *search* time. One seed's choice is one sample of a noisy search: comparisons are
   paired by (seed, budget) and averaged.
3. Retrain every chosen architecture (each distinct one once) from scratch for
   ``--retrain-epochs``, once per seed in ``--retrain-seeds`` (the mean is reported:
   one seed's accuracy on ~360 validation digits moves by a point or more between
   similar networks).
4. Measure the chosen archs ``--passes`` times in one interleaved ``measure_many``
   batch on ``ort:cpu`` together with ``--references`` profiled archs (median per
   arch): both kinds' choices are timed side by side, and the references' median
   now/then ratio is the machine's drift since profiling. The references' spread
   between passes is the measurement noise the latency comparison allows.
5. Print per budget and kind: chosen arch, predicted / expected / measured latency,
   the prediction error (raw and drift-corrected), retrained accuracy; per kind,
   whether a tighter budget gave a lower measured latency; then single-path against
   multi-path: accuracy within 1 point, measured latency equal or lower (within the
   noise), search wall time lower.

    python benchmarks/supernet_search.py            # 3 budgets spread over the predicted range
    python benchmarks/supernet_search.py --budgets 0.05 0.07 0.09 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import devices  # noqa: E402
from hwnas.evaluators import datasets  # noqa: E402
from hwnas.evaluators.train import TrainEvaluator  # noqa: E402
from hwnas.strategies.supernet import SUPERNETS, SupernetStrategy, predicted_range, sweep_budgets  # noqa: E402
from latency import metrics, predictors  # noqa: E402
from spaces.fbnetv2 import FBNetV2Space  # noqa: E402


def load() -> str:
    """The 1-minute load average (other jobs share this machine's cores)."""
    return f"{os.getloadavg()[0]:.2f}"


def profile(space: FBNetV2Space, profiler, n: int, seed: int, chunk: int = 25):
    """(archs, ms) of ``n`` random archs, measured ``chunk`` at a time (interleaved)."""
    archs = space.sample_many(n, rng=seed)
    ms: list[float] = []
    for i in range(0, n, chunk):
        modules = [space.build(a).eval() for a in archs[i:i + chunk]]
        ms += [m.latency_ms for m in profiler.measure_many(modules, space.input_shape())]
        print(f"  profiled {min(i + chunk, n)}/{n}", file=sys.stderr, flush=True)
    return archs, np.asarray(ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile-archs", type=int, default=200)
    parser.add_argument("--predictor", default="lut", help="lut (default) or mlp")
    parser.add_argument("--budgets", type=float, nargs="+",
                        help="ms; default: --sweep budgets over the predicted range (as the strategy)")
    parser.add_argument("--sweep", type=int, default=3)
    parser.add_argument("--supernets", nargs="+", default=list(SUPERNETS), choices=list(SUPERNETS))
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument("--search-epochs", type=int, default=2)
    parser.add_argument("--retrain-epochs", type=int, default=3)
    parser.add_argument("--retrain-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--latency-form", default="hinge")
    parser.add_argument("--references", type=int, default=20,
                        help="profiled archs re-measured with the chosen ones (drift check)")
    parser.add_argument("--passes", type=int, default=3,
                        help="measurement passes (median per arch): one pass can catch a "
                             "neighbour's burst on a shared CPU")
    parser.add_argument("--seed", type=int, default=0,
                        help="profiling sample, predictor split, references, data split")
    parser.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--measurements", metavar="CSV", help="save the profiled latencies here, "
                        "or reuse them if the file exists (same machine only)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    print(f"torch {torch.__version__}, 1 thread; load average {load()}")

    space = FBNetV2Space("tiny")
    profiler = devices.get("ort:cpu")
    cache = Path(args.measurements) if args.measurements else None
    if cache is not None and cache.is_file():
        table = pd.read_csv(cache)
        archs, ms = [space.from_string(a) for a in table["arch"]], table["ms"].to_numpy(float)
        print(f"1. {len(archs)} {space.key} latencies read from {cache} (measured earlier on ort:cpu)")
    else:
        print(f"1. profiling {args.profile_archs} random {space.key} archs on {profiler.label}")
        archs, ms = profile(space, profiler, args.profile_archs, args.seed)
        if cache is not None:
            pd.DataFrame({"arch": [space.to_string(a) for a in archs], "ms": ms}).to_csv(cache, index=False)
    cut = int(0.8 * len(archs))
    predictor = predictors.create(args.predictor, space).fit(archs[:cut], ms[:cut])
    fp = profiler.fingerprint()
    predictor.set_device(fp.get("id"), fp.get("label"), fp)
    held = metrics.summary(predictor.predict(archs[cut:]), ms[cut:])
    lo, hi = predicted_range(space, predictor, seed=args.seed)
    print(f"   measured {ms.min():.4f}-{ms.max():.4f} ms; {args.predictor} on {cut}, held-out "
          f"{len(archs) - cut}: MAPE {held['mape']:.1f}%, within 10% {100 * held['within10']:.0f}%, "
          f"Spearman {held['spearman']:.3f}; predicted range {lo:.4f}-{hi:.4f} ms "
          f"({time.perf_counter() - t0:.0f} s)")

    data = datasets.load("digits", space.default_input_size, space.in_channels, seed=args.seed)
    budgets = sorted(args.budgets or sweep_budgets(lo, hi, args.sweep))  # the strategy's own --sweep
    print(f"2. supernet search per kind and seed, budgets {', '.join(f'{b:.4f}' for b in budgets)} "
          f"ms (warm-up {args.warmup_epochs}, search {args.search_epochs} epochs per budget, "
          f"{args.latency_form} loss, seeds {args.search_seeds})")
    runs: dict[tuple[str, int], dict] = {}
    for seed in args.search_seeds:
        for kind in args.supernets:
            strategy = SupernetStrategy(seed=seed, predictor=predictor, budgets=budgets,
                                        warmup_epochs=args.warmup_epochs,
                                        search_epochs=args.search_epochs,
                                        latency_form=args.latency_form, supernet=kind)
            start, load_before = time.perf_counter(), load()
            outcomes = strategy.choose(space, data, space.default_input_size, budgets)
            seconds = time.perf_counter() - start
            runs[kind, seed] = {"outcomes": outcomes, "search_s": seconds}
            print(f"   {kind} seed {seed}: {seconds:.0f} s (load {load_before} -> {load()}); chosen "
                  f"{', '.join(space.to_string(o.arch) for o in outcomes)}")

    chosen = list(dict.fromkeys(o.arch for r in runs.values() for o in r["outcomes"]))
    print(f"3. retraining {len(chosen)} distinct chosen archs, {args.retrain_epochs} epochs, seeds "
          f"{args.retrain_seeds} (load {load()})")
    t1 = time.perf_counter()
    accuracy = {}
    for a in chosen:
        accs = [TrainEvaluator(space, ["accuracy"], data, epochs=args.retrain_epochs,
                               seed=s).train_one(a) for s in args.retrain_seeds]
        accuracy[a] = float(np.mean(accs))
    retrain_s = time.perf_counter() - t1

    # One interleaved batch: both kinds' choices side by side, with reference archs from
    # the profiled set (their median now/then ratio is the machine's drift since profiling).
    rng = np.random.default_rng(args.seed)
    ref_idx = rng.choice(len(archs), size=min(args.references, len(archs)), replace=False)
    batch = chosen + [archs[i] for i in ref_idx]
    modules = [space.build(a).eval() for a in batch]
    load_before = load()
    passes = np.asarray([[m.latency_ms for m in profiler.measure_many(modules, space.input_shape())]
                         for _ in range(args.passes)])
    now = dict(zip(batch, np.median(passes, axis=0)))
    drift = float(np.median([now[archs[i]] / ms[i] for i in ref_idx]))
    ref_passes = passes[:, len(chosen):]
    noise = float(np.median((ref_passes.max(0) - ref_passes.min(0)) / np.median(ref_passes, 0)))

    print(f"4. results (retrain {retrain_s:.0f} s); 'measured' is the median of {args.passes} "
          f"ort:cpu passes of all chosen archs interleaved with {len(ref_idx)} profiled reference "
          f"archs (load {load_before} -> {load()}); the references' median now/then ratio "
          f"(machine drift) is {drift:.2f}, their median pass-to-pass spread {100 * noise:.1f}%; "
          f"accuracy: mean of {len(args.retrain_seeds)} retrain seeds")
    print(f"{'kind':>10} {'seed':>4} {'budget':>8} {'predicted':>9} {'expected':>9} {'measured':>9} "
          f"{'error':>7} {'drift-corr':>10} {'acc %':>6} {'search s':>8}  arch")
    records: dict[str, list[dict]] = {kind: [] for kind in args.supernets}
    for (kind, seed), run in runs.items():
        for o in run["outcomes"]:
            m = now[o.arch]
            r = {"seed": seed, "budget_ms": o.budget_ms, "arch": space.to_string(o.arch),
                 "argmax": space.to_string(o.argmax), "argmax_ms": o.argmax_ms,
                 "predicted_ms": o.predicted_ms, "expected_ms": o.expected_ms, "measured_ms": m,
                 "error": (o.predicted_ms - m) / m, "error_drift_corrected":
                 (o.predicted_ms * drift - m) / m, "accuracy": accuracy[o.arch],
                 "search_s": o.seconds, "trace": o.trace}
            records[kind].append(r)
            print(f"{kind:>10} {seed:>4} {r['budget_ms']:>8.4f} {r['predicted_ms']:>9.4f} "
                  f"{r['expected_ms']:>9.4f} {m:>9.4f} {100 * r['error']:>+6.1f}% "
                  f"{100 * r['error_drift_corrected']:>+9.1f}% {r['accuracy']:>6.1f} "
                  f"{r['search_s']:>8.0f}  {r['arch']}"
                  + ("" if r["argmax"] == r["arch"] else f"  (argmax {r['argmax']}, "
                                                         f"{r['argmax_ms']:.4f} ms)"))
    monotone, search_s = {}, {}
    for kind, recs in records.items():
        by_seed = [[r for r in recs if r["seed"] == seed] for seed in args.search_seeds]
        monotone[kind] = all(a["measured_ms"] < b["measured_ms"]
                             for seq in by_seed for a, b in zip(seq, seq[1:]))
        search_s[kind] = float(np.mean([runs[kind, seed]["search_s"] for seed in args.search_seeds]))
        err = np.abs([r["error"] for r in recs])
        corr = np.abs([r["error_drift_corrected"] for r in recs])
        print(f"{kind}: tighter budget -> lower measured latency (every seed): "
              f"{'yes' if monotone[kind] else 'NO'}; mean accuracy "
              f"{np.mean([r['accuracy'] for r in recs]):.1f}%, mean measured "
              f"{np.mean([r['measured_ms'] for r in recs]):.4f} ms, search wall time "
              f"{search_s[kind]:.0f} s per seed; prediction error mean |err| {100 * err.mean():.1f}% "
              f"(drift-corrected {100 * corr.mean():.1f}%)")

    verdict = {}
    if {"singlepath", "multipath"} <= set(records):
        sp, mp = records["singlepath"], records["multipath"]  # same (seed, budget) order
        d_acc = [a["accuracy"] - b["accuracy"] for a, b in zip(sp, mp)]
        ratio = [a["measured_ms"] / b["measured_ms"] for a, b in zip(sp, mp)]
        verdict = {
            "accuracy_within_1": bool(np.mean(d_acc) >= -1.0),
            "latency_equal_or_lower": bool(np.mean(ratio) <= 1.0 + noise),
            "search_faster": search_s["singlepath"] < search_s["multipath"],
            "accuracy_diff": d_acc, "latency_ratio": ratio}
        print(f"single-path vs multi-path, per (seed, budget): accuracy "
              f"{', '.join(f'{d:+.1f}' for d in d_acc)} points; measured latency x"
              f"{', x'.join(f'{q:.2f}' for q in ratio)}")
        print(f"single-path within 1 point of multi-path accuracy (mean {np.mean(d_acc):+.1f}): "
              f"{'yes' if verdict['accuracy_within_1'] else 'NO'}; measured latency equal or lower "
              f"(mean ratio {np.mean(ratio):.3f}, allowed 1 + noise {1 + noise:.3f}): "
              f"{'yes' if verdict['latency_equal_or_lower'] else 'NO'}; search wall time lower "
              f"({search_s['singlepath']:.0f} s vs {search_s['multipath']:.0f} s per seed, "
              f"{search_s['singlepath'] / search_s['multipath']:.2f}x): "
              f"{'yes' if verdict['search_faster'] else 'NO'}; total "
              f"{time.perf_counter() - t0:.0f} s, load {load()}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": vars(args), "held_out": held, "range_ms": [lo, hi], "records": records,
            "search_s": {f"{k}/{seed}": r["search_s"] for (k, seed), r in runs.items()},
            "drift": drift,
            "noise": noise, "monotone": monotone, "verdict": verdict,
            "total_s": time.perf_counter() - t0}, indent=2, default=str))
    return 0 if all(monotone.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
