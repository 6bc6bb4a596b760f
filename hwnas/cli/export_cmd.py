"""Export an architecture (or a search run's best / a Pareto pick) as a verified ONNX model.

``hwnas export --space fbnet --arch 7-8-1-... -o model.onnx`` builds the network
(optionally loads ``--weights`` or trains it with ``--train digits``), exports
it, checks it (onnx.checker, ONNX Runtime vs torch at batch 1 and 8), measures
it on ``--device`` and stores all of that in the file's metadata.
``hwnas export RUN_DIR [--pick K]`` exports a search run's best architecture or
row K of its Pareto front; ``hwnas export --inspect model.onnx`` prints the
metadata of an exported file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from spaces.errors import HwnasError

from hwnas.cli import _options

COMMAND = "export"
ORDER = 80


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                        help="a search run folder: export its best/arch.json (or --pick K)")
    what = parser.add_argument_group("what to export")
    what.add_argument("--space", help="space name, e.g. nb201, fbnet, fbnetv2, nao")
    what.add_argument("--arch", help="architecture string of that space")
    what.add_argument("--preset", help="space preset, e.g. fbnetv2's tiny/mobile")
    what.add_argument("--space-opt", action="append", default=[], metavar="KEY=VALUE",
                      dest="space_arg",
                      help="other space constructor option (repeatable), e.g. stem=imagenet or C=8")
    _options.alias(what, "--space-arg", "space_arg", action="append")
    what.add_argument("--pick", type=int, metavar="K",
                      help="with RUN_DIR: row K (0-based) of RUN_DIR/pareto.csv instead of the best")
    what.add_argument("--inspect", metavar="MODEL", help="print the hwnas metadata of an ONNX file "
                                                         "(or check and describe an InstaNAS "
                                                         "folder) and exit")
    what.add_argument("--instanas", action="store_true",
                      help="with RUN_DIR of --strategy instanas: copy its checked InstaNAS folder "
                           "(controller + paths + manifest) to -o FOLDER")
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="PATH",
                     help="ONNX file to write (default with RUN_DIR: RUN_DIR/best/model.onnx, "
                          "or RUN_DIR/pareto-K.onnx with --pick)")
    out.add_argument("--opset", type=int, default=17,
                     help="ONNX opset: 7-20 with the TorchScript exporter, 17-23 with dynamo "
                          "(default 17, what profiling times)")
    out.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto",
                     help="torch.onnx exporter; auto = TorchScript (as profiling), falling back "
                          "to dynamo (default)")
    out.add_argument("--input-size", type=int, default=None, metavar="PX", dest="input",
                     help="input resolution (default: the space's own)")
    _options.alias(out, "--input", "input", type=int)
    out.add_argument("--num-classes", type=int, default=None, metavar="N",
                     help="output classes (default: the space's own, or the dataset's with --train)")
    out.add_argument("--int8", action="store_true",
                     help="statically quantize to INT8 (ONNX Runtime, QDQ), calibrated on training "
                          "images; needs --train or a run folder; reports fp32 vs int8 accuracy "
                          "and latency")
    out.add_argument("--bake-preprocessing", action="store_true",
                     help="the graph takes the raw uint8 image (N x H x W x C) and applies the "
                          "recorded preprocessing itself")
    out.add_argument("--fp16", action="store_true",
                     help="also build an fp16 TensorRT engine beside the ONNX file (needs a CUDA GPU "
                          "and the tensorrt extra)")
    out.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    wts = parser.add_argument_group("weights")
    wts.add_argument("--weights", metavar="CKPT", help="state dict (torch.save) to load strictly")
    wts.add_argument("--untrained", action="store_true",
                     help="export random weights (latency work only): stamped trained=false, "
                          "no accuracy")
    wts.add_argument("--train", metavar="DATASET",
                     help="train first: digits (bundled), cifar10/cifar100 (with --data-root) or an "
                          "ImageFolder path")
    wts.add_argument("--epochs", type=int, default=3, help="epochs with --train (default 3)")
    wts.add_argument("--data-root", default=None, help="folder holding CIFAR data for --train")
    wts.add_argument("--seed", type=int, default=0)
    meas = parser.add_argument_group("measurement")
    meas.add_argument("--device", default="ort:cpu", help="device to measure latency on (default ort:cpu)")
    meas.add_argument("--predictor", metavar="PATH", help="latency predictor to compare with the measurement")
    meas.add_argument("--allow-device-mismatch", action="store_true",
                      help="use a --predictor trained on another device than --device")
    meas.add_argument("--no-measure", action="store_true", help="skip the latency measurement")
    meas.add_argument("--quick", action="store_true",
                      help="a few timing calls only (smoke tests; not numbers to keep)")


def _value(text: str) -> Any:
    """``8`` -> 8, ``0.5`` -> 0.5, ``true`` -> True, anything else stays text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def space_kwargs(preset: str | None, pairs: list[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"preset": preset} if preset else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise HwnasError(f"--space-opt takes KEY=VALUE, got {pair!r}")
        kwargs[key.strip()] = _value(value.strip())
    return kwargs


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _inspect(path: str) -> int:
    from hwnas import onnx_meta

    if Path(path).is_dir():  # an InstaNAS folder: its manifest, every file checked
        from hwnas.export.instance_folder import describe

        print_table(describe(path))
        return 0
    print_table(onnx_meta.describe(path))
    return 0


def _run_space(config: dict[str, Any], best: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The space name and kwargs a run searched: best/arch.json's, else config.json's
    ``"space": {"name", "kwargs"}``."""
    if best and isinstance(best.get("space"), str):
        return best["space"], dict(best.get("space_kwargs") or {})
    space = config.get("space")
    if isinstance(space, dict) and isinstance(space.get("name"), str):
        return space["name"], dict(space.get("kwargs") or {})
    if isinstance(space, str):
        return space, {}
    raise HwnasError("the run's config.json does not say which space it searched")


def _pipeline_target(run_dir: Path, config: dict[str, Any], pick: int | None) -> dict[str, Any]:
    """Row ``pick`` of a pipeline run's pareto.csv: its trained weights, its accuracy, and
    the run's dataset (for the preprocessing metadata and INT8 calibration)."""
    import json

    from hwnas import runs
    from hwnas.pipeline.candidates import network_folder

    settings = dict(config["pipeline"])
    path = run_dir / "pareto.csv"
    if not path.is_file():
        raise HwnasError(f"{path} does not exist (the pipeline has not reached its export stage; "
                         f"resume it with hwnas search --out {run_dir} --resume)")
    front = runs.RunFolder(run_dir).read_front(("k", "arch"), ("budget_ms", "accuracy"))
    if pick is None or not 0 <= pick < len(front):
        choices = "; ".join(f"{r.k}: budget {r.budget_ms:.4g} ms, {r.accuracy:.1f}%"
                            for r in front.itertuples())
        what = "choose one with --pick K" if pick is None else f"--pick {pick} is out of range"
        raise HwnasError(f"{run_dir} is a pipeline run with one network per budget; {what} "
                         f"({choices})")
    row = front.iloc[pick]
    folder = network_folder(run_dir, str(row["arch"]))
    result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    kwargs = {"preset": settings["preset"]} if settings.get("preset") else {}
    return {"space": settings["space"], "kwargs": kwargs, "arch": str(row["arch"]),
            "output": run_dir / f"export-{pick}.onnx", "weights": folder / "weights.pt",
            "accuracy": float(result["accuracy"]), "num_classes": result.get("num_classes"),
            "input_size": None, "trained_on": result.get("trained_on"),
            "dataset": {k: settings.get(k) for k in ("dataset", "data_root", "max_samples", "seed")},
            "metadata": {"budget_ms": float(row["budget_ms"]),
                         "metrics": {k: _plain(v) for k, v in row.items() if k not in ("arch", "onnx")}}}


def run_target(run_dir: Path, pick: int | None) -> dict[str, Any]:
    """What to export from a run folder (layout: :mod:`hwnas.runs`): a pipeline run's
    network ``pick``; a single search's best architecture, or row ``pick`` of pareto.csv."""
    from hwnas import runs

    if not run_dir.is_dir():
        raise HwnasError(f"{run_dir} is not a folder")
    folder = runs.RunFolder(run_dir)
    config = folder.read_config()
    if "pipeline" in config:
        return _pipeline_target(run_dir, config, pick)
    best = folder.read_best()
    name, kwargs = _run_space(config, best)
    target = {"space": name, "kwargs": kwargs, "metadata": {},
              "num_classes": None, "input_size": None}
    source = _accuracy_source(config)
    if pick is None:
        if best is None:
            raise HwnasError(f"{run_dir} has no {runs.BEST_ARCH} (the search chose no architecture)")
        if "choices" in best:
            target["arch"] = [int(c) for c in best["choices"]]
        elif "arch" in best:
            target["arch"] = best["arch"]
        else:
            raise HwnasError(f"{run_dir / runs.BEST_ARCH} holds no architecture")
        record = {k: v for k, v in best.items() if k != "accuracy"}
        target.update(output=folder.best_model_path, metadata={**record, "accuracy_source": source},
                      num_classes=best.get("num_classes"), input_size=best.get("input_size"))
        return target
    path = run_dir / runs.PARETO
    front = folder.read_front(("arch",))
    if not 0 <= pick < len(front):
        raise HwnasError(f"--pick {pick} is out of range: {path} has {len(front)} row(s), "
                         f"0..{len(front) - 1}")
    row = front.iloc[pick]
    target.update(arch=str(row["arch"]), output=run_dir / f"pareto-{pick}.onnx",
                  metadata={"metrics": {k: _plain(v) for k, v in row.items() if k != "arch"},
                            "accuracy_source": source})
    if best:
        target.update(num_classes=best.get("num_classes"), input_size=best.get("input_size"))
    return target


def _accuracy_source(config: dict[str, Any]) -> str:
    """Whose accuracy a single search's metrics are: a benchmark table's, or a short
    training run's -- never the exported file's (the search keeps no weights)."""
    evaluator = config.get("evaluator") or {}
    kind = evaluator.get("kind") or evaluator.get("name") or config.get("settings", {}).get("evaluator")
    if kind == "tabular":
        return (f"the benchmark table ({evaluator.get('dataset') or 'tabular'}), not these weights; "
                f"export with --train to get the accuracy of a trained file")
    return "the search's short training of this architecture, not these weights"


def _plain(value: Any) -> Any:
    """numpy scalars from a CSV row as JSON-friendly Python values."""
    return value.item() if hasattr(value, "item") else value


def _target(args: argparse.Namespace) -> dict[str, Any]:
    """Space name and kwargs, arch, default output, sizes and extra metadata, from the
    options or from a run folder."""
    if args.run_dir:
        if args.space or args.arch:
            raise HwnasError("give either RUN_DIR or --space/--arch, not both")
        return run_target(Path(args.run_dir), args.pick)
    if args.pick is not None:
        raise HwnasError("--pick needs a RUN_DIR")
    if not args.space or not args.arch:
        raise HwnasError("give --space and --arch, a RUN_DIR, or --inspect MODEL")
    if not args.output:
        raise HwnasError("give the file to write with -o/--output")
    return {"space": args.space, "kwargs": space_kwargs(args.preset, args.space_arg),
            "arch": args.arch, "output": None, "metadata": {},
            "num_classes": None, "input_size": None}


def _instanas(args: argparse.Namespace) -> int:
    """``hwnas export RUN_DIR --instanas -o FOLDER``: the run's InstaNAS folder, checked
    (every file's SHA-256 against the manifest) and copied atomically."""
    from hwnas.export.instance_folder import copy_instance_folder

    if not args.run_dir or not args.output:
        raise HwnasError("--instanas copies a run's InstaNAS folder: give the run folder of "
                         "hwnas search --strategy instanas and -o FOLDER")
    if args.space or args.arch or args.pick is not None:
        raise HwnasError("--instanas exports the run's whole InstaNAS folder: leave out --space, "
                         "--arch and --pick")
    source = Path(args.run_dir) / "instanas"
    if not source.is_dir():
        raise HwnasError(f"{args.run_dir} has no InstaNAS folder: it was not a finished "
                         f"hwnas search --strategy instanas run")
    manifest = copy_instance_folder(source, args.output)
    print(f"wrote {args.output}: controller + {len(manifest['paths'])} paths, manifest.json "
          f"(SHA-256 of every file); run it with hwnas.export.instance_folder.InstanceRouter")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.inspect:
        if args.run_dir or args.space or args.arch:
            raise HwnasError("--inspect takes only the ONNX file")
        return _inspect(args.inspect)
    if args.instanas:
        return _instanas(args)
    from hwnas.cli import _checks

    if args.weights and args.train:
        raise HwnasError("give either --weights or --train, not both")
    if args.epochs < 1:
        raise HwnasError(f"--epochs must be at least 1, got {args.epochs}")
    _checks.at_least("--epochs", args.epochs, 1, 10_000)
    _checks.num_classes("--num-classes", args.num_classes)
    _checks.input_size("--input-size", args.input)
    _checks.seed("--seed", args.seed)
    _checks.at_least("--pick", args.pick, 0)
    target = _target(args)
    output = Path(args.output or target["output"])

    from hwnas import export

    # Every cheap check first, so bad input fails before minutes of training.
    export.check_opset(args.opset, args.exporter)
    export.check_target(output)
    if args.fp16:
        export.require_tensorrt()
    space = export.resolve_space(target["space"], target["kwargs"])
    arch = export.resolve_arch(space, target["arch"])
    profiler = None
    if not args.no_measure:
        import devices

        plan = devices.TimingPlan.quick() if args.quick else None
        profiler = devices.get(args.device, plan=plan) if plan else devices.get(args.device)

    num_classes = args.num_classes if args.num_classes is not None else target["num_classes"]
    input_size = args.input if args.input is not None else target["input_size"]
    model, extra = None, dict(target["metadata"])
    weights = args.weights or target.get("weights")
    accuracy = target.get("accuracy") if not args.weights else None
    data = None
    if args.train:
        from hwnas.export_train import train_for_export

        print(f"training {space.to_string(arch)} on {args.train} for {args.epochs} epoch(s)...")
        trained = train_for_export(space, arch, args.train, args.epochs, input_size=input_size,
                                   num_classes=num_classes, root=args.data_root, seed=args.seed)
        model, accuracy, weights, data = trained.module, trained.accuracy, None, trained.data
        num_classes = trained.num_classes
        extra.update(trained.deploy_metadata())
    elif target.get("dataset") and weights is not None:
        from hwnas.evaluators import datasets

        spec = target["dataset"]
        data = datasets.load(spec["dataset"], input_size or space.default_input_size,
                             space.in_channels, root=spec.get("data_root"),
                             max_samples=spec.get("max_samples"), seed=spec.get("seed") or 0)
        extra.update(trained=True, trained_on=target.get("trained_on"),
                     accuracy_source="these weights", accuracy_unit="%",
                     accuracy_split=f"validation: {len(data.y_val)} images held out of the "
                                    f"training data (seeded split), never trained on")
    report = export.export_arch(
        space, arch, output, model=model, weights=weights, num_classes=num_classes,
        input_size=input_size, opset=args.opset, device=profiler, predictor=args.predictor,
        accuracy=accuracy, measure=not args.no_measure, exporter=args.exporter,
        allow_device_mismatch=args.allow_device_mismatch,
        space_kwargs=target["kwargs"], metadata=extra, seed=args.seed,
        untrained=args.untrained, data=data, int8=args.int8,
        bake_preprocessing=args.bake_preprocessing)
    if args.fp16:
        engine = export.build_tensorrt_engine(report.path, report.path.with_suffix(".engine"))
    else:
        engine = None
    if args.json:
        print(json.dumps({**report.to_json(), "tensorrt_engine": engine and str(engine)},
                         indent=2, default=str))
    else:
        print_table(report.rows() + ([("TensorRT fp16", str(engine))] if engine else []))
    return 0
