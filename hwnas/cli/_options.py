"""Option groups shared by the verbs, so one meaning has one flag name everywhere.

``--space``/``--preset``/``--space-opt``/``--input-size`` name a space the same way in
``profile``, ``search``, ``explore`` and ``export``; ``--out`` is always a run folder and
``-o/--output`` always a file; ``--quick`` always means "time with a few calls";
``--json`` prints the verb's table as JSON, alone on stdout. An older spelling
stays accepted for one release as a hidden alias (:func:`alias`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any


def alias(parser: Any, old: str, dest: str, **kwargs: Any) -> None:
    """Accept ``old`` (a renamed flag) without listing it in --help."""
    parser.add_argument(old, dest=dest, help=argparse.SUPPRESS, **kwargs)


def space_options(parser: Any, *, default: str | None = None) -> Any:
    """--space, --preset, --space-opt, --input-size (dest ``input_size``)."""
    g = parser.add_argument_group("space")
    g.add_argument("--space", help=f"search space{f' (default {default})' if default else ''}, "
                                   "e.g. fbnetv2, fbnet, nb201 (see `hwnas spaces`), or a builder "
                                   "function FILE.py:FUNCTION / MODULE:FUNCTION")
    g.add_argument("--preset", help="space preset (fbnetv2: tiny/mobile; fbnet: its stem)")
    g.add_argument("--space-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="other space constructor option, e.g. C=16 (repeatable)")
    g.add_argument("--input-size", type=int, metavar="PX", help="input resolution (default: the space's)")
    return g


def single_search_options(parser: Any) -> None:
    """The options of one strategy on one evaluator (``hwnas explore``)."""
    g = parser.add_argument_group("how candidates are evaluated")
    g.add_argument("--evaluator", help="train (default), tabular (default for nb201) or oneshot "
                                       "(inherited accuracy from --supernet-ckpt)")
    g.add_argument("--supernet-ckpt", metavar="FILE",
                   help="oneshot: a trained supernet checkpoint (hwnas supernet train)")
    g.add_argument("--device-table", metavar="COLUMN", help="latency from the HELP table column, "
                                                            "e.g. gold_6226, fpga")
    g.add_argument("--objective", action="append", metavar="NAME",
                   help="accuracy, latency_ms, macs, params; repeat or comma-separate "
                        "(default accuracy,latency_ms)")
    g.add_argument("--population", type=int, help="evolution: population size")
    g.add_argument("--sample-size", type=int, help="evolution: tournament size")
    g.add_argument("--proposals", type=int, dest="batch", metavar="N",
                   help="candidates proposed and evaluated together (default 8 when profiling "
                        "live, else the strategy's)")
    alias(g, "--batch", "batch", type=int)
    g.add_argument("--reward", help="one objective with budgets: monas (default), "
                                    "monas-weighted, mnasnet-soft, mnasnet-hard")
    g.add_argument("--memory-buffer", type=int, metavar="N",
                   help="rl, enas: also train the controller to reconstruct the last N sampled "
                        "architectures from its hidden state (the fix of 'Understanding NAS "
                        "Techniques')")
    g.add_argument("--entropy-weight", type=float, metavar="W",
                   help="rl, enas: weight of the controller's entropy bonus (at least 0)")
    g.add_argument("--second-order", action="store_true", default=None,
                   help="darts: DARTS' unrolled (second-order) architecture gradient")
    g.add_argument("--export-onnx", action="store_true", dest="export",
                   help="also write best/model.onnx (random weights, for latency work)")
    alias(g, "--export", "export", action="store_true")


def search_options(parser: Any) -> None:
    """What both the pipeline and a single search take: data, latency source, budgets,
    strategy, run folder."""
    g = parser.add_argument_group("data and latency")
    g.add_argument("--dataset", help="train: digits (default; the pipeline's one-shot engine: "
                                     "cluttered-digits), cluttered-digits (harder, generated), "
                                     "cifar10, cifar100 or an ImageFolder path; tabular: cifar10 "
                                     "(default), cifar100, imagenet16-120")
    g.add_argument("--data-root", help="folder holding CIFAR (nothing is downloaded)")
    g.add_argument("--max-samples", type=int, metavar="N", help="train: use at most N images")
    g.add_argument("--epochs", type=int, help="train: epochs per candidate (default 2)")
    g.add_argument("--device", help="measure latency live on this device, e.g. ort:cpu")
    g.add_argument("--predictor", metavar="PRED.pt", help="latency from a fitted predictor")
    g.add_argument("--budget", action="append", metavar="EXPR",
                   help="a metric limit, e.g. latency_ms<=5, macs<=300M, accuracy>=90; repeatable")
    g = parser.add_argument_group("strategy")
    g.add_argument("--strategy", help="pipeline (search): supernet (fbnetv2's default), oneshot "
                                      "(default where a one-shot supernet exists), nao, or darts / "
                                      "gdas (differentiable cell search on nb201, darts); single "
                                      "searches (explore): random, evolution, dpp, nao, supernet, "
                                      "rl (NAS-RL/MONAS), parsec, and with --evaluator oneshot "
                                      "rsps and enas; or an Optuna sampler: optuna:tpe, "
                                      "optuna:nsga2, optuna:gp")
    g.add_argument("--queries", type=int, metavar="N", help="architectures to evaluate (default 40 "
                                                            "when training, 100 on tables)")
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g.add_argument("--sweep", type=int, metavar="N",
                   help="supernet: N latency budgets spread over the predictor's range")
    g.add_argument("--supernet", choices=("singlepath", "multipath"),
                   help="supernet: one masked block per decision (singlepath, the default) or "
                        "every block option a branch (multipath)")
    run_folder_options(parser)


def run_folder_options(parser: Any) -> None:
    g = parser.add_argument_group("run folder")
    g.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<timestamp>)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out; "
                   "what is cached or stored is not repeated")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    json_option(g)


def json_option(parser: Any) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON (alone on stdout) instead of tables")


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: they become null; numpy scalars become Python numbers."""
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame: its records
        value = value.to_dict("records")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(payload: Any) -> None:
    """The verb's result as one JSON document on stdout (DataFrames as lists of records)."""
    json.dump(_clean(payload), sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")


def option_value(text: str) -> Any:
    """``--space-opt`` values: an int, else a float, else the text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def space_opts(options: list[str]) -> dict[str, Any]:
    """``--space-opt KEY=VALUE`` (repeated) as constructor keywords."""
    from spaces.errors import HwnasError

    kwargs: dict[str, Any] = {}
    for option in options or []:
        key, sep, value = str(option).partition("=")
        if not sep or not key.strip():
            raise HwnasError(f"--space-opt expects KEY=VALUE, got {option!r}")
        kwargs[key.strip()] = option_value(value.strip())
    return kwargs
