"""Search for accurate networks that meet latency budgets on a device: the whole pipeline.

With no arguments: profile fbnetv2 tiny on ort:cpu, fit the MLP-ensemble
predictor, profile where it is unsure, search with the supernet under several
latency budgets, retrain and time the chosen networks as the files that ship,
audit the predictor, export the front as verified ONNX (hwnas.pipeline). Every
space runs this chain (nb201, fbnet, nao and builder specs with the NAO engine).
One strategy on one evaluator is ``hwnas explore``: its options here are refused
with the explore command to run instead.
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from hwnas.cli import _options

COMMAND = "search"
ORDER = 40

log = logging.getLogger(__name__)

PIPELINE_SETTINGS = {"space": "space", "preset": "preset", "input_size": "input_size",
                     "dataset": "dataset",
                     "data_root": "data_root", "max_samples": "max_samples", "device": "device",
                     "strategy": "strategy", "sweep": "sweep", "budget": "budgets", "db": "db",
                     "predictor": "predictor", "initial": "initial", "holdout": "holdout",
                     "active_measurements": "active_measurements", "active_batch": "active_batch",
                     "target": "target", "pool": "pool", "queries": "queries", "epochs": "epochs",
                     "search_epochs": "search_epochs", "retrain_epochs": "retrain_epochs",
                     "max_rounds": "max_rounds", "margin": "margin", "supernet": "supernet",
                     "references": "references", "supernet_ckpt": "supernet_ckpt",
                     "sampler": "sampler", "supernet_epochs": "supernet_epochs",
                     "search_strategy": "search_strategy",
                     "finetune_epochs": "finetune_epochs", "threads": "threads",
                     "second_order": "second_order", "paths": "instanas_paths",
                     "latency_weight": "latency_weight",
                     "seed": "seed"}
#: Options of a single search (``hwnas explore``) and the flag that sets each.
SINGLE_SEARCH_ONLY = {"no_pipeline": "--no-pipeline", "evaluator": "--evaluator", "device_table": "--device-table",
                      "objective": "--objective", "population": "--population",
                      "sample_size": "--sample-size", "batch": "--proposals",
                      "reward": "--reward", "export": "--export-onnx"}


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
    g = parser.add_argument_group("one-shot engine (--strategy oneshot; see docs/oneshot.md)")
    g.add_argument("--supernet-ckpt", metavar="FILE", help="reuse this trained one-shot supernet "
                                                           "(hwnas supernet train): no training")
    g.add_argument("--sampler", help="how the supernet is trained: sandwich (BigNAS, default), "
                                     "uniform (SPOS), path_dropout (One-Shot), attentive "
                                     "(AttentiveNAS)")
    g.add_argument("--search-strategy", metavar="NAME",
                   help="how the trained supernet is searched: NSGA-II (default), or a strategy: "
                        "rl (NAS-RL/MONAS controller), parsec, rsps (random search with parameter "
                        "sharing), enas (with --sampler enas), evolution, ...")
    g.add_argument("--supernet-epochs", type=int, metavar="N",
                   help="epochs of supernet training (default: 450 steps of 64 images, 5 epochs "
                        "of cluttered-digits)")
    g.add_argument("--finetune-epochs", type=int, metavar="N",
                   help="fine-tune each chosen network's inherited weights for N epochs "
                        "(default 1; 0 ships them as inherited)")
    g.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for supernet training, inherited evaluation and fine-tuning "
                        "(default: every core; latency is always timed with one)")
    g = parser.add_argument_group("instance-aware search (--strategy instanas: the one-shot engine, "
                                  "then a per-image controller; see docs/oneshot.md)")
    g.add_argument("--paths", type=int, metavar="K",
                   help="architectures of the searched front the controller picks from per "
                        "image (default 4)")
    g.add_argument("--latency-weight", type=float, metavar="W",
                   help="reward lost per unit of a path's latency relative to the slowest path's "
                        "(default 0.5; 0: accuracy only)")
    g = parser.add_argument_group("differentiable cell search (--strategy darts|gdas on nb201 "
                                  "or darts; see docs/cell_search.md)")
    g.add_argument("--second-order", action="store_true", default=None,
                   help="darts: DARTS' unrolled (second-order) architecture gradient")
    g = parser.add_argument_group("pipeline rounds")
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
    g = parser.add_argument_group("single searches are `hwnas explore`")
    g.add_argument("--no-pipeline", action="store_true", help=argparse.SUPPRESS)
    # the single-search options are parsed only to name the explore command to run instead
    single = argparse.ArgumentParser(add_help=False)
    _options.single_search_options(single)
    taken = {flag for action in parser._actions for flag in action.option_strings}
    for action in single._actions:
        if taken & set(action.option_strings):  # the pipeline has its own (--supernet-ckpt)
            continue
        action.help = argparse.SUPPRESS
        g._add_action(action)
    from hwnas import executors

    executors.add_arguments(parser)


def single_search_flags(args: argparse.Namespace) -> list[str]:
    """The single-search options given (``hwnas explore``'s, not the pipeline's)."""
    return [flag for dest, flag in SINGLE_SEARCH_ONLY.items() if getattr(args, dest, None)]


def explore_command(args: argparse.Namespace) -> str:
    """The ``hwnas explore`` command line that runs what was asked for."""
    argv = list(getattr(args, "_argv", None) or ["search"])
    if "search" in argv:
        argv = argv[argv.index("search") + 1:]
    return shlex.join(["hwnas", "explore", *[a for a in argv if a != "--no-pipeline"]])


def is_single_search_run(folder: Path) -> bool:
    """A run folder whose config parses and is a single search's (a damaged config is left
    to the pipeline, which names the damage)."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "pipeline" not in config


def refuse_single_search(args: argparse.Namespace) -> None:
    """``hwnas search`` is the pipeline only: a single search's options, or a run folder of
    one, are refused with the explore command that runs them."""
    from spaces.errors import HwnasError

    flags = single_search_flags(args)
    if flags == ["--no-pipeline"]:
        raise HwnasError(f"hwnas search is the pipeline only and --no-pipeline has gone; a "
                         f"single search is `{explore_command(args)}`")
    if flags:
        raise HwnasError(f"hwnas search runs the whole pipeline and {', '.join(flags)} "
                         f"{'is an option' if len(flags) == 1 else 'are options'} of a single "
                         f"search: run `{explore_command(args)}`")
    if args.resume and args.out and is_single_search_run(Path(args.out)):
        raise HwnasError(f"{args.out} is the run folder of a single search: continue it with "
                         f"`{explore_command(args)}`")


def run_pipeline(args: argparse.Namespace) -> int:
    from hwnas.pipeline import Pipeline, PipelineSettings, stored_settings
    from spaces.errors import HwnasError

    if getattr(args, "executor", None) not in (None, "local"):
        raise HwnasError("the pipeline runs in this process; --executor is for `hwnas explore` "
                         "and `hwnas profile`")
    typed = {field: getattr(args, name, None) for name, field in PIPELINE_SETTINGS.items()}
    typed["space_opts"] = _options.space_opts(args.space_opt) or None
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
    refuse_single_search(args)
    return run_pipeline(args)
