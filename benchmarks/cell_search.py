"""Differentiable cell search, method by method: accuracy, latency and collapse of the derived cells.

For each space (``nb201`` C=8 N=1 and ``darts`` C=8 layers=5 by default, at ``--input-size``
px) and each method -- ``darts`` (first order), ``darts-2nd`` (DARTS' unrolled second-order
gradient), ``gdas``, and ``entrannas`` / ``toponas`` when ``hwnas.oneshot.entrannas`` /
``hwnas.oneshot.toponas`` import (both search the darts space only; on nb201 they are
skipped with a line saying so) -- every seed of ``--seeds`` runs two searches from scratch,
``--search-epochs`` epochs each: one without a latency term, one with the hinge latency
loss at the space's budget. The search data is the pipeline's (:func:`hwnas.strategies.
cell_search.search_split`: the weights learn on the even training images, the
architecture parameters on the odd ones; alpha lr 0.01, latency weight 2, batch <= 64),
so the validation split stays unseen by the search.

**Latency model and budget.** Once per space, ``--profile`` random architectures are timed
on ``ort:cpu`` (one thread; :class:`hwnas.pipeline.measuring.DeviceMeter`, the pipeline's
store and timing protocol; the store is ``OUT/latency.sqlite``, so a rerun reuses it) and
the pipeline's MLP ensemble is fitted on them (``predict`` and the differentiable
``predict_soft`` the latency term reads). The budget is the ``--budget-quantile`` quantile
(default 0.3) of the profiled latencies.

**Per search** (printed, and a row of ``OUT/cell_search.csv``): space, method, seed,
budget_ms (``none`` for the unbudgeted search), the search's wall time, the derived
architecture's string, ``param_free`` -- the share of parameter-free ops (``none``,
``skip_connect``, pooling) among the derived cells' ops, the collapse check --, the
predictor's latency of the derived architecture (and the relaxed expected latency the loss
saw), then the derived cell *trained alone* (:func:`hwnas.export_train.train_for_export`,
``--train-epochs``, fresh weights, the same data split and seed; nothing inherited from the
supernet) with its validation accuracy, exported to ONNX (:func:`hwnas.export.export_arch`)
and that file timed on ``ort:cpu``, one thread (:meth:`DeviceMeter.measure_files`, the
pipeline's own file timing), ``meets_budget`` = measured_ms <= budget_ms (no margin, no
repair of the derived cell: this measures the search's own latency term; the unbudgeted
rows say whether they happen to fit). For nb201, ``help_ms`` is the HELP / HW-NAS-Bench
table's latency of the derived cell on ``--help-device`` (default ``gold_6226``; the
table's NB201 network, C=16 N=5 at 32 px, not ours), NaN when the table is not under
``$HWNAS_DATA_DIR`` / ``../shared/data``.

**Summary** per (space, method, budget): mean +- std over seeds of accuracy, measured
latency, parameter-free share and search wall time, and the number of searches whose file
met the budget. The machine's load average is printed before and after each (space,
method) block; the timings on a shared machine are only as good as that load.

Targets (printed at the end, met / NOT met): every search < 10 min; EnTranNAS and TopoNAS
at least as accurate as DARTS (first order) at the same budget with <= 50% parameter-free
ops (mean over seeds); every budgeted search's derived cell meets the budget when measured.

    python benchmarks/cell_search.py --out /tmp/cell_search                  # full run
    python benchmarks/cell_search.py --dataset cifar10 --data-root ~/data --input-size 32 \\
        --out /tmp/cell_search_c10
    python benchmarks/cell_search.py --quick --spaces nb201 --methods darts gdas --seeds 0

``--quick``: a smoke run (1 search epoch, 1 training epoch, 8 profiled archs, 400 images,
the quick timing plan); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEVICE = "ort:cpu"
SPACE_OPTIONS = {"nb201": {"C": 8, "N": 1}, "darts": {"C": 8, "layers": 5}}
METHODS = ("darts", "darts-2nd", "gdas", "entrannas", "toponas")
#: Ops without weights: the cells DARTS-like searches collapse to (skip and pooling).
PARAM_FREE = frozenset({"none", "skip_connect", "max_pool_3x3", "avg_pool_3x3"})
#: Every op name of the two spaces (a decision whose options include one chooses an op).
KNOWN_OPS = frozenset({"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3",
                       "max_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
                       "dil_conv_5x5"})
SEARCH_LIMIT_S = 600.0
ACC_FLOOR_PF = 0.5
COLUMNS = ("space", "method", "seed", "budget_ms", "search_s", "param_free", "predicted_ms",
           "expected_ms", "accuracy", "measured_ms", "meets_budget", "help_ms", "train_s",
           "arch")

_LOG: Path | None = None


def say(text: str = "") -> None:
    """Print and append to ``OUT/cell_search.log``."""
    print(text, flush=True)
    if _LOG is not None:
        with open(_LOG, "a") as f:
            f.write(text + "\n")


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the methods: one adapter, the only place that knows their signatures -------------------
def available_methods(wanted: list[str]) -> dict[str, str | None]:
    """Per method: None when it can run, else why not (an import that failed)."""
    out: dict[str, str | None] = {}
    for m in wanted:
        if m in ("entrannas", "toponas"):
            try:
                __import__(f"hwnas.oneshot.{m}")
                out[m] = None
            except ImportError as error:
                out[m] = f"hwnas.oneshot.{m} does not import ({error})"
        else:
            out[m] = None
    return out


def method_fits_space(method: str, space: Any) -> str | None:
    """Why ``method`` cannot search ``space`` (None: it can)."""
    if method in ("entrannas", "toponas") and space.name != "darts":
        return f"{method} searches the darts cell space only"
    return None


@dataclass
class Searched:
    arch: Any
    seconds: float
    expected_ms: float | None


def run_search(method: str, supernet: Any, data: Any, latency: Any, settings: dict[str, Any]
               ) -> Searched:
    """One search of ``supernet`` by ``method`` (``settings``: DifferentiableConfig fields)."""
    from hwnas.oneshot.differentiable import differentiable_search

    if method == "darts":
        r = differentiable_search(supernet, data, "darts", latency=latency, **settings)
    elif method == "darts-2nd":
        r = differentiable_search(supernet, data, "darts", latency=latency, second_order=True,
                                  **settings)
    elif method == "gdas":
        r = differentiable_search(supernet, data, "gdas", latency=latency, **settings)
    elif method == "entrannas":
        from hwnas.oneshot.entrannas import entrannas_search

        r = entrannas_search(supernet, data, latency=latency, **settings)
    elif method == "toponas":
        from hwnas.oneshot.toponas import TopologyConfig

        r = differentiable_search(supernet, data, "darts", latency=latency,
                                  topology=TopologyConfig(), **settings)
    else:
        raise ValueError(f"unknown method {method!r}")
    expected = getattr(r, "expected_ms", None)
    return Searched(r.arch, float(r.seconds), None if expected is None else float(expected))


# -- measures of a derived architecture -----------------------------------------------------
def param_free_share(space: Any, arch: Any) -> float:
    """Share of the op decisions of ``arch`` that picked a parameter-free op."""
    ops = [d.options[c] for d, c in zip(space.decisions, arch.choices)
           if KNOWN_OPS.intersection(d.options)]
    return sum(o in PARAM_FREE for o in ops) / len(ops) if ops else math.nan


def help_table(space: Any, device: str) -> tuple[Callable[[Any], float] | None, str]:
    """(latency of an arch in the HELP table on ``device``, or None; why not)."""
    if space.name != "nb201":
        return None, "no HELP table for this space"
    try:
        from hwnas.evaluators.latency_sources import TableLatency

        table = TableLatency(space, device)
    except Exception as error:  # noqa: BLE001 - missing data or device: the column is NaN
        return None, f"HELP latency unavailable ({str(error)[:160]})"
    return (lambda arch: float(table.latency_ms([arch])[0])), f"HELP {device} ({table.path})"


class SpaceBench:
    """A space's meter, predictor, budget and HELP table, and the data split per seed."""

    def __init__(self, name: str, args: argparse.Namespace, store: Any, root: Path) -> None:
        import spaces
        from hwnas.pipeline.measuring import DeviceMeter

        self.space = spaces.get(name, **SPACE_OPTIONS[name])
        self.args, self.root = args, root
        self.meter = DeviceMeter(self.space, DEVICE, store, quick=args.quick, progress=False,
                                 input_size=args.input_size)
        self._data: dict[int, Any] = {}
        self.help, self.help_why = help_table(self.space, args.help_device)

    def data(self, seed: int) -> Any:
        """The dataset split of ``seed`` (the one train_for_export trains and validates on)."""
        if seed not in self._data:
            from hwnas.evaluators import datasets

            self._data[seed] = datasets.load(self.args.dataset, self.args.input_size,
                                             self.space.in_channels, root=self.args.data_root,
                                             max_samples=self.args.max_samples, seed=seed)
        return self._data[seed]

    def fit(self) -> None:
        """Profile random architectures on the device, fit the MLP ensemble, fix the budget."""
        from latency import predictors

        began = time.perf_counter()
        archs = self.space.sample_many(self.args.profile, rng=12345)
        ms = self.meter.measure(archs, "profile")
        self.predictor = predictors.create("mlp", self.space, seed=0).fit(archs, ms)
        self.budget = float(np.quantile(ms, self.args.budget_quantile))
        fitted = np.asarray(self.predictor.predict(archs), dtype=float)
        within = float(np.mean(np.abs(fitted / ms - 1) <= 0.1))
        say(f"{self.space.key}: profiled {len(archs)} random archs on {self.meter.label} in "
            f"{time.perf_counter() - began:.0f} s: min {ms.min():.4g}, median "
            f"{np.median(ms):.4g}, max {ms.max():.4g} ms; MLP ensemble fitted (in-sample "
            f"within +-10%: {100 * within:.0f}%); budget = {100 * self.args.budget_quantile:.0f}th "
            f"percentile = {self.budget:.4g} ms")
        say(f"  {self.help_why}")

    def measure_file(self, arch: Any, module: Any, data: Any, accuracy: float, path: Path
                     ) -> float:
        """Export the trained ``module`` to ``path`` and time the file (ms)."""
        from hwnas.export import export_arch
        from hwnas.pipeline.measuring import NetworkToTime

        export_arch(self.space, arch, path, model=module, num_classes=data.num_classes,
                    input_size=self.args.input_size, measure=False, accuracy=accuracy,
                    data=data)
        measured = self.meter.measure_files([NetworkToTime(arch, path, lambda: module)])
        return float(measured[0].latency_ms)


def one_search(bench: SpaceBench, method: str, seed: int, budgeted: bool) -> dict[str, Any]:
    """Search, train the derived cell alone, export and time it: one CSV row."""
    import torch

    from hwnas.export_train import train_for_export
    from hwnas.oneshot import make_supernet
    from hwnas.oneshot.differentiable import LatencyTerm
    from hwnas.strategies.cell_search import (ALPHA_LR, BATCH_SIZE, LATENCY_WEIGHT,
                                              search_split)

    args, space = bench.args, bench.space
    data = bench.data(seed)
    split = search_split(data)
    torch.manual_seed(seed)
    supernet = make_supernet(space, data.num_classes, args.input_size)
    latency = (LatencyTerm(bench.predictor, bench.budget, "hinge", LATENCY_WEIGHT)
               if budgeted else None)
    settings = {"epochs": args.search_epochs, "seed": seed, "alpha_lr": ALPHA_LR,
                "batch_size": max(2, min(BATCH_SIZE, len(split.y_train)))}
    began = time.perf_counter()
    found = run_search(method, supernet, split, latency, settings)
    wall = time.perf_counter() - began
    del supernet
    arch = found.arch
    predicted = float(np.asarray(bench.predictor.predict([arch]), dtype=float).reshape(-1)[0])
    began = time.perf_counter()
    trained = train_for_export(space, arch, args.dataset, args.train_epochs,
                               input_size=args.input_size, root=args.data_root, seed=seed,
                               threads=args.threads, max_samples=args.max_samples)
    train_s = time.perf_counter() - began
    tag = f"{space.name}-{method}-s{seed}-{'budget' if budgeted else 'none'}"
    measured = bench.measure_file(arch, trained.module, trained.data, trained.accuracy,
                                  bench.root / "files" / f"{tag}.onnx")
    return {"space": space.key, "method": method, "seed": seed,
            "budget_ms": bench.budget if budgeted else None, "search_s": wall,
            "param_free": param_free_share(space, arch), "predicted_ms": predicted,
            "expected_ms": found.expected_ms, "accuracy": trained.accuracy,
            "measured_ms": measured, "meets_budget": bool(measured <= bench.budget),
            "help_ms": bench.help(arch) if bench.help is not None else math.nan,
            "train_s": train_s, "arch": space.to_string(arch)}


def show_row(r: dict[str, Any]) -> str:
    budget = "none" if r["budget_ms"] is None else f"{r['budget_ms']:.4g} ms"
    help_ms = "" if not np.isfinite(r["help_ms"]) else f", HELP {r['help_ms']:.3g} ms"
    meets = "meets" if r["meets_budget"] else "OVER"
    return (f"  {r['method']:<9} seed {r['seed']} budget {budget}: search {r['search_s']:.1f} s, "
            f"param-free {100 * r['param_free']:.0f}%, predicted {r['predicted_ms']:.4g} ms, "
            f"measured {r['measured_ms']:.4g} ms ({meets} the budget{'' if r['budget_ms'] else ', not asked'}"
            f"){help_ms}, accuracy {r['accuracy']:.1f}% (trained alone {r['train_s']:.0f} s)\n"
            f"    {r['arch']}")


def _budget_label(b: Any) -> str:
    return "none" if b is None or (isinstance(b, float) and math.isnan(b)) else f"{b:.4g}"


SUMMED = (("accuracy", "accuracy %", 1.0, ".1f"), ("measured_ms", "measured ms", 1.0, ".4g"),
          ("param_free", "param-free %", 100.0, ".0f"), ("search_s", "search s", 1.0, ".0f"))


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (space, method, budget): mean and std over seeds, and the budgets met (numbers)."""
    rows = []
    frame = frame.assign(budget=frame["budget_ms"].map(_budget_label))
    for (space, method, budget), g in frame.groupby(["space", "method", "budget"], sort=False):
        row: dict[str, Any] = {"space": space, "method": method, "budget_ms": budget,
                               "n": len(g), "met": int(g["meets_budget"].sum())}
        for col, _, scale, _ in SUMMED:
            v = scale * g[col].astype(float)
            row[f"{col}_mean"], row[f"{col}_std"] = float(v.mean()), float(v.std(ddof=0))
        rows.append(row)
    return pd.DataFrame(rows)


def show_summary(table: pd.DataFrame) -> str:
    """``summary`` as printed: mean +- std per column."""
    show = table[["space", "method", "budget_ms", "n"]].copy()
    for col, title, _, fmt in SUMMED:
        show[title] = [f"{m:{fmt}} +- {s:{fmt}}"
                       for m, s in zip(table[f"{col}_mean"], table[f"{col}_std"])]
    show["met"] = [f"{m}/{n}" for m, n in zip(table["met"], table["n"])]
    return show.to_string(index=False)


def targets(frame: pd.DataFrame) -> list[str]:
    out = []
    slow = frame[frame["search_s"] >= SEARCH_LIMIT_S]
    out.append(f"every search < {SEARCH_LIMIT_S / 60:.0f} min: "
               f"{'met' if slow.empty else 'NOT met'} (longest {frame['search_s'].max():.0f} s"
               f"{'' if slow.empty else f'; {len(slow)} over'})")
    frame = frame.assign(budget=frame["budget_ms"].map(
        lambda b: "none" if _budget_label(b) == "none" else "budget"))
    for new in ("entrannas", "toponas"):
        groups = frame[frame["method"].isin([new, "darts"])].groupby(["space", "budget"])
        judged = False
        for (space, b), g in groups:
            mine, base = g[g["method"] == new], g[g["method"] == "darts"]
            if mine.empty or base.empty:
                continue
            judged = True
            acc, ref = mine["accuracy"].mean(), base["accuracy"].mean()
            pf = mine["param_free"].mean()
            ok = acc >= ref and pf <= ACC_FLOOR_PF
            out.append(f"{new} >= darts accuracy with <= 50% param-free ops ({space}, {b}): "
                       f"{'met' if ok else 'NOT met'} ({acc:.1f}% vs {ref:.1f}%, "
                       f"param-free {100 * pf:.0f}%)")
        if not judged:
            out.append(f"{new} >= darts accuracy with <= 50% param-free ops: not evaluated "
                       f"({new} and darts did not both run on a space)")
    asked = frame[frame["budget"] == "budget"]
    if asked.empty:
        out.append("every budgeted derived cell meets the budget: not evaluated (no budgeted runs)")
    else:
        met = int(asked["meets_budget"].sum())
        out.append(f"every budgeted derived cell meets the budget (measured): "
                   f"{'met' if met == len(asked) else 'NOT met'} ({met}/{len(asked)})")
    return out


def main(argv: list[str] | None = None) -> int:
    global _LOG
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", nargs="+", default=["nb201", "darts"],
                        choices=sorted(SPACE_OPTIONS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budgets", nargs="+", choices=("none", "budget"),
                        default=["none", "budget"],
                        help="searches without / with the latency term (default both)")
    parser.add_argument("--search-epochs", type=int, default=10)
    parser.add_argument("--train-epochs", type=int, default=5,
                        help="standalone training of each derived cell")
    parser.add_argument("--dataset", default="cluttered-digits")
    parser.add_argument("--data-root", default=None, help="folder holding CIFAR (cifar10)")
    parser.add_argument("--max-samples", type=int, default=3000,
                        help="images loaded (train + validation); 0 = all")
    parser.add_argument("--input-size", type=int, default=16)
    parser.add_argument("--profile", type=int, default=40,
                        help="random archs timed per space to fit the latency predictor")
    parser.add_argument("--budget-quantile", type=float, default=0.3)
    parser.add_argument("--help-device", default="gold_6226",
                        help="HELP table column for nb201's help_ms")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("HWNAS_THREADS", "2")),
                        help="torch threads for search and training (timing: one thread)")
    parser.add_argument("--out", type=Path, default=None, help="folder for CSVs, log, files")
    parser.add_argument("--quick", action="store_true", help="tiny everything (smoke run)")
    parser.add_argument("--verbose", action="store_true", help="the searches' per-epoch log")
    args = parser.parse_args(argv)
    if args.quick:
        args.search_epochs, args.train_epochs = 1, 1
        args.profile, args.max_samples = min(args.profile, 8), min(args.max_samples or 400, 400)
    if args.max_samples == 0:
        args.max_samples = None
    if not 0.0 < args.budget_quantile < 1.0:
        parser.error("--budget-quantile must be in (0, 1)")
    if args.profile < 4:
        parser.error("--profile needs at least 4 architectures")

    import torch

    from latency.store import MeasurementStore

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s")
    torch.set_num_threads(args.threads)
    root = args.out or Path(tempfile.mkdtemp(prefix="cell_search-"))
    (root / "files").mkdir(parents=True, exist_ok=True)
    _LOG = root / "cell_search.log"
    status = available_methods(args.methods)
    say(f"cell search benchmark: {', '.join(args.spaces)} x {', '.join(args.methods)} x seeds "
        f"{' '.join(map(str, args.seeds))} x budgets {', '.join(args.budgets)}; "
        f"{args.dataset} at {args.input_size} px, {args.max_samples or 'all'} images, "
        f"{args.search_epochs} search / {args.train_epochs} training epochs, {args.threads} "
        f"torch threads; files timed on {DEVICE} (one thread); out {root}")
    for m, why in status.items():
        if why:
            say(f"  {m}: skipped, {why}")
    say(f"load average before: {_load()}")
    rows: list[dict[str, Any]] = []
    csv = root / "cell_search.csv"
    with MeasurementStore(root / "latency.sqlite") as store:
        for name in args.spaces:
            bench = SpaceBench(name, args, store, root)
            bench.fit()
            for method in args.methods:
                if status[method]:
                    continue
                why = method_fits_space(method, bench.space)
                if why:
                    say(f"{bench.space.key} / {method}: skipped ({why})")
                    continue
                say(f"\n{bench.space.key} / {method}: load average before {_load()}")
                for seed in args.seeds:
                    for b in args.budgets:
                        row = one_search(bench, method, seed, b == "budget")
                        rows.append(row)
                        say(show_row(row))
                        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(csv, index=False)
                say(f"{bench.space.key} / {method}: load average after {_load()}")
    say(f"\nload average after: {_load()}")
    if not rows:
        say("no searches ran")
        return 1
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    table = summary(frame)
    table.to_csv(root / "summary.csv", index=False)
    say("\nsummary per (space, method, budget): mean +- std over seeds; accuracy of the derived "
        f"cell trained alone ({args.train_epochs} epoch(s)), its ONNX file timed on {DEVICE}; met = "
        "files within the budget (for 'none' rows: within the space's budget though not asked)")
    say(show_summary(table))
    say("\ntargets:")
    for line in targets(frame):
        say(f"  {line}")
    say(f"\nrows: {csv}; summary: {root / 'summary.csv'}; log: {_LOG}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
