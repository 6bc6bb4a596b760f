"""Run one search strategy on one evaluator: a Pareto front of accuracy and latency.

``hwnas search`` is the whole pipeline (profile, fit, search under budgets, retrain,
audit, export); ``hwnas explore`` is one strategy (evolution, random, dpp, nao,
supernet, an Optuna sampler) on one evaluator (``train`` or ``tabular``), with its
latency from a live device, a HELP table column or a fitted predictor. The run
folder holds history.csv, pareto.csv/png, best/arch.json and an Optuna study.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
import sys
from typing import Any

from hwnas.cli import _options

COMMAND = "explore"
ORDER = 41

# Settings that define a run. Their argparse default is None so that, on
# --resume, a setting the user did not type is taken from the stored run.
SETTINGS = ("space", "preset", "evaluator", "dataset", "data_root", "max_samples", "input_size",
            "objective", "budget", "device", "device_table", "predictor", "strategy", "queries",
            "population", "sample_size", "batch", "reward", "epochs", "seed", "sweep", "supernet",
            "space_opt", "supernet_ckpt", "second_order", "memory_buffer", "entropy_weight")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _options.space_options(parser, default="fbnetv2")
    _options.search_options(parser)
    _options.single_search_options(parser)
    from hwnas import executors

    executors.add_arguments(parser)


# ---- settings ---------------------------------------------------------------------------

def resolve_settings(args: argparse.Namespace, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """Typed settings -> stored settings (on resume) -> defaults that depend on the others."""
    s = {k: getattr(args, k, None) for k in SETTINGS}
    if stored:
        for k in SETTINGS:
            if s[k] is None and k in stored:
                s[k] = stored[k]
    if s["objective"] is not None:
        s["objective"] = [n.strip() for item in s["objective"] for n in str(item).split(",") if n.strip()]
    s["space"] = s["space"] or "fbnetv2"
    if s["preset"] is None and s["space"] == "fbnetv2":
        s["preset"] = "tiny"
    s["evaluator"] = s["evaluator"] or ("tabular" if s["space"] == "nb201" else "train")
    tabular = s["evaluator"] == "tabular"
    if s["evaluator"] not in ("oneshot", "smash"):  # these take their checkpoint's dataset
        s["dataset"] = s["dataset"] or ("cifar10" if tabular else "digits")
    s["objective"] = s["objective"] or ["accuracy", "latency_ms"]
    s["budget"] = list(s["budget"] or [])
    needs_latency = "latency_ms" in s["objective"] or any(
        str(b).strip().startswith("latency_ms") for b in s["budget"])
    if needs_latency and not (s["device"] or s["device_table"] or s["predictor"]) and not tabular:
        s["device"] = "ort:cpu"
    # Evolution stays the default: at 100 NB201 queries no strategy reaches a median HV
    # ratio of .99 on both gold_6226 and fpga (optuna:gp .989/.992, dpp .986/.996,
    # evolution .979/.994; benchmarks/results/search_efficiency_summary.csv), and
    # evolution costs ~1 s a run where GP costs ~45 s (once 17 min) and DPP ~30-60 s.
    s["strategy"] = s["strategy"] or ("supernet" if s["supernet"] else "evolution")
    s["queries"] = s["queries"] if s["queries"] is not None else (100 if tabular else 40)
    s["seed"] = s["seed"] if s["seed"] is not None else 0
    if not tabular:
        s["epochs"] = s["epochs"] if s["epochs"] is not None else 2
        if s["population"] is None and s["strategy"] == "evolution":
            s["population"] = 10
        if s["batch"] is None and s["device"]:
            s["batch"] = 8
    return s


def check_numbers(s: dict[str, Any]) -> None:
    """A single search's numeric settings in range, before anything is built or read."""
    from hwnas.cli import _checks

    _checks.count("--queries", s["queries"])
    _checks.count("--max-samples", s["max_samples"])
    _checks.input_size("--input-size", s["input_size"])
    _checks.at_least("--epochs", s["epochs"], 1, 10_000)
    _checks.at_least("--population", s["population"], 2, _checks.MAX_COUNT)
    _checks.count("--sample-size", s["sample_size"])
    _checks.count("--batch", s["batch"])
    _checks.at_least("--sweep", s.get("sweep"), 1, 100)
    _checks.seed("--seed", s["seed"])
    _checks.at_least("--memory-buffer", s.get("memory_buffer"), 1, _checks.MAX_COUNT)
    if s.get("entropy_weight") is not None and not s["entropy_weight"] >= 0:
        from spaces.errors import InvalidOption

        raise InvalidOption(f"--entropy-weight must be at least 0, got {s['entropy_weight']}")


def _space(s: dict[str, Any]):
    import spaces

    kwargs = _options.space_opts(s.get("space_opt") or [])
    if s["preset"]:
        kwargs["preset"] = s["preset"]
    return spaces.get(s["space"], **kwargs), kwargs


def split_strategy_budgets(s: dict[str, Any]) -> tuple[list[str], list[float] | None]:
    """A strategy that takes ``budgets`` (the supernet: one search per budget) gets every
    repeated ``latency_ms<=X`` as its own list, so several budgets trace a front in one
    command; other strategies keep them as objective budgets (where one per metric holds)."""
    from hwnas import strategies
    from hwnas.objectives import parse_budget

    budgets = list(s["budget"] or [])
    cls = strategies.get(s["strategy"])
    if "budgets" not in inspect.signature(cls.__init__).parameters:
        return budgets, None
    latency = [b for b in budgets if parse_budget(b).name == "latency_ms"]
    if len(latency) < 2:
        return budgets, None
    rest = [b for b in budgets if b not in latency]
    return rest, [parse_budget(b).value for b in latency]


def _strategy(s: dict[str, Any], budgets: list[float] | None = None):
    from hwnas import strategies
    from spaces.errors import HwnasError

    cls = strategies.get(s["strategy"])
    accepted = inspect.signature(cls.__init__).parameters
    wanted = {"seed": s["seed"], "batch_size": s["batch"], "population": s["population"],
              "sample_size": s["sample_size"], "reward": s["reward"], "sweep": s.get("sweep"),
              "budgets": budgets, "supernet": s.get("supernet"),
              "second_order": s.get("second_order") or None,
              "memory_buffer": s.get("memory_buffer"), "entropy_weight": s.get("entropy_weight")}
    options = {k: v for k, v in wanted.items() if v is not None and k in accepted}
    ignored = [k for k, v in wanted.items() if v is not None and k not in accepted]
    if any(k in ("population", "sample_size", "reward", "sweep", "supernet", "second_order",
                 "memory_buffer", "entropy_weight") for k in ignored):
        raise HwnasError(f"strategy {s['strategy']!r} takes no "
                         f"{', '.join('--' + k.replace('_', '-') for k in ignored)} option")
    return cls(**options)


def _evaluator(s: dict[str, Any], space, metrics: list[str]):
    from hwnas.evaluators.latency_sources import make_latency_source
    from spaces.errors import HwnasError

    if s["queries"] < 1:
        raise HwnasError(f"--queries must be at least 1, got {s['queries']}")
    need_latency = "latency_ms" in metrics
    if s["evaluator"] == "tabular":
        from hwnas.evaluators.tabular import TabularEvaluator

        if need_latency and not (s["device_table"] or s["predictor"] or s["device"]):
            raise HwnasError("the tabular evaluator needs a latency source for latency_ms: "
                             "--device-table COLUMN, --predictor FILE or --device SPEC")
        latency = make_latency_source(space, table=s["device_table"], predictor=s["predictor"],
                                      device=s["device"], input_size=s["input_size"]) if need_latency else None
        return TabularEvaluator(space, metrics, dataset=s["dataset"], latency=latency,
                                input_size=s["input_size"])
    if s["evaluator"] == "train":
        from hwnas.evaluators import datasets
        from hwnas.evaluators.train import TrainEvaluator

        size = s["input_size"] or space.default_input_size
        data = datasets.load(s["dataset"], size, space.in_channels, root=s["data_root"],
                             max_samples=s["max_samples"], seed=s["seed"])
        latency = make_latency_source(space, table=s["device_table"], predictor=s["predictor"],
                                      device=s["device"], input_size=s["input_size"],
                                      num_classes=data.num_classes) if need_latency else None
        return TrainEvaluator(space, metrics, data, epochs=s["epochs"], seed=s["seed"],
                              latency=latency, input_size=s["input_size"])
    if s["evaluator"] in ("oneshot", "smash"):
        return _oneshot_evaluator(s, space, metrics, need_latency)
    from hwnas import evaluators

    evaluators.get(s["evaluator"])  # raises UnknownName for a typo
    raise HwnasError(f"the CLI cannot configure evaluator {s['evaluator']!r} yet")


def _oneshot_evaluator(s: dict[str, Any], space, metrics: list[str], need_latency: bool):
    """Inherited accuracy from a trained supernet checkpoint (hwnas supernet train), or
    with ``--evaluator smash`` the accuracy with the weights a SMASH hypernetwork
    generates (hwnas supernet train --objective smash)."""
    from hwnas.evaluators import datasets
    from hwnas.evaluators.latency_sources import make_latency_source
    from hwnas.oneshot.checkpoint import objective_name, read_meta
    from hwnas.oneshot.evaluate import OneShotEvaluator
    from spaces.errors import HwnasError, Incompatible

    which = s["evaluator"]
    path = s.get("supernet_ckpt")
    if not path:
        train = "hwnas supernet train" + (" --objective smash" if which == "smash" else "")
        raise HwnasError(f"--evaluator {which} needs a trained supernet: --supernet-ckpt FILE "
                         f"({train} ... -o FILE)")
    if not Path(path).is_file():
        raise HwnasError(f"--supernet-ckpt {path} not found")
    meta = read_meta(path)
    trained = objective_name(meta)
    if which == "smash" and trained != "smash":
        raise Incompatible(f"--evaluator smash needs a checkpoint of hwnas supernet train "
                           f"--objective smash, but {path} was trained with the {trained} "
                           f"objective: evaluate it with --evaluator oneshot")
    if which == "oneshot" and trained == "smash":
        raise Incompatible(f"{path} holds a SMASH hypernetwork, whose candidates' weights are "
                           f"generated, not shared: evaluate it with --evaluator smash")
    size = s["input_size"] or int(meta["input_size"])
    data = datasets.load(s["dataset"] or meta["dataset"], size, space.in_channels,
                         root=s["data_root"], max_samples=s["max_samples"], seed=s["seed"])
    latency = make_latency_source(space, table=s["device_table"], predictor=s["predictor"],
                                  device=s["device"], input_size=s["input_size"],
                                  num_classes=data.num_classes) if need_latency else None
    if which == "smash":
        from hwnas.oneshot.smash import SmashEvaluator

        return SmashEvaluator.from_checkpoint(path, space, metrics, data, latency=latency,
                                              input_size=size, seed=s["seed"])
    return OneShotEvaluator.from_checkpoint(path, space, metrics, data, latency=latency,
                                            input_size=size, seed=s["seed"])


def build_evaluator(s: dict[str, Any], metrics: tuple[str, ...]):
    """The evaluator from the settings alone: picklable as ``partial(build_evaluator, s)``,
    so an executor's workers rebuild it instead of receiving live tensors and sessions."""
    space, _ = _space(s)
    return _evaluator(s, space, list(metrics))


def best_record(result, space, space_kwargs: dict, evaluator) -> dict[str, Any] | None:
    """``best/arch.json``: everything needed to rebuild and export the chosen network."""
    row = result.best()
    if row is None:
        return None
    arch = space.from_string(str(row["arch"]))
    return {
        "space": space.name, "space_kwargs": space_kwargs, "space_key": space.key,
        "choices": list(arch.choices), "arch": str(row["arch"]),
        "metrics": {o.name: float(row[o.name]) for o in result.objectives},
        "num_classes": getattr(evaluator, "num_classes", None) or space.default_num_classes,
        "input_size": getattr(evaluator, "input_size", None) or space.default_input_size,
        "chosen_by": f"best {result.objectives[0].name} on the feasible Pareto front",
    }


def export_best(run, space, record: dict[str, Any], accuracy_source: str) -> Any:
    """``best/model.onnx`` for latency work: the search keeps no weights, so the file holds
    random weights, is stamped ``trained=false`` and carries no accuracy of its own (the
    search's metrics are kept, labelled with where they come from). ``hwnas export RUN
    --train DATASET`` makes a trained file."""
    from spaces import Arch
    from spaces.errors import HwnasError

    try:
        from hwnas.export import export_arch
    except ImportError as err:
        raise HwnasError("--export-onnx needs hwnas.export, which this installation lacks") from err
    arch = Arch(space.key, tuple(record["choices"]))
    return export_arch(space, arch, run.best_model_path, num_classes=record["num_classes"],
                       input_size=record["input_size"], untrained=True,
                       space_kwargs=record["space_kwargs"],
                       metadata={**record, "accuracy_source": accuracy_source})


# ---- the verb ------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    import functools

    import torch

    from hwnas import executors, plots
    from hwnas.evaluators.cache import CachedEvaluator
    from hwnas.objectives import (check_feasible, check_jointly_feasible, metric_names,
                                  parse_objectives)
    from hwnas.runs import RunFolder, RunFolderError, default_run_dir

    torch.set_num_threads(1)
    if args.resume and not args.out:
        raise RunFolderError("--resume needs --out RUN_DIR, the run to continue")
    run_dir = RunFolder(args.out or default_run_dir())
    stored = None
    if args.resume and (run_dir.path / "config.json").is_file():
        stored = run_dir.read_config().get("settings")
    s = resolve_settings(args, stored)
    check_numbers(s)

    # Everything that can fail on bad input happens before the folder is touched.
    space, space_kwargs = _space(s)
    objective_budgets, strategy_budgets = split_strategy_budgets(s)
    objectives = parse_objectives(s["objective"], objective_budgets)
    strategy = _strategy(s, strategy_budgets)
    check_space = getattr(strategy, "check_space", None)
    if callable(check_space):  # a strategy for some spaces only says so before anything is built
        check_space(space)
    evaluator = _evaluator(s, space, metric_names(objectives))
    executor = None
    try:
        check_evaluator = getattr(strategy, "check_evaluator", None)
        if callable(check_evaluator):  # e.g. rsps / enas need a supernet (enas: its controller)
            check_evaluator(evaluator)
        check_feasible(objectives, evaluator.best_possible())
        budgeted = [o.name for o in objectives if o.budget is not None]
        if len(budgeted) > 1:
            check_jointly_feasible(objectives, evaluator.whole_space(budgeted), space.key)
        config = {
            "settings": s,
            "space": {"name": space.name, "kwargs": space_kwargs, "key": space.key},
            "evaluator": evaluator.describe(),
            "objectives": [o.to_json() for o in objectives],
            "strategy": {"name": strategy.name, "options": strategy.options()},
            "queries": s["queries"],
        }
        if args.resume and stored is not None:
            run_dir.check_resumable(config)
            if (run_dir / "history.csv").is_file():
                run_dir.read_history()  # a damaged table fails here, the folder untouched
        elif not args.resume:
            run_dir.check_new()
        run_dir.check_writable()
        executor = executors.from_args(args)  # may fail (Ray missing): the folder is still untouched
        evaluator = executors.parallel(evaluator, functools.partial(build_evaluator, s), executor)
        cached = CachedEvaluator(evaluator, run_dir.cache_path)  # a damaged cache fails here
        run_dir.start(config, resume=args.resume)
        replay = len(cached)
        if replay:
            print(f"resuming {run_dir.path}: {replay} evaluations cached", file=sys.stderr)

        study = _StudyWriter(run_dir, objectives, space, config)

        def save(ctx) -> None:
            run_dir.write_history(ctx.history())
            run_dir.write_front(ctx.front())
            study.maybe(ctx.history())

        result = strategy.run(space, cached, objectives, s["queries"],
                              progress=not args.no_progress, on_batch=save)
    finally:
        evaluator.close()
        if executor is not None:
            executor.close()

    run_dir.write_history(result.history)
    run_dir.write_front(result.front)
    study.write(result.history)
    if "supernet" in result.info:  # per budget: predicted vs measured latency, search trace
        run_dir.write_json("supernet.json", result.info["supernet"])
    title = f"{space.key} / {s['evaluator']}:{s['dataset']} / {strategy.name} / {len(result.history)} archs"
    plots.plot_front(result.history, objectives, run_dir / "pareto.png", title)
    record = best_record(result, space, space_kwargs, evaluator)
    run_dir.write_best(record)
    exported = None
    if args.export and record is not None:
        from hwnas.cli.export_cmd import _accuracy_source

        exported = export_best(run_dir, space, record, _accuracy_source(config))
    if args.json:
        _options.print_json({"run": str(run_dir.path), "evaluated": len(result.history),
                             "new_evaluations": cached.queries, "best": record,
                             "front": result.front})
        return 0
    print(f"\nPareto front ({len(result.front)} of {len(result.history)} evaluated, "
          f"{cached.queries} new evaluations):")
    print(plots.front_table(result.front, objectives))
    if record is not None:
        print(f"best: {record['arch']}  ({record['chosen_by']})")
    if exported is not None:
        print(f"exported {run_dir.best_model_path} (random weights, for latency work: "
              f"hwnas export {run_dir.path} --train DATASET makes a trained file)")
    if run_dir.study_path.is_file():
        print(f"Optuna study: {run_dir.study_path}  "
              f"(view it: optuna-dashboard sqlite:///{run_dir.study_path})")
    print(f"run folder: {run_dir.path}")
    return 0


class _StudyWriter:
    """Writes RUN/study.db (hwnas.optuna_study) at the end, and during a run at most every
    ``every_s`` seconds: adding trials to an SQLite study costs ~30 ms each, which a
    table-lookup search must not pay after every batch."""

    every_s = 30.0

    def __init__(self, run_dir, objectives, space, config: dict[str, Any]) -> None:
        import time

        from hwnas.optuna_study import latency_source

        self.run_dir, self.objectives, self.space = run_dir, objectives, space
        self.attrs = {"space": space.key, "strategy": config["strategy"],
                      "objectives": config["objectives"], "evaluator": config["evaluator"]}
        self.source = latency_source(config["evaluator"])
        self.last = time.monotonic()

    def write(self, history) -> None:
        import time

        if len(history):
            self.run_dir.write_study(history, self.objectives, self.space, self.attrs, self.source)
        self.last = time.monotonic()

    def maybe(self, history) -> None:
        import time

        if time.monotonic() - self.last >= self.every_s:
            self.write(history)
