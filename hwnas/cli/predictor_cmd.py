"""Fit, evaluate and query latency predictors on a measurement store.

``hwnas predictor fit --db runs/lat.sqlite --device ort:cpu --space fbnet --kind mlp -o pred.pt``
trains on the stored measurements of one device, prints metrics on the held-out
architectures and writes a predicted-vs-measured scatter plot next to ``-o``;
``eval`` scores a saved predictor on a store; ``predict`` prints predicted ms of
architecture strings. ``--device`` is a device id, a label (``help:gold_6226``) or
the start of a label (``ort:cpu`` matches ``ort:cpu/1t@Intel Xeon ...``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.cli import _options

COMMAND = "predictor"
ORDER = 40


KINDS = "mlp, lut, gbdt, flops, transfer"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="train a predictor on stored measurements of one device")
    fit.add_argument("--db", required=True, metavar="FILE", help="SQLite measurement store")
    fit.add_argument("--device", required=True, help="device id, label, or label prefix such as ort:cpu")
    fit.add_argument("--space", required=True, help="search space key, e.g. fbnet, nb201")
    fit.add_argument("--kind", default="mlp", help=f"predictor kind: {KINDS} (default mlp)")
    fit.add_argument("-o", "--output", required=True, metavar="FILE", help="predictor file to write (.pt)")
    fit.add_argument("--train-size", type=int, default=None, metavar="N",
                     help="measurements to train on; the rest are held out (default: 80%%)")
    fit.add_argument("--seed", type=int, default=0, help="split and training seed (default 0)")
    fit.add_argument("--batch", type=int, default=None, help="batch size, when the device has several")
    fit.add_argument("--input-shape", default=None, metavar="CxHxW",
                     help="input shape, when the device has several (e.g. 3x32x32)")
    fit.add_argument("--extras", default="", metavar="LIST",
                     help="extra features appended to the one-hot: macs,params (mlp, gbdt)")
    fit.add_argument("--drift-correction", action="store_true",
                     help="scale each group by its reference network (devices.reference); off by "
                          "default: measured to add noise on ort:cpu (README, 'Timing')")
    fit.add_argument("--references", default=None, metavar="LIST",
                     help="transfer: reference series LABEL[@bBATCH],... (default: every other "
                          "device of this space in the store)")
    ev = sub.add_parser("eval", help="score a saved predictor on stored measurements")
    ev.add_argument("predictor", metavar="PRED", help="predictor file")
    _options.json_option(ev)
    ev.add_argument("--db", required=True, metavar="FILE", help="SQLite measurement store")
    ev.add_argument("--device", default=None, help="device to score on (default: the predictor's own)")
    ev.add_argument("--batch", type=int, default=None, help="batch size (default: the predictor's)")
    ev.add_argument("--allow-device-mismatch", action="store_true",
                    help="score on a device other than the one the predictor was trained on")
    ev.add_argument("--plot", default=None, metavar="PNG", help="also write a scatter plot")
    pr = sub.add_parser("predict", help="predict the latency of architecture strings")
    pr.add_argument("predictor", metavar="PRED", help="predictor file")
    _options.json_option(pr)
    pr.add_argument("archs", nargs="+", metavar="ARCH", help="architecture strings of the space")
    pr.add_argument("--device", default=None, help="refuse unless the predictor is for this device")
    pr.add_argument("--allow-device-mismatch", action="store_true",
                    help="use the predictor for --device although it was trained on another")


# ---- store access --------------------------------------------------------------------------
def _open_store(path: str):
    from latency.store import MeasurementStore
    from spaces.errors import HwnasError

    if not Path(path).is_file():
        raise HwnasError(f"measurement store {path} does not exist")
    return MeasurementStore(path, readonly=True)


def resolve_device(store: Any, space_key: str, spec: str) -> tuple[str, str]:
    """(device_id, label) of ``spec``: an exact id or label, else the one device whose
    label starts with ``spec`` followed by ``/`` or ``@`` (``ort:cpu`` -> ``ort:cpu/1t@...``)."""
    from spaces.errors import HwnasError

    frame = store.frame(space=space_key)
    devices = frame.drop_duplicates("device_id")[["device_id", "device_label"]]
    if devices.empty:
        raise HwnasError(f"the store {store.path} has no measurements of space {space_key}")
    exact = devices[(devices.device_id == spec) | (devices.device_label == spec)]
    if exact.empty:
        exact = devices[devices.device_label.map(lambda lab: lab.startswith((spec + "/", spec + "@")))]
    if exact.empty:
        known = ", ".join(sorted(devices.device_label))
        raise HwnasError(f"no device {spec!r} with measurements of {space_key} in {store.path}; "
                         f"known: {known}")
    if len(exact) > 1:
        raise HwnasError(f"device {spec!r} matches several devices ({', '.join(exact.device_label)}); "
                         f"give a full label or id")
    row = exact.iloc[0]
    return str(row.device_id), str(row.device_label)


def device_rows(store: Any, space_key: str, device_id: str, batch: int | None,
                input_shape: str | None, corrected: bool = False):
    """Median latency per architecture of one device, batch and input shape (as measured,
    or drift-corrected with ``corrected``)."""
    from spaces.errors import HwnasError

    frame = store.frame(space=space_key, device=device_id)
    for column, value, flag in (("batch", batch, "--batch"), ("input_shape", input_shape, "--input-shape")):
        if value is not None:
            frame = frame[frame[column] == value]
            if frame.empty:
                raise HwnasError(f"no measurements of {space_key} on this device with {column} {value}")
        elif frame[column].nunique() > 1:
            choices = ", ".join(map(str, sorted(frame[column].unique())))
            raise HwnasError(f"the device has measurements at several {column} values ({choices}); "
                             f"choose one with {flag}")
    if corrected:
        from latency.store import drift_corrected

        # groups timed with the reference network are put on one scale (devices.reference)
        frame = frame.assign(latency_ms=drift_corrected(frame))
    grouped = frame.groupby("arch", sort=True)["latency_ms"].median()
    return grouped, int(frame["batch"].iloc[0]), str(frame["input_shape"].iloc[0])


# ---- reporting -----------------------------------------------------------------------------
def _relative_mask(space: Any, archs: list) -> np.ndarray:
    """Rows that relative metrics may use: not NB201's disconnected cells (near-zero
    latencies on some devices make their relative error meaningless)."""
    check = getattr(space, "is_disconnected", None)
    if check is None:
        return np.ones(len(archs), dtype=bool)
    return np.array([not check(a) for a in archs], dtype=bool)


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    print(f"{title}: n={metrics['n']}  Spearman {metrics['spearman']:.4f}  Kendall {metrics['kendall']:.4f}  "
          f"MAPE {metrics['mape']:.2f}%  within ±5% {metrics['within5']:.1%}  "
          f"within ±10% {metrics['within10']:.1%}  RMSE {metrics['rmse']:.4g} ms")


def scatter_plot(path: Path, measured: np.ndarray, predicted: np.ndarray, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(measured, predicted, s=6, alpha=0.5)
    lo = float(min(measured.min(), predicted.min()))
    hi = float(max(measured.max(), predicted.max()))
    grid = np.linspace(lo, hi, 2)
    ax.plot(grid, grid, "k-", lw=1, label="exact")
    ax.fill_between(grid, grid * 0.9, grid * 1.1, color="grey", alpha=0.2, label="±10%")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left")
    fig.tight_layout()
    from hwnas.plots import save_png

    return save_png(fig, path)


def plot_path(output: Path) -> Path:
    """``pred.pt`` -> ``pred.png`` (``x.png`` -> ``x.png.png``: never overwrite the -o file)."""
    if output.suffix.lower() == ".png":
        return output.with_name(output.name + ".png")
    return output.with_suffix(".png")


# ---- actions -------------------------------------------------------------------------------
def _fit(args: argparse.Namespace) -> int:
    import spaces
    from latency import metrics, predictors
    from latency.predictors.transfer import reference_key
    from spaces.errors import HwnasError

    from hwnas.cli import _checks
    from spaces.core import check_writable

    predictors.predictor_class(args.kind)  # an unknown kind fails before any data is read
    _checks.at_least("--train-size", args.train_size)
    _checks.seed("--seed", args.seed)
    _checks.at_least("--batch", args.batch, 1, 4096)
    # both files are written after the fit: a bad -o fails now, not after it
    check_writable(args.output, create_parent=True)
    check_writable(plot_path(Path(args.output)), create_parent=True)
    space = spaces.get(args.space)
    store = _open_store(args.db)
    device_id, label = resolve_device(store, space.key, args.device)
    series, batch, shape = device_rows(store, space.key, device_id, args.batch, args.input_shape,
                                       corrected=args.drift_correction)
    archs = [space.from_string(s) for s in series.index]
    ms = series.to_numpy(dtype=np.float64)
    n = len(archs)
    train_size = args.train_size if args.train_size is not None else max(1, int(round(0.8 * n)))
    if train_size < 1:
        raise HwnasError("--train-size must be at least 1")
    if train_size > n:
        raise HwnasError(f"--train-size {train_size} exceeds the {n} measurements of {label} "
                         f"({space.key}, batch {batch})")
    order = np.random.default_rng(args.seed).permutation(n)
    train, test = order[:train_size], order[train_size:]
    extras = [e for e in args.extras.split(",") if e]
    options: dict[str, Any] = {"seed": args.seed}
    if extras:
        options["extras"] = extras
    pred = predictors.create(args.kind, space, **options)
    if args.kind == "transfer":
        frame = store.frame(space=space.key)
        own = {reference_key(label, b) for b in frame.loc[frame.device_id == device_id, "batch"].unique()}
        keys = [k if "@b" in k else reference_key(k, 1) for k in args.references.split(",")] \
            if args.references else None
        pred.fit_references(frame, keys=keys, exclude=own, input_shape=shape)
        print(f"references: {', '.join(pred.references)}")
    started = time.perf_counter()
    pred.fit([archs[i] for i in train], ms[train])
    fit_s = time.perf_counter() - started
    pred.set_device(device_id, label, store.fingerprint(device_id), batch=batch, input_shape=shape)
    output = pred.save(args.output)
    print(f"{args.kind} predictor for {space.key} on {label} (batch {batch}, {shape}): "
          f"trained on {len(train)} of {n} measurements in {fit_s:.1f} s -> {output}")
    if args.kind == "transfer":
        top = sorted(pred.mixture().items(), key=lambda kv: -abs(kv[1]))[:3]
        print("log-latency mixture (largest weights): " + ", ".join(f"{k} {w:+.2f}" for k, w in top))
    if len(test) == 0:
        print("no held-out measurements: metrics skipped (use a smaller --train-size)")
        return 0
    test_archs = [archs[i] for i in test]
    predicted = pred.predict(test_archs)
    result = metrics.summary(predicted, ms[test], _relative_mask(space, test_archs))
    _print_metrics(f"held-out ({len(test)} architectures)", result)
    png = scatter_plot(plot_path(output), ms[test], predicted,
                       f"{args.kind} on {label}: {len(train)} train, {len(test)} held out")
    print(f"scatter plot: {png}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from latency import metrics, predictors
    from spaces.errors import HwnasError

    from hwnas.cli import _checks
    from spaces.core import check_writable

    _checks.at_least("--batch", args.batch, 1, 4096)
    if args.plot:
        check_writable(args.plot, create_parent=True)  # before the scoring, not after
    pred = predictors.load(args.predictor)
    space = pred.space
    store = _open_store(args.db)
    own = pred.device or {}
    if args.device is None and not own.get("id"):
        raise HwnasError("the predictor records no device; pass --device")
    device_id, label = resolve_device(store, space.key, args.device or own["id"])
    if device_id != own.get("id"):
        pred.check_device(label, args.allow_device_mismatch)
    batch = args.batch if args.batch is not None else own.get("batch")
    series, batch, shape = device_rows(store, space.key, device_id, batch, own.get("input_shape"))
    trained = set(pred.train_archs) if device_id == own.get("id") else set()
    held = [s for s in series.index if s not in trained]
    if not args.json:
        print(f"{pred.kind} predictor ({space.key}, trained on {own.get('label')} with "
              f"{pred.train_size} measurements) scored on {label} (batch {batch}, {shape})")
    if not held:
        raise HwnasError("every stored measurement of this device was used for training; "
                         "nothing is left to score")
    archs = [space.from_string(s) for s in held]
    measured = series.loc[held].to_numpy(dtype=np.float64)
    predicted = pred.predict(archs)
    title = "held-out" if trained else "all stored"
    scores = metrics.summary(predicted, measured, _relative_mask(space, archs))
    png = scatter_plot(Path(args.plot), measured, predicted, f"{pred.kind} on {label}") \
        if args.plot else None
    if args.json:
        _options.print_json({"kind": pred.kind, "space": space.key, "device": label,
                             "batch": batch, "input_shape": shape, "scored_on": title,
                             "metrics": scores, "plot": str(png) if png else None})
        return 0
    _print_metrics(f"{title} ({len(held)} architectures)", scores)
    if png is not None:
        print(f"scatter plot: {png}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd
    from latency import predictors
    from latency.predictors import PredictorError

    pred = predictors.load(args.predictor, device=args.device,
                           allow_device_mismatch=args.allow_device_mismatch)
    archs = [pred.space.from_string(s) for s in args.archs]
    table = pd.DataFrame({"arch": args.archs, "latency_ms": pred.predict(archs)})
    try:
        table["std_ms"] = pred.predict_std(archs)
    except PredictorError:
        pass
    device = (pred.device or {}).get("label")
    if args.json:
        _options.print_json({"kind": pred.kind, "space": pred.space.key, "device": device,
                             "predictions": table})
        return 0
    print(f"{pred.kind} predictor, space {pred.space.key}, device {device}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def run(args: argparse.Namespace) -> int:
    return {"fit": _fit, "eval": _eval, "predict": _predict}[args.action](args)
