"""Search for accurate networks that meet latency budgets on a device: the whole pipeline.

With no arguments: profile fbnetv2 tiny on ort:cpu, fit the MLP-ensemble
predictor, profile where it is unsure, search with the supernet under several
latency budgets, retrain and time the chosen networks as the files that ship,
audit the predictor, export the front as verified ONNX (hwnas.pipeline).
One strategy on one evaluator is ``hwnas explore``; ``--no-pipeline`` and the
single-search options still reach it from here for one release, with a notice.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hwnas.cli import _options

COMMAND = "search"
ORDER = 40

log = logging.getLogger(__name__)

PIPELINE_SETTINGS = {"space": "space", "preset": "preset", "dataset": "dataset",
                     "data_root": "data_root", "max_samples": "max_samples", "device": "device",
                     "strategy": "strategy", "sweep": "sweep", "budget": "budgets", "db": "db",
                     "predictor": "predictor", "initial": "initial", "holdout": "holdout",
                     "active_measurements": "active_measurements", "active_batch": "active_batch",
                     "target": "target", "pool": "pool", "queries": "queries", "epochs": "epochs",
                     "search_epochs": "search_epochs", "retrain_epochs": "retrain_epochs",
                     "max_rounds": "max_rounds", "margin": "margin", "supernet": "supernet",
                     "references": "references",
                     "seed": "seed"}
SINGLE_SEARCH_ONLY = ("evaluator", "device_table", "objective", "population", "sample_size",
                      "batch", "reward", "input_size", "export", "space_opt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _options.space_options(parser, default="fbnetv2")
    _options.search_options(parser)
    g = parser.add_argument_group("pipeline (see hwnas.pipeline)")
    g.add_argument("--db", metavar="FILE", help="measurement store to use and extend "
                                                "(default RUN_DIR/lat.sqlite)")
    g.add_argument("--initial", type=int, help="random architectures profiled to fit the "
                                               "predictor (default 40; 15 with reference devices)")
    g.add_argument("--holdout", type=int, help="random architectures profiled to judge it (default 30)")
    g.add_argument("--active-measurements", type=int, metavar="N", dest="active_measurements",
                   help="at most N more measurements chosen by the ensemble's spread (default 60)")
    _options.alias(g, "--active-budget", "active_measurements", type=int)
    g.add_argument("--active-batch", type=int, help="measurements per active round (default 15)")
    g.add_argument("--target", type=float, help="held-out share within +-10%% that ends active "
                                                "profiling (default 0.9)")
    g.add_argument("--pool", type=int, help="candidates active profiling chooses from (default 2000)")
    g.add_argument("--search-epochs", type=int, help="supernet warm-up and per-budget epochs (default 2)")
    g.add_argument("--retrain-epochs", type=int, help="standalone training of each chosen network "
                                                      "(default 5)")
    g.add_argument("--references", metavar="LIST",
                   type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
                   help="reference devices of --db to learn from, e.g. ort:cpu,help:gold_6226 "
                        "(default: every device of the store with this space and input size)")
    g.add_argument("--max-rounds", type=int, metavar="N",
                   help="search -> train -> time the file -> refit rounds per latency budget "
                        "(default 3)")
    g.add_argument("--margin", type=float, metavar="SHARE",
                   help="a network meets budget B when its file measures at most B/(1+SHARE) "
                        "(default: the host's drift measured during the run, 2-20%%)")
    g.add_argument("--drift-correction", action="store_true",
                   help="train the predictor on reference-corrected latencies (off: measured to "
                        "add noise on ort:cpu)")
    g.add_argument("--quick", action="store_true", dest="quick_timing",
                   help="time with a few calls only (smoke tests; numbers not worth keeping)")
    _options.alias(g, "--quick-timing", "quick_timing", action="store_true")
    g = parser.add_argument_group("deprecated: single searches are `hwnas explore`")
    g.add_argument("--no-pipeline", action="store_true",
                   help="run `hwnas explore` with these options (prints a notice)")
    # the single-search options, so that old command lines keep working for one release
    single = argparse.ArgumentParser(add_help=False)
    _options.single_search_options(single)
    for action in single._actions:
        action.help = argparse.SUPPRESS
        g._add_action(action)
    from hwnas import executors

    executors.add_arguments(parser)


def uses_pipeline(args: argparse.Namespace) -> bool:
    """The pipeline unless a single search is asked for (or the run folder is one)."""
    from hwnas.pipeline import stored_settings

    if args.resume and args.out and (Path(args.out) / "config.json").is_file():
        return stored_settings(args.out) is not None
    if args.no_pipeline or args.export:
        return False
    if args.strategy not in (None, "supernet", "nao") or args.space == "nb201":
        return False
    if args.evaluator not in (None, "train"):
        return False
    return not any(getattr(args, k, None) for k in SINGLE_SEARCH_ONLY if k != "evaluator")


def run_pipeline(args: argparse.Namespace) -> int:
    from hwnas.pipeline import Pipeline, PipelineSettings, stored_settings
    from spaces.errors import HwnasError

    if getattr(args, "executor", None) not in (None, "local"):
        raise HwnasError("the pipeline runs in this process; --executor is for `hwnas explore` "
                         "and `hwnas profile`")
    typed = {field: getattr(args, name, None) for name, field in PIPELINE_SETTINGS.items()}
    if args.quick_timing:
        typed["quick_timing"] = True
    if args.drift_correction:
        typed["drift_correction"] = True
    stored = stored_settings(args.out) if args.resume else None
    settings = PipelineSettings.merged(typed, stored)
    quiet = getattr(args, "quiet", 0) > 0 or args.json
    show = (lambda text: None) if quiet else (lambda text: print(text, flush=True))
    result = Pipeline(settings, args.out, resume=args.resume,
                      progress=not (args.no_progress or quiet), log=show).run()
    if args.json:
        _options.print_json({"run": str(result.paths.get("run", args.out or "")),
                             "front": result.front})
    return 0


def run(args: argparse.Namespace) -> int:
    if uses_pipeline(args):
        return run_pipeline(args)
    resuming = args.resume and args.out and (Path(args.out) / "config.json").is_file()
    if not resuming:  # continuing an explore run folder is no deprecated use
        print("hwnas: single searches are `hwnas explore` now; `hwnas search --no-pipeline` and "
              "single-search options here are deprecated and go in the next release",
              file=sys.stderr)
    from hwnas.cli import explore_cmd

    return explore_cmd.run(args)
