"""Print and plot the front of a finished (or interrupted) run: a single search's Pareto
front, or a pipeline run's one network per budget with what it promises."""

from __future__ import annotations

import argparse

COMMAND = "pareto"
ORDER = 45


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by hwnas search")
    parser.add_argument("--plot", metavar="PNG", help="where to draw the front "
                                                      "(default RUN_DIR/pareto.png)")
    parser.add_argument("--all", action="store_true",
                        help="print every evaluation (pipeline: every audited candidate), "
                             "not just the front")


def _pipeline(args: argparse.Namespace, run: object) -> int:
    import pandas as pd

    from hwnas import plots
    from hwnas.objectives import parse_objectives

    config = __import__("hwnas.runs", fromlist=["RunFolder"]).RunFolder(args.run_dir).read_config()
    front, audit = run.front, run.audit  # type: ignore[attr-defined]
    settings = config["pipeline"]
    print(f"{run.run_dir}: pipeline, {config.get('space')} on {settings.get('device')}, "  # type: ignore[attr-defined]
          f"{len(front)} budget(s), {front['meets_budget'].astype(bool).sum()} met, "
          f"{audit['arch'].nunique()} candidate network(s) measured")
    table = (audit if args.all else front).copy()
    if "meets_budget" in table:
        table["meets_budget"] = ["yes" if bool(m) else "NO" for m in table["meets_budget"]]
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    objectives = parse_objectives(["accuracy", "latency_ms"])
    points = audit.drop_duplicates("arch").rename(columns={"measured_ms": "latency_ms"})
    path = plots.plot_front(points, objectives, args.plot or run.run_dir / "pareto.png",  # type: ignore[attr-defined]
                            f"{config.get('space')} / pipeline / files measured on "
                            f"{settings.get('device')}")
    print(f"plot: {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from hwnas import pareto, plots
    from hwnas.results import SearchRun, load_run

    result = load_run(args.run_dir)
    if not isinstance(result, SearchRun):
        return _pipeline(args, result)
    config, objectives, history = result.config, result.objectives, result.history
    front = pareto.front_of(history, objectives)
    pd.set_option("display.width", 200)
    print(f"{result.run_dir}: {config['space']['key']}, strategy {config['strategy']['name']}, "
          f"{len(history)} evaluated, {len(front)} on the front")
    budgets = [o.budget_text() for o in objectives if o.budget is not None]
    if budgets:
        print("budgets: " + ", ".join(budgets))
    print(plots.front_table(history if args.all else front, objectives))
    path = plots.plot_front(history, objectives, args.plot or result.run_dir / "pareto.png",
                            f"{config['space']['key']} / {config['strategy']['name']}")
    print(f"plot: {path}")
    return 0
