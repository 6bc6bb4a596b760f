"""How close does each strategy get to NB201's true accuracy/latency front for a given number of queries?

Setting: NAS-Bench-201, objectives CIFAR-10 test accuracy (max, NATS-Bench
table) and latency (min) on HELP/HW-NAS-Bench devices (tables), so every
query is an exact table lookup and the true front is known from all 15,625
cells.

Normalisation and reference point (printed by the script): each objective is
turned into "smaller is better" and mapped to [0, 1] with its minimum and
maximum over the *whole space* (accuracy: 1 = the worst cell, 0 = the best;
latency: 0 = the fastest cell, 1 = the slowest); the reference point is
(1.1, 1.1), i.e. the worst corner plus a 10% margin so that the extreme points
of the front count. Score = HV(front found) / HV(true front), both in that
normalised space.

Strategies: hwnas random, evolution (regularized, rank + crowding), rl (NAS-RL's LSTM
controller, REINFORCE, Pareto-place reward), parsec (a learned categorical per decision), dpp
(predictor-guided progressive), nao (Neural Architecture Optimization, gradient
step in a learned embedding space), and Optuna's samplers driving the same
loop (``optuna:tpe``, ``optuna:nsga2``, ``optuna:gp``; hwnas.strategies.optuna_sampler,
Optuna's default settings). A query is one distinct architecture evaluated; an architecture
proposed again is answered from memory and not counted, for every strategy
(Optuna's duplicate trials included). ``optuna:gp`` is run to 100 queries only
(QUERY_CAP): its Gaussian process costs about a minute per 100 queries here and
grows quickly with the number of trials. SEED_CAP can run a slow strategy with
fewer seeds; the table's ``seeds`` column says how many runs each cell has. Each run uses the largest budget and
the score at a smaller budget is read from its first queries, which is exact
because every strategy here is anytime (its choices never depend on the
total budget).

Constrained part: budget T = median latency of the space on that device;
regret = best feasible accuracy in the space - best feasible accuracy found
(percentage points), read from the same multi-objective runs; with
``--constrained`` also for the single-objective constrained modes (evolution
with MONAS's constraint reward, dpp with the budget as a constraint).

Finished runs are appended to ``OUT/search_efficiency_runs.jsonl``; re-running
the script skips them (an interrupted benchmark resumes). The tables and the
plot are always written from *every* stored run with the same largest budget,
devices and seed range, not only the strategies asked for, so one strategy can
be (re-)run alone and merged with the others' stored runs:
``--strategies nao`` adds nao's missing runs; ``--strategies nao --rerun``
first drops nao's stored runs (after a change to nao) and runs them again.

The runs log is not committed (it holds every run's query order); the per-seed scores
are (``search_efficiency_runs.csv``). ``--reuse-csv`` takes the stored scores of
strategies that are neither asked for nor in the log from that CSV, so the
expensive strategies (dpp, nao: 30-60 s a run) need not run again for a table
that adds others (their curves are then missing from the plot).

Usage:  python benchmarks/search_efficiency.py [--seeds 30] [--queries 100,300] [--jobs 2] [--constrained]
        python benchmarks/search_efficiency.py --strategies nao [--rerun] --jobs 1
        python benchmarks/search_efficiency.py --strategies random,evolution,optuna:tpe,optuna:nsga2,optuna:gp --reuse-csv --jobs 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

REF_MARGIN = 0.1
DEVICES = ("gold_6226", "fpga")


def load_tables() -> dict[str, np.ndarray]:
    from latency.shared_data import HELP_NB201_LATENCY, NB201_ACCURACY, data_file

    acc = pd.read_csv(data_file(NB201_ACCURACY), usecols=["CIFAR10TestAccuracy200Epochs"])
    lat = pd.read_csv(data_file(HELP_NB201_LATENCY))
    lat = lat.sort_values("arch_index")
    assert (lat["arch_index"].to_numpy() == np.arange(15625)).all()
    out = {"accuracy": acc["CIFAR10TestAccuracy200Epochs"].to_numpy(float)}
    for d in DEVICES:
        out[d] = lat[d].to_numpy(float)
    return out


class Problem:
    """Normalised objective matrix of the whole space and its true front."""

    def __init__(self, acc: np.ndarray, lat: np.ndarray) -> None:
        from hwnas import pareto

        self.acc, self.lat = acc, lat
        F = np.column_stack([-acc, lat])
        self.lo, self.hi = F.min(axis=0), F.max(axis=0)
        self.Z = (F - self.lo) / (self.hi - self.lo)
        self.ref = np.full(2, 1.0 + REF_MARGIN)
        self.true_hv = pareto.hypervolume(self.Z[pareto.pareto_mask(self.Z)], self.ref)
        self.T = float(np.median(lat))
        feas = lat <= self.T
        self.best_feasible = float(acc[feas].max())

    def hv_ratio(self, idx: np.ndarray) -> float:
        from hwnas import pareto

        return pareto.hypervolume(self.Z[idx], self.ref) / self.true_hv

    def regret(self, idx: np.ndarray) -> float:
        ok = self.lat[idx] <= self.T
        return self.best_feasible - (self.acc[idx][ok].max() if ok.any() else 0.0)


def run_hwnas(strategy: str, device: str, seed: int, queries: int, constrained: bool) -> list[int]:
    """Benchmark indices of the evaluated archs, in query order."""
    import spaces
    from hwnas import strategies
    from hwnas.evaluators.latency_sources import TableLatency
    from hwnas.evaluators.tabular import TabularEvaluator
    from hwnas.objectives import parse_objectives

    space = spaces.get("nb201")
    ev = TabularEvaluator(space, ["accuracy", "latency_ms"], latency=TableLatency(space, device))
    if constrained:
        T = float(np.median(ev.latency._by_index))
        objectives = parse_objectives(["accuracy"], [f"latency_ms<={T!r}"])
    else:
        objectives = parse_objectives(["accuracy", "latency_ms"])
    result = strategies.create(strategy, seed=seed).run(space, ev, objectives, queries)
    return [space.index(space.from_string(s)) for s in result.history["arch"]]


_TABLES: dict[str, np.ndarray] | None = None
_ORDER = {"random": 0, "nsga2": 1, "optuna:nsga2": 1.5, "evolution": 2, "rl": 2.3, "parsec": 2.6,
          "dpp": 3, "nao": 4,
          "optuna:tpe": 4.5, "optuna:gp": 4.7, "evolution (constrained)": 5, "dpp (constrained)": 6}
EXPENSIVE = ("dpp", "nao", "optuna:tpe", "optuna:gp")  # run last: cheap strategies' figures first
STRATEGIES = ("random", "evolution", "rl", "parsec", "dpp", "nao", "optuna:nsga2", "optuna:tpe",
              "optuna:gp")
QUERY_CAP = {"optuna:gp": 100}  # queries a strategy is run to when the largest budget is more
SEED_CAP: dict[str, int] = {}    # seeds a strategy is run with when more are asked for


def run_queries(strategy: str, qmax: int) -> int:
    return min(qmax, QUERY_CAP.get(strategy, qmax))


def run_seeds(strategy: str, seeds: int) -> int:
    return min(seeds, SEED_CAP.get(strategy, seeds))


def _task(args: tuple) -> tuple:
    strategy, device, seed, queries, constrained = args
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    idx = run_hwnas(strategy, device, seed, queries, constrained)
    return strategy, device, seed, queries, constrained, idx, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--queries", default="100,300")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--devices", default=",".join(DEVICES))
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 1)))
    parser.add_argument("--constrained", action="store_true",
                        help="also run evolution/dpp in single-objective constrained mode")
    parser.add_argument("--rerun", action="store_true",
                        help="drop the stored runs of the listed strategies and run them again")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--stored-only", action="store_true",
                        help="run nothing: tabulate the runs already in the log")
    parser.add_argument("--reuse-csv", action="store_true",
                        help="take strategies neither asked for nor in the runs log from the stored "
                             "search_efficiency_runs.csv (scores only, no curves)")
    args = parser.parse_args(argv)

    budgets = sorted(int(q) for q in args.queries.split(","))
    qmax = budgets[-1]
    names = args.strategies.split(",")
    devices = args.devices.split(",")
    tables = load_tables()
    problems = {d: Problem(tables["accuracy"], tables[d]) for d in devices}
    print("NB201 / CIFAR-10 test accuracy vs table latency. Normalisation: each objective "
          "min-max over all 15,625 cells (minimised form); reference point (1.1, 1.1).")
    for d, p in problems.items():
        print(f"  {d}: accuracy {-p.hi[0]:.2f}..{-p.lo[0]:.2f} %, latency {p.lo[1]:.3f}..{p.hi[1]:.3f} ms, "
              f"true front HV {p.true_hv:.4f}; latency budget T = median = {p.T:.3f} ms, "
              f"best feasible accuracy {p.best_feasible:.2f} %")

    cheap_first = sorted(names, key=lambda n: n in EXPENSIVE)
    # seed-major within a strategy, so a benchmark stopped early has as many seeds per device
    tasks = [(s, d, seed, run_queries(s, qmax), False) for s in cheap_first
             for seed in range(run_seeds(s, args.seeds)) for d in devices]
    if args.constrained:
        tasks += [(s, d, seed, qmax, True) for s in ("evolution", "dpp") if s in names
                  for d in devices for seed in range(args.seeds)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Every finished run is appended here, so an interrupted benchmark resumes where it stopped.
    log = out / "search_efficiency_runs.jsonl"
    done = _load_runs(log)
    if args.rerun:
        done = {k: r for k, r in done.items() if k[0] not in names}
        _rewrite_runs(log, done.values())
    if args.stored_only:
        tasks = [t for t in tasks if t in done]
    todo = [t for t in tasks if t not in done]
    print(f"{len(tasks)} runs, {len(tasks) - len(todo)} already in {log}", file=sys.stderr)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool, log.open("a") as fh:
        for k, (s, d, seed, q, cons, idx, sec) in enumerate(pool.map(_task, todo, chunksize=1)):
            r = {"strategy": s, "device": d, "seed": seed, "queries": q, "constrained": cons,
                 "seconds": sec, "idx": [int(i) for i in idx]}
            done[(s, d, seed, q, cons)] = r
            fh.write(json.dumps(r) + "\n")
            fh.flush()
            if (k + 1) % 20 == 0:
                print(f"  {k + 1}/{len(todo)} runs, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    # every stored run of this setting, whichever strategies were asked for this time
    asked = set(tasks)
    stored = [k for k in done if k[3] == run_queries(k[0], qmax) and k[1] in devices
              and k[2] < args.seeds and (args.constrained or not k[4]) and k not in asked]
    rows = []
    for t in tasks + stored:
        r = done[t]
        s, d, seed, ran, cons = t
        p, idx = problems[d], r["idx"]
        label = s + (" (constrained)" if cons else "")
        curve = {q: p.hv_ratio(np.asarray(idx[:q])) for q in range(10, ran + 1, 10)}
        rows.append({"strategy": label, "device": d, "seed": seed, "seconds": r["seconds"],
                     **{f"hv@{q}": p.hv_ratio(np.asarray(idx[:q])) if q <= ran else np.nan
                        for q in budgets},
                     **{f"regret@{q}": p.regret(np.asarray(idx[:q])) if q <= ran else np.nan
                        for q in budgets},
                     "curve": curve})
    if args.reuse_csv:
        rows += _reused(out / "search_efficiency_runs.csv", {r["strategy"] for r in rows},
                        devices, args.seeds, budgets)
    frame = pd.DataFrame(rows)
    frame.drop(columns="curve").to_csv(out / "search_efficiency_runs.csv", index=False)

    def iqr(x):
        return f"{np.median(x):.4f} [{np.percentile(x, 25):.4f}, {np.percentile(x, 75):.4f}]"

    table = []
    frame = frame.sort_values(["device", "strategy"], key=lambda c: c.map(_ORDER).fillna(99)
                              if c.name == "strategy" else c, kind="stable")
    for (d, label), g in frame.groupby(["device", "strategy"], sort=False):
        row = {"device": d, "strategy": label}
        for q in budgets:
            if g[f"hv@{q}"].isna().all():
                continue
            if "constrained" not in label:
                row[f"HV/HV* @{q} median [IQR]"] = iqr(g[f"hv@{q}"])
            row[f"regret @{q} (pp) median [IQR]"] = f"{np.median(g[f'regret@{q}']):.2f} " \
                                                    f"[{np.percentile(g[f'regret@{q}'], 25):.2f}, " \
                                                    f"{np.percentile(g[f'regret@{q}'], 75):.2f}]"
        row["seeds"] = len(g)
        row["s/run"] = f"{g['seconds'].mean():.2f}"
        table.append(row)
    summary = pd.DataFrame(table).fillna("-")
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    print(f"\nup to {args.seeds} seeds per cell (column seeds); HV ratio = HV(found front)/HV(true front); regret = best "
          f"feasible accuracy (latency <= T) in the space minus the best found.")
    print(summary.to_string(index=False))
    summary.to_csv(out / "search_efficiency_summary.csv", index=False)
    _plot(frame, devices, out / "search_efficiency.png")
    print(f"\nwrote {out}/search_efficiency_summary.csv, search_efficiency_runs.csv, "
          f"search_efficiency.png ({time.perf_counter() - start:.0f} s)")
    return 0


def _reused(csv: Path, have: set[str], devices: list[str], seeds: int,
            budgets: list[int]) -> list[dict]:
    """Per-seed scores of other strategies from a stored runs CSV (no curves)."""
    if not csv.is_file():
        return []
    old = pd.read_csv(csv)
    cols = [f"hv@{q}" for q in budgets] + [f"regret@{q}" for q in budgets]
    if any(c not in old.columns for c in cols):
        return []
    old = old[old["strategy"].isin(STRATEGIES) & ~old["strategy"].isin(have)
              & old["device"].isin(devices) & (old["seed"] < seeds)]
    print(f"reused from {csv}: {', '.join(sorted(old['strategy'].unique())) or 'nothing'}",
          file=sys.stderr)
    return [{**r, "curve": None} for r in old[["strategy", "device", "seed", "seconds", *cols]]
            .to_dict("records")]


def _load_runs(log: Path) -> dict[tuple, dict]:
    """Stored runs keyed by (strategy, device, seed, queries, constrained); the last line wins."""
    done: dict[tuple, dict] = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                r = json.loads(line)
                done[(r["strategy"], r["device"], r["seed"], r["queries"], r["constrained"])] = r
            except (ValueError, KeyError):
                continue
    return done


def _rewrite_runs(log: Path, runs) -> None:
    """Replace the log by ``runs`` (atomically: a kill leaves the old or the new file)."""
    tmp = log.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in runs))
    tmp.replace(log)


def _plot(frame: pd.DataFrame, devices: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(devices), figsize=(6 * len(devices), 4.2), squeeze=False)
    for ax, d in zip(axes[0], devices):
        for label, g in frame[(frame["device"] == d) & ~frame["strategy"].str.contains("constrained")
                              ].groupby("strategy", sort=False):
            if g["curve"].iloc[0] is None:  # reused scores: the budgets only
                qs = [int(c.split("@")[1]) for c in g.columns if c.startswith("hv@")]
                med = [np.median(g[f"hv@{q}"]) for q in qs]
                ax.plot(qs, med, "o--", label=f"{label} (stored)")
                continue
            qs = sorted(g["curve"].iloc[0])
            vals = np.array([[c[q] for q in qs] for c in g["curve"]])
            med = np.median(vals, axis=0)
            ax.plot(qs, med, label=label)
            ax.fill_between(qs, np.percentile(vals, 25, axis=0), np.percentile(vals, 75, axis=0),
                            alpha=0.15)
        ax.set_title(f"NB201 CIFAR-10 accuracy vs {d} latency")
        ax.set_xlabel("queries")
        ax.set_ylabel("HV / HV(true front)  (median, IQR)")
        ax.set_ylim(0.85, 1.0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
