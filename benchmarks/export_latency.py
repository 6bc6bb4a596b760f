"""What does exporting cost, is the exported model faithful, and is ONNX Runtime faster than torch?

For N sampled architectures per space this exports each with
:func:`hwnas.export.export_arch` (the path ``hwnas export`` uses, every check on)
and reports, side by side:

* export time (the exporter call alone, and every step), file size, the
  exporter that wrote the graph, the parity error (max |ORT - torch| at batch 1
  and 8) and the output scale it is relative to;
* with ``--compare-exporters``, the TorchScript exporter's time for the same module;
* batch-1 latency with ``torch:cpu`` (eager) and ``ort:cpu``, each profiler timing
  all architectures of a space in interleaved rounds, in this same run; their ratio;
* with ``--predictor SPACE=PATH``, the predictor's latency next to the measurement
  on the predictor's device, and its error.

    python benchmarks/export_latency.py                    # 5 archs x 4 spaces
    python benchmarks/export_latency.py --spaces fbnetv2 -n 3 --quick
    python benchmarks/export_latency.py --compare-exporters --csv export.csv
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import devices  # noqa: E402
import spaces  # noqa: E402
from hwnas import export  # noqa: E402

SPACES = {"nb201": {}, "fbnet": {"stem": "cifar"}, "fbnetv2": {"preset": "tiny"}, "nao": {}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default=",".join(SPACES), help="comma-separated (default: all four)")
    parser.add_argument("-n", type=int, default=5, help="architectures per space (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exporter", choices=export.EXPORTERS, default="auto")
    parser.add_argument("--opset", type=int, default=export.DEFAULT_OPSET)
    parser.add_argument("--compare-exporters", action="store_true",
                        help="also time the TorchScript exporter on each module")
    parser.add_argument("--predictor", action="append", default=[], metavar="SPACE=PATH",
                        help="latency predictor for one space (repeatable); compared with the "
                             "measurement on ort:cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="few timing calls (smoke run)")
    parser.add_argument("--csv", type=Path, help="write every row here")
    return parser.parse_args(argv)


def _predictors(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep:
            raise SystemExit(f"--predictor takes SPACE=PATH, got {pair!r}")
        from latency import predictors

        out[name] = predictors.load(path)
    return out


def _torchscript_seconds(module: Any, shape: tuple[int, ...], opset: int) -> float:
    with export.eval_mode(module):
        start = time.perf_counter()
        export.to_onnx(module, shape, min(opset, export.TORCHSCRIPT_MAX_OPSET), "torchscript")
        return time.perf_counter() - start


def bench_space(name: str, args: argparse.Namespace, folder: Path, predictor: Any,
                profilers: dict[str, Any]) -> pd.DataFrame:
    space = spaces.get(name, **SPACES[name])
    shape = space.input_shape()
    archs = space.sample_many(args.n, args.seed)
    modules = [space.build(a) for a in archs]
    rows = []
    for i, (arch, module) in enumerate(zip(archs, modules)):
        report = export.export_arch(space, arch, folder / f"{name}-{i}.onnx", model=module,
                                    opset=args.opset, exporter=args.exporter, measure=False,
                                    predictor=predictor, space_kwargs=SPACES[name])
        row = {"space": space.key, "arch": report.arch, "MACs_M": report.macs / 1e6,
               "params_M": report.params / 1e6, "exporter": report.exporter,
               "export_s": report.export_s, "all_steps_s": report.total_s,
               "file_KiB": report.file_bytes / 1024, "parity_b1": report.parity[1],
               "parity_b8": report.parity[8], "output_scale": report.output_scale,
               "parity_rel": report.parity_relative,
               "predicted_ms": report.predicted_latency_ms}
        if args.compare_exporters:
            row["torchscript_s"] = _torchscript_seconds(module, shape, args.opset)
        rows.append(row)
        print(f"  exported {name} {i + 1}/{len(archs)} in {report.export_s:.1f} s ({report.exporter})",
              flush=True)
    for label, profiler in profilers.items():
        measurements = profiler.measure_many(modules, shape, batch=1)
        for row, m in zip(rows, measurements):
            row[f"{label}_ms"] = m.latency_ms
            row[f"{label}_robust_cv"] = m.robust_cv
    frame = pd.DataFrame(rows)
    frame["torch/ort"] = frame["torch_ms"] / frame["ort_ms"]
    if frame["predicted_ms"].notna().any():
        frame["pred_err"] = frame["predicted_ms"] / frame["ort_ms"] - 1
    return frame


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.spaces.split(",") if n.strip()]
    unknown = [n for n in names if n not in SPACES]
    if unknown:
        raise SystemExit(f"unknown space(s) {unknown}; choose from {list(SPACES)}")
    predictors = _predictors(args.predictor)
    plan = devices.TimingPlan.quick(threads=args.threads) if args.quick else devices.TimingPlan(
        threads=args.threads)
    profilers = {"torch": devices.get("torch:cpu", plan=plan), "ort": devices.get("ort:cpu", plan=plan)}
    print("devices: " + ", ".join(f"{k}={p.label} [{p.fingerprint_id}]" for k, p in profilers.items()))
    frames = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"{name}:", flush=True)
            frames.append(bench_space(name, args, Path(tmp), predictors.get(name), profilers))
    table = pd.concat(frames, ignore_index=True)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    shown = table.copy()
    shown["arch"] = shown["arch"].str.slice(0, 28)
    cols = ["space", "arch", "MACs_M", "exporter", "export_s", "file_KiB", "parity_b1", "parity_b8",
            "output_scale", "parity_rel", "torch_ms", "ort_ms", "torch/ort"]
    cols += [c for c in ("torchscript_s", "predicted_ms", "pred_err")
             if c in shown and shown[c].notna().any()]
    print(shown[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    summary = table.groupby("space").agg(
        export_s=("export_s", "median"), file_KiB=("file_KiB", "median"),
        worst_parity=("parity_b8", "max"), torch_over_ort=("torch/ort", "median"),
        **({"torchscript_s": ("torchscript_s", "median")} if "torchscript_s" in table else {}))
    print("\nper space (medians; worst parity):")
    print(summary.to_string(float_format=lambda v: f"{v:.3g}"))
    print(f"\n{len(table)} exports, all passed checker + parity; {time.perf_counter() - start:.0f} s in all")
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"rows written to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
