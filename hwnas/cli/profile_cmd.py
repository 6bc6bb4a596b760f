"""Measure architectures of a space on a device into a measurement store (resumable), or import tables.

``--model FILE`` measures one model instead (an ONNX or TorchScript file, or
MODULE:FUNCTION returning an nn.Module), stored as space ``model``, arch
``sha256:<hex>`` of the file (hwnas.model_latency).

Architectures are timed in groups: each group is measured in interleaved
rounds (see devices.timing) and its rows are committed together, so a killed
run loses at most one group and re-running the same command skips every
architecture already stored for this device, batch and input shape.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hwnas.cli import _options
from hwnas.cli import _profile_active as profile_active

COMMAND = "profile"
ORDER = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="backend spec, e.g. ort:cpu, torch:cpu, tensorrt:0 "
                                          "(see `hwnas devices`)")
    parser.add_argument("--space", help="search space, e.g. fbnet, nb201 (see `hwnas spaces`), or a "
                                         "builder function FILE.py:FUNCTION / MODULE:FUNCTION")
    parser.add_argument("--model", metavar="MODEL",
                        help="measure this model instead of a space: a .onnx or TorchScript file, or "
                             "MODULE:FUNCTION returning an nn.Module (e.g. "
                             "torchvision.models:mobilenet_v3_small)")
    parser.add_argument("-n", "--num", type=int, default=None, metavar="N",
                        help="number of distinct architectures to sample (with --archs: the first N)")
    parser.add_argument("--db", required=True, metavar="FILE", help="SQLite measurement store")
    parser.add_argument("--archs", metavar="FILE", help="architectures to measure, one string per line")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    _options.alias(parser, "--input", "input", type=int)
    parser.add_argument("--input-size", type=int, default=None, metavar="PX", dest="input",
                        help="input resolution (default: the space's own; --model: the ONNX file's, "
                             "224 for torch models)")
    parser.add_argument("--preset", default=None,
                        help="space preset (fbnetv2: tiny/mobile...; fbnet: its stem, cifar/imagenet)")
    parser.add_argument("--space-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="other space constructor option, e.g. C=16 (repeatable)")
    timing = parser.add_argument_group("timing (defaults: the interleaved CPU protocol)")
    timing.add_argument("--threads", type=int, default=None, help="intra-op threads (default 1)")
    timing.add_argument("--group", type=int, default=10, metavar="G",
                        help="architectures timed together and committed together (default 10)")
    timing.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    timing.add_argument("--calls", type=int, default=None,
                        help="timed calls per network per round (default 40)")
    timing.add_argument("--warmup", type=int, default=None, dest="warmup_iters",
                        help="warm-up calls per network (default 10)")
    timing.add_argument("--warmup-s", type=float, default=None, help="warm-up seconds (default 0.2)")
    timing.add_argument("--max-s", type=float, default=None,
                        help="time cap per network over all rounds, seconds (default 30)")
    timing.add_argument("--statistic", default=None,
                        help="reported statistic: p10 (default), median, mean, min or pNN")
    timing.add_argument("--clock", choices=("wall", "cpu"), default=None,
                        help="wall (default) or cpu: the thread's CPU time, immune to preemption by "
                             "other processes on a shared machine (threads=1 only)")
    timing.add_argument("--quick", action="store_true",
                        help="a few calls only (smoke tests; numbers not worth keeping)")
    active = parser.add_argument_group(
        "active profiling (--active: -n N is the measurement budget; an MLP ensemble chooses "
        "what to measure next where its members disagree most)")
    active.add_argument("--active", action="store_true",
                        help="choose architectures by predictor uncertainty instead of at random")
    active.add_argument("--pool", type=int, default=2000,
                        help="candidate architectures sampled to choose from (default 2000)")
    active.add_argument("--initial", type=int, default=30,
                        help="random architectures measured first (default 30)")
    active.add_argument("--holdout", type=int, default=30,
                        help="random architectures measured to score the predictor (default 30)")
    active.add_argument("--per-round", type=int, default=25, metavar="K",
                        help="architectures chosen and measured per round (default 25)")
    active.add_argument("--target", type=float, default=0.90,
                        help="stop when this share of held-out predictions is within ±10%% "
                             "(default 0.90)")
    active.add_argument("--near-ms", type=float, default=None, metavar="MS",
                        help="prefer candidates predicted near this latency (the search's budget)")
    active.add_argument("--choose", default="diverse",
                        help="diverse (default: relative spread times distance to the round's "
                             "other picks; matched or beat plain spread on every HELP table in "
                             "benchmarks/active_profiling.py), active (highest relative spread), "
                             "typical, typical-diverse, "
                             "proportional, or random (the baseline); see latency.active")
    active.add_argument("-o", "--output", metavar="PRED.pt", dest="save",
                        help="save the final mlp predictor to this file")
    _options.alias(active, "--save", "save")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE",
                        help="import measurements into --db instead of measuring: another store "
                             "(.sqlite), a file written by --export-table (.csv/.parquet) or a HELP "
                             "latency table (shared data); rows already stored are skipped")
    parser.add_argument("--export-table", metavar="FILE", dest="export",
                        help="after profiling/importing (or alone), write the store to FILE (.csv or "
                             ".parquet), device fingerprints included, for --import elsewhere")
    _options.alias(parser, "--export", "export")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _options.json_option(parser)
    from hwnas import executors

    executors.add_arguments(parser)


def load_space(name: str, preset: str | None, options: list[str]) -> Any:
    """``spaces.get`` with --preset mapped onto the space's own keyword (preset or stem)."""
    import spaces
    from spaces.errors import HwnasError

    from hwnas.cli._options import space_opts

    kwargs = space_opts(options)
    if name not in spaces.names():
        spaces.get(name)  # raises UnknownName with the known names
    # --preset is the space's own variant keyword: "preset" (fbnetv2) or "stem" (fbnet).
    attempts = [{**kwargs, key: preset} for key in ("preset", "stem")] if preset else [kwargs]
    error: Exception | None = None
    for attempt in attempts:
        try:
            return spaces.get(name, **attempt)
        except TypeError as err:
            error = err
    raise HwnasError(f"space {name} does not take these options ({error})")


def read_archs(space: Any, path: str) -> list[Any]:
    """Architectures from a file, one string per line (blank lines and # comments skipped)."""
    from spaces.errors import HwnasError, InvalidArchitecture

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise HwnasError(f"cannot read architecture file {path}: {error.strerror or error}") from None
    archs: dict[Any, None] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            archs.setdefault(space.from_string(text), None)
        except InvalidArchitecture as error:
            raise HwnasError(f"{path} line {number}: {error}") from None
    if not archs:
        raise HwnasError(f"architecture file {path} lists no architectures")
    return list(archs)


def _import_space(args: argparse.Namespace) -> str | None:
    """The space family --space names for an import (a known name, or one sentence)."""
    if not args.space:
        return None
    import spaces
    from spaces.base import family_of

    name = family_of(args.space)
    if name not in spaces.names():
        spaces.get(args.space)  # raises UnknownName with the known names
    return name


def _import_tables(args: argparse.Namespace, store: Any) -> None:
    from latency.store_exchange import import_file

    for path in args.imports:
        counts = import_file(store, path, _import_space(args))
        print(f"{Path(path).name}: {sum(counts.values()):,} new rows for {len(counts)} devices "
              f"in {store.path}")
        for label, added in counts.items():
            print(f"  {label:<22} {added:>8,}")


def _plan(args: argparse.Namespace) -> Any:
    import devices

    base = devices.TimingPlan.quick() if args.quick else devices.TimingPlan()
    return base.updated(threads=args.threads, rounds=args.rounds, calls=args.calls,
                        warmup_iters=args.warmup_iters, warmup_s=args.warmup_s, max_s=args.max_s,
                        statistic=args.statistic, clock=args.clock)


def _summary_record(frame: Any, fingerprint: dict[str, Any], report: Any, store_path: Path) -> dict:
    """What ``--json`` prints per device: the same figures as the table."""
    lat = frame["latency_ms"].astype(float)
    return {"device": fingerprint["label"], "device_id": fingerprint["id"], "archs": len(frame),
            "statistic": str(frame["statistic"].iloc[0]) if len(frame) else None,
            "min_ms": lat.min(), "median_ms": lat.median(), "max_ms": lat.max(),
            "measured_now": report.measured, "already_stored": report.skipped,
            "store": str(store_path)}


def _summary(frame: Any, measured: int, skipped: int, label: str, store_path: Path) -> str:
    import numpy as np
    import pandas as pd

    if frame.empty:
        return "no measurements"
    lat = frame["latency_ms"]
    table = pd.DataFrame([{
        "device": label,
        "archs": len(frame),
        f"{frame['statistic'].iloc[0]} ms min": lat.min(),
        "median": lat.median(),
        "max": lat.max(),
        "median CV": np.nanmedian(frame["cv"].astype(float)),
        "median robust CV": np.nanmedian(frame["robust_cv"].astype(float)),
    }])
    text = table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
    return (f"{text}\n{measured} measured now, {skipped} already stored, in {store_path} "
            f"(CV = std/mean of the samples, robust CV = IQR/1.349/median)")


def _check_numbers(args: argparse.Namespace) -> None:
    """Every numeric option in range, before any store, device or space is opened."""
    from hwnas.cli import _checks

    _checks.at_least("-n", args.num)
    _checks.at_least("--batch", args.batch, 1, 4096)
    _checks.count("--group", args.group)
    _checks.input_size("--input-size", args.input)
    _checks.seed("--seed", args.seed)
    _checks.at_least("--threads", args.threads, 1, 1024)
    _checks.count("--rounds", args.rounds)
    _checks.count("--calls", args.calls)
    _checks.at_least("--warmup", args.warmup_iters, 0, _checks.MAX_COUNT)
    if args.warmup_s is not None and not 0 <= args.warmup_s < float("inf"):
        from spaces.errors import InvalidOption

        raise InvalidOption(f"--warmup-s must be zero or more seconds, got {args.warmup_s}")
    _checks.positive("--max-s", args.max_s)
    for flag in ("pool", "initial", "holdout", "per_round"):
        _checks.count(f"--{flag.replace('_', '-')}", getattr(args, flag))


def _check_outputs(args: argparse.Namespace) -> None:
    """Files written after the measuring must be writable before it starts."""
    from spaces.core import check_writable

    for path in (args.export, args.save):
        if path:
            check_writable(path, create_parent=True)


def run(args: argparse.Namespace) -> int:
    from latency.store import MeasurementStore
    from spaces.errors import HwnasError

    measuring = args.device or args.space or args.num is not None or args.archs
    if args.imports:
        if args.device or args.num is not None or args.archs:
            raise HwnasError("--import only imports files (with --space: that space's rows); "
                             "measure with a separate hwnas profile command")
        _check_outputs(args)
        with MeasurementStore(args.db) as store:  # closed on any error: no journal left behind
            _import_tables(args, store)
            if args.export:
                print(f"exported {store.export(args.export)}")
        return 0
    if args.export and not measuring:  # export what is stored, measure nothing
        with MeasurementStore(args.db, readonly=True) as store:
            print(f"exported {len(store):,} rows to {store.export(args.export)}")
        return 0

    if args.model:
        return _profile_model(args)
    if not args.space or not args.device:
        raise HwnasError("profile needs --space and --device (or --import CSV, or --model MODEL)")
    if args.num is not None and args.num < 1:
        raise HwnasError(f"-n must be at least 1, got {args.num}")
    if args.num is None and not args.archs:
        raise HwnasError("give -n N (sample N architectures) or --archs FILE")
    if args.group < 1 or args.batch < 1:
        raise HwnasError("--group and --batch must be at least 1")
    _check_numbers(args)
    if args.active:
        profile_active.check(args)
    elif args.save:
        raise HwnasError("-o/--output (the predictor file) needs --active (or fit a predictor with `hwnas predictor fit`)")
    _check_outputs(args)

    from hwnas import executors
    from hwnas.cli._checks import space_count

    space = load_space(args.space, args.preset, args.space_opt)
    if args.num is not None and not args.archs and not args.active:
        args.num = space_count(space, "-n", args.num)
    if args.active:
        args.num = space_count(space, "-n", args.num)
    job = executors.ProfileJob(space, args.device, _plan(args), batch=args.batch,
                               input_size=args.input, group=args.group)
    if args.active:
        with MeasurementStore(args.db) as store, executors.from_args(args) as executor:
            return profile_active.run(args, space, job, executor, store, _measure)
    archs = read_archs(space, args.archs) if args.archs else space.sample_many(args.num, args.seed)
    if args.num is not None:
        archs = archs[: args.num]
    # a bad or full store fails before the device is set up; closed on any error
    with MeasurementStore(args.db) as store:
        with executors.from_args(args) as executor:
            report = _measure(args, executor, job, store, archs)
        summaries = []
        for device_id, fingerprint in report.fingerprints.items():
            frame = store.frame(space=space.key, device=device_id, batch=args.batch,
                                input_shape=job.input_shape)
            frame = frame[frame["arch"].isin({space.to_string(a) for a in archs})]
            if args.json:
                summaries.append(_summary_record(frame, fingerprint, report, store.path))
            else:
                print(_summary(frame, report.measured, report.skipped, fingerprint["label"],
                               store.path))
        exported = store.export(args.export) if args.export else None
        if args.json:
            _options.print_json({"devices": summaries, "exported": exported})
        elif exported:
            print(f"exported {exported}")
    report.raise_for_failures()
    return 0


def _measure(args: argparse.Namespace, executor: Any, job: Any, store: Any,
             archs: list[Any]) -> Any:
    """Measure what ``store`` lacks with ``executor``, which commits each group as soon as
    it is timed (locally: group after group here; on Ray: one actor per device node)."""
    import numpy as np
    from tqdm import tqdm

    latencies: list[float] = []
    bars: list[Any] = []  # opened by the first event, once the device is known to work

    def progress(event: Any) -> None:
        if not bars:
            bars.append(tqdm(total=event.total, unit="arch", desc=event.label,
                             disable=args.no_progress, dynamic_ncols=True))
        latencies.extend(event.latencies)
        bars[0].total, bars[0].n = event.total, event.done
        if latencies:
            bars[0].set_postfix_str(f"median {np.median(latencies):.3f} ms", refresh=False)
        bars[0].refresh()

    try:
        return executor.profile(job, archs, store, on_group=progress)
    finally:
        for bar in bars:
            bar.close()


# ---- one model ---------------------------------------------------------------------------------
def _profile_model(args: argparse.Namespace) -> int:
    """Measure one model file (or function) and store it as space ``model``."""
    from hwnas import model_latency
    from latency.store import MeasurementStore
    from spaces.errors import HwnasError

    if args.space or args.archs or args.num is not None or args.active:
        raise HwnasError("--model measures one model; give no --space, -n, --archs or --active")
    if not args.device:
        raise HwnasError("--model needs --device, e.g. ort:cpu")
    if getattr(args, "executor", None) not in (None, "local"):
        raise HwnasError("--model is measured in this process; --executor is for spaces")
    if args.batch < 1:
        raise HwnasError("--batch must be at least 1")
    import devices
    import torch

    torch.set_num_threads(1)
    model = model_latency.load(args.model, input_size=args.input)
    profiler = devices.get(args.device, plan=_plan(args))
    model_latency.check_device(model, profiler)
    store = MeasurementStore(args.db)
    try:
        row, measured = model_latency.measure(model, profiler, store, batch=args.batch)
    finally:
        profiler.close()
    shape = "x".join(str(d) for d in (args.batch, *model.input_shape))
    print(f"{model.label} ({model.kind}, {model.arch[:19]}...) on {profiler.label}, input {shape}")
    print(f"  {row['statistic']} {row['latency_ms']:.4f} ms   median {row['median_ms']:.4f} ms   "
          f"CV {row['cv']:.3f}   {int(row['n_samples'] or 0)} samples of "
          f"{int(row.get('block_calls') or 1)} call(s)")
    when = "measured now" if measured else f"already stored ({row['created_at']}), not measured again"
    print(f"  {when}: {store.path}, space {model_latency.SPACE}, arch {model.arch}")
    if args.export:
        print(f"exported {store.export(args.export)}")
    return 0
