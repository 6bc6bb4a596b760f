"""Print and plot the Pareto front of a finished (or interrupted) search run."""

from __future__ import annotations

import argparse

COMMAND = "pareto"
ORDER = 45


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by hwnas search")
    parser.add_argument("--plot", metavar="PNG", help="where to draw the front "
                                                      "(default RUN_DIR/pareto.png)")
    parser.add_argument("--all", action="store_true", help="print every evaluation, not just the front")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from hwnas import pareto, plots
    from hwnas.objectives import Objective
    from hwnas.runs import RunFolder

    folder = RunFolder(args.run_dir)
    config = folder.read_config()
    objectives = [Objective.from_json(o) for o in config["objectives"]]
    history = folder.read_history()
    front = pareto.front_of(history, objectives)
    pd.set_option("display.width", 200)
    print(f"{folder.path}: {config['space']['key']}, strategy {config['strategy']['name']}, "
          f"{len(history)} evaluated, {len(front)} on the front")
    budgets = [o.budget_text() for o in objectives if o.budget is not None]
    if budgets:
        print("budgets: " + ", ".join(budgets))
    print(plots.front_table(history if args.all else front, objectives))
    path = plots.plot_front(history, objectives, args.plot or folder / "pareto.png",
                            f"{config['space']['key']} / {config['strategy']['name']}")
    print(f"plot: {path}")
    return 0
