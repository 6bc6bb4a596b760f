"""Print and plot the Pareto front of a finished (or interrupted) search run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hwnas.cli import _options

COMMAND = "pareto"
ORDER = 45


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by hwnas search")
    parser.add_argument("--plot", metavar="PNG", help="where to draw the front "
                                                      "(default RUN_DIR/pareto.png)")
    parser.add_argument("--all", action="store_true", help="print every evaluation, not just the front")
    _options.json_option(parser)


def _objectives(config: dict[str, Any], path: Path) -> list[Any]:
    from hwnas.objectives import Objective
    from hwnas.runs import RunFolderError

    try:
        objectives = [Objective.from_json(o) for o in config["objectives"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RunFolderError(f"{path} does not describe the run's objectives; it was "
                             f"damaged") from None
    if not objectives:
        raise RunFolderError(f"{path} lists no objectives; it was damaged")
    return objectives


def _pipeline(folder: Any, config: dict[str, Any], plot: Path, as_json: bool = False) -> int:
    """A pipeline run: its front is one network per budget, measured on the device."""
    import pandas as pd

    from hwnas import plots
    from hwnas.objectives import parse_objectives
    from hwnas.runs import read_table

    front = folder.read_front(("k", "arch", "meets_budget"),
                              ("budget_ms", "accuracy", "predicted_ms", "measured_ms"))
    if as_json:
        _options.print_json({"run": str(folder.path), "kind": "pipeline",
                             "space": config.get("space"), "front": front})
        return 0
    pd.set_option("display.width", 200)
    print(f"{folder.path}: pipeline run, {config.get('space', '?')}, {len(front)} budget(s)")
    print(front.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    audit = folder / "audit.csv"
    if audit.is_file():
        table = read_table(audit, ("arch",), ("accuracy", "measured_ms"))
        table = table.drop_duplicates("arch").rename(columns={"measured_ms": "latency_ms"})
        path = plots.plot_front(table, parse_objectives(["accuracy", "latency_ms"]), plot,
                                f"{config.get('space', '')} / files measured on the device")
        print(f"plot: {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from hwnas import pareto, plots
    from hwnas.runs import CONFIG, RunFolder
    from spaces.core import check_writable

    folder = RunFolder(args.run_dir)
    config = folder.read_config()
    plot = Path(args.plot) if args.plot else folder / "pareto.png"
    check_writable(plot, create_parent=True)  # before any table is read or drawn
    if "pipeline" in config:
        return _pipeline(folder, config, plot, args.json)
    objectives = _objectives(config, folder / CONFIG)
    history = folder.read_history(("arch",), [o.name for o in objectives])
    front = pareto.front_of(history, objectives)
    space = (config.get("space") or {}).get("key", "?") if isinstance(config.get("space"), dict) \
        else config.get("space", "?")
    strategy = (config.get("strategy") or {}).get("name", "?") \
        if isinstance(config.get("strategy"), dict) else "?"
    if args.json:
        _options.print_json({"run": str(folder.path), "kind": "single", "space": space,
                             "strategy": strategy, "evaluated": len(history),
                             "budgets": [o.budget_text() for o in objectives if o.budget is not None],
                             "front" if not args.all else "history": history if args.all else front})
        return 0
    pd.set_option("display.width", 200)
    print(f"{folder.path}: {space}, strategy {strategy}, "
          f"{len(history)} evaluated, {len(front)} on the front")
    budgets = [o.budget_text() for o in objectives if o.budget is not None]
    if budgets:
        print("budgets: " + ", ".join(budgets))
    print(plots.front_table(history if args.all else front, objectives))
    if len(history):
        path = plots.plot_front(history, objectives, plot, f"{space} / {strategy}")
        print(f"plot: {path}")
    return 0
