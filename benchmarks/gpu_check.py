"""Run hwnas's GPU paths for real, once, on a GPU host, and say what worked.

Four profiling backends (``torch:cuda``, ``ort:cuda``, ``ort:tensorrt``,
``tensorrt``), TensorRT engine builds, CUDA-event timing and IO binding only
run on a GPU. A GPU host is lent rarely and briefly, so this is one prepared
run of about six minutes (``--budget-s``), in sections:

1. environment: ``devices.available()``, library versions, and the fingerprint
   of every GPU backend (GPU model, driver, CUDA, cuDNN, TensorRT, ORT, precision);
2. profiling: ``--n`` nb201 and ``--n`` fbnet architectures (CIFAR input) at
   batch 1 and 32 on each backend, twice, into temporary stores; per backend the
   p10 range, the share of networks whose second-pass p10 is within 5% / 2% of
   the first, the latency ratio to ``torch:cuda``, and throughput with the share
   of time spent exporting and building sessions/engines;
3. checks: no ORT session fell back to CPU (``get_providers()``, and single nodes
   with ``session.disable_cpu_ep_fallback``), and the second pass rebuilt no
   TensorRT engine (ORT's engine cache folder; the ``tensorrt`` backend's cache);
4. export: one fbnet network through ``hwnas.export`` (measured on the GPU), the
   package's fp16 TensorRT engine where it builds one, and the exported file run
   on every GPU runtime here: fp16-vs-fp32 logits and batch-1 latency;
5. pipeline: a reduced ``hwnas search --device ort:cuda`` (``torch:cuda`` if ORT
   has no CUDA here), end to end, and its final table;
6. one summary line per backend and section: ``ok`` or why not.

Each backend and section runs in its own process, so a crash or a hang in one
native library costs that line only; a global time guard gives each the time
left and skips what no longer fits (saying so). Everything printed is also in
``OUT/gpu_check.json``, rewritten after every section. Exit code 0 when every
line says ok, 1 when one does not, 2 (one sentence on stderr) on bad input or
when this machine has no CUDA GPU. See docs/gpu.md for the command line.

    python benchmarks/gpu_check.py --out /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import gpu_check_report as rep  # noqa: E402
from gpu_check_sections import GPU_SPECS, environ_with_root  # noqa: E402

EXIT_BAD_INPUT = 2
RESULT_NAME = "gpu_check.json"
ENV_TIMEOUT_S = 120.0
EXPORT_RESERVE_S, EXPORT_MIN_S = 60.0, 25.0
PIPELINE_RESERVE_S, PIPELINE_MIN_S = 60.0, 30.0
PROFILE_MIN_S = 15.0
WORKER_START_S = 8.0   # a worker's imports and CUDA start-up, before its own clock starts
GRACE_S = 20.0         # a worker may overrun its budget by this much before it is stopped
MARGIN_S = 10.0        # kept back for the summary and the last file write
PIPELINE_ARGS = ("--initial", "8", "--holdout", "5", "--active-measurements", "0", "--sweep", "2",
                 "--search-epochs", "1", "--retrain-epochs", "1", "--max-samples", "400",
                 "--quick", "--no-progress")


class BadInput(Exception):
    """Input the check refuses: printed as one sentence, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one sentence, not usage + message
        raise BadInput(message)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = _Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="folder for gpu_check.json (created)")
    p.add_argument("--budget-s", type=float, default=360.0,
                   help="wall-clock budget for the whole check, seconds (default 360)")
    p.add_argument("--n", type=int, default=10, help="architectures per space (default 10)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="batch sizes (default 1 32)")
    p.add_argument("--backends", nargs="+", default=list(GPU_SPECS),
                   help=f"backends to profile (default {' '.join(GPU_SPECS)})")
    p.add_argument("--seed", type=int, default=0, help="architecture sampling seed (default 0)")
    p.add_argument("--no-export", action="store_true", help="skip section 4")
    p.add_argument("--no-pipeline", action="store_true", help="skip section 5")
    p.add_argument("--quick-timing", action="store_true",
                   help="a few timed calls per network (smoke runs; numbers not worth keeping)")
    p.add_argument("--keep-work", action="store_true",
                   help="keep the temporary folder (stores, engines, logs) and print its path")
    # the check runs its sections in child processes of itself
    p.add_argument("--worker", choices=("env", "profile", "export"), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is None and args.out is None:
        raise BadInput("--out FOLDER is required (the JSON report is written there)")
    if args.n < 1:
        raise BadInput(f"--n must be at least 1, got {args.n}")
    if min(args.batches) < 1:
        raise BadInput(f"batch sizes must be at least 1, got {args.batches}")
    if not args.budget_s > 0:
        raise BadInput(f"--budget-s must be positive, got {args.budget_s}")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise BadInput(f"--out {args.out} exists and is not a folder")
    import devices.registry

    for spec in args.backends + ([args.spec] if args.spec else []):
        try:
            devices.registry.parse(spec)
        except Exception as error:  # noqa: BLE001 - UnknownName says which specs exist
            raise BadInput(str(error)) from None
    return args


def gpu_refusal() -> str | None:
    """One sentence when this machine cannot run the check (no torch, no CUDA GPU)."""
    import warnings

    try:
        import torch
    except ImportError:
        return "torch is not installed here; install hwnas first (see docs/gpu.md)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        available = torch.cuda.is_available()
    if not available:
        return ("this machine has no usable CUDA GPU (torch.cuda.is_available() is False); "
                "benchmarks/gpu_check.py runs on a GPU host, see docs/gpu.md")
    return None


def jsonable(value: Any) -> Any:
    """NaN and infinities as null, tuples as lists, paths and the rest as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def write_json(path: Path, data: Any) -> None:
    from spaces.core import atomic_write

    atomic_write(path, json.dumps(jsonable(data), indent=1) + "\n")


class Report:
    """Prints lines and keeps them, with every section's data, in ``OUT/gpu_check.json``."""

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.path = out / RESULT_NAME
        self.data: dict[str, Any] = {**meta, "log": [], "sections": {}, "summary": {}}
        self.started = time.monotonic()

    def print(self, line: str = "") -> None:
        print(line, flush=True)
        self.data["log"].append(line)

    def lines(self, lines: Sequence[str], indent: str = "  ") -> None:
        for line in lines:
            self.print(indent + line)

    def section(self, name: str, data: Any) -> None:
        self.data["sections"][name] = data
        self.save()

    def save(self) -> None:
        self.data["elapsed_s"] = time.monotonic() - self.started
        write_json(self.path, self.data)


# ---- child processes --------------------------------------------------------------------
def run_child(cmd: Sequence[str], timeout_s: float, log_path: Path) -> tuple[int | None, str]:
    """Run ``cmd`` in its own session with output to ``log_path``; on timeout kill the whole
    process group. Returns (exit code or None when stopped, its output)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env=environ_with_root(ROOT), start_new_session=True)
        rc: int | None = None
        try:
            rc = proc.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            pass
        finally:  # stopped by the time guard, or the check itself was interrupted
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
    return rc, log_path.read_text(errors="replace")


def child_failure(rc: int | None, output: str, timeout_s: float) -> str | None:
    """Why a child did not end normally, in one sentence (None if it did)."""
    if rc is None:
        return f"did not finish within {timeout_s:.0f} s and was stopped by the time guard"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        return f"its process died from signal {name}; last output: {rep.first_sentence(output)}"
    if rc != 0:
        return f"its process exited with code {rc}: {rep.first_sentence(output)}"
    return None


def run_worker(kind: str, args: argparse.Namespace, work: Path, timeout_s: float,
               budget_s: float | None = None, extra: Sequence[str] = (),
               name: str | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """One section in a child process of this script, stopped after ``timeout_s``; the child
    plans its own work for ``budget_s``. Returns (its result, why it did not end normally)."""
    name = name or kind
    result_path = work / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--work", str(work),
           "--result", str(result_path), "--n", str(args.n), "--seed", str(args.seed),
           "--budget-s", str(max(1.0, budget_s if budget_s is not None else timeout_s)),
           "--batches", *map(str, args.batches), "--backends", *args.backends, *extra]
    if args.quick_timing:
        cmd.append("--quick-timing")
    rc, output = run_child(cmd, timeout_s, work / f"{name}.log")
    result = None
    if result_path.is_file():
        try:
            result = json.loads(result_path.read_text())
        except ValueError:
            result = None
    if result is not None and output.strip():  # its log (library INFO lines, errors) travels along
        result["worker_log_tail"] = rep.last_lines(output, None, 40)
    return result, child_failure(rc, output, timeout_s)


def worker_main(args: argparse.Namespace) -> int:
    """Inside a child: run one section and keep its result file up to date."""
    import logging

    from gpu_check_sections import (env_section, export_section, profile_backend, sample_archs,
                                    timing_plan)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    work, path = args.work, args.result

    def save(data: dict[str, Any]) -> None:
        write_json(path, data)

    plan = timing_plan(args.quick_timing)
    if args.worker == "env":
        save(env_section(args.backends))
    elif args.worker == "profile":
        archs = sample_archs(args.n, args.seed)
        save(profile_backend(args.spec, archs, args.batches, plan, args.budget_s, work,
                             on_update=save))
    else:
        save(export_section(work, args.spec, args.seed, plan, on_update=save))
    return 0


# ---- the sections, as the parent runs and prints them ------------------------------------
FINGERPRINT_KEYS = ("gpu_model", "gpu_capability", "gpu_memory_gib", "gpu_driver", "cuda_runtime",
                    "cudnn", "torch", "onnxruntime", "provider", "tensorrt", "tensorrt_typing",
                    "precision")


def section_environment(report: Report, args: argparse.Namespace, work: Path,
                        deadline: rep.Deadline) -> dict[str, Any]:
    report.print("== 1. environment, devices.available() and GPU fingerprints")
    timeout = min(ENV_TIMEOUT_S, max(1.0, deadline.remaining() - MARGIN_S))
    result, failure = run_worker("env", args, work, timeout)
    data = result or {}
    if failure:
        report.print(f"  the environment section failed: {failure}")
    env = data.get("environment", {})
    if env:
        report.print(f"  python {env.get('python')}, torch {env.get('torch')} (CUDA {env.get('torch_cuda')}, "
                     f"cuDNN {env.get('cudnn')}), driver {env.get('gpu_driver')}, GPUs: "
                     f"{', '.join(env.get('gpus', [])) or 'none'}")
        report.print(f"  onnxruntime {env.get('onnxruntime')} ({env.get('onnxruntime_package')}, built for "
                     f"CUDA {env.get('onnxruntime_build_cuda')}), providers: {env.get('ort_providers')}")
        preload = (env.get("ort_preload") or {}).get("tensorrt") or {}
        report.print(f"  tensorrt {env.get('tensorrt')}; ORT's TensorRT provider links "
                     f"{env.get('ort_tensorrt_links') or '?'}; loaded for it: "
                     f"{preload.get('loaded') or 'nothing'} (libnvinfer {preload.get('version')})"
                     + (f"; problems: {preload.get('errors')}" if preload.get("errors") else ""))
    rows = [{"spec": r["spec"], "ok": "yes" if r["available"] else "no", "reason": r["reason"]}
            for r in data.get("available", [])]
    if rows:
        report.print("  devices.available():")
        report.lines(rep.format_table(rows, [("spec", "spec"), ("available", "ok"),
                                             ("reason", "reason")]), "    ")
    for spec, entry in data.get("backends", {}).items():
        if entry.get("available"):
            fp = entry["fingerprint"]
            fields = ", ".join(f"{k}={fp[k]}" for k in FINGERPRINT_KEYS if fp.get(k) is not None)
            report.print(f"  {spec} [{fp.get('id')}] {fp.get('label')}: {fields}")
        else:
            report.print(f"  {spec}: unavailable: {entry.get('reason')}")
    report.section("environment", {"result": data, "failure": failure})
    return data


def section_profiling(report: Report, args: argparse.Namespace, work: Path, deadline: rep.Deadline,
                      env: dict[str, Any]) -> dict[str, str]:
    report.print()
    report.print(f"== 2-3. profiling {args.n} nb201 + {args.n} fbnet architectures (3x32x32) at batch "
                 f"{', '.join(map(str, args.batches))} on each backend, twice; providers and engine caches")
    reserves = ((0 if args.no_export else EXPORT_RESERVE_S)
                + (0 if args.no_pipeline else PIPELINE_RESERVE_S) + MARGIN_S)
    known = env.get("backends", {})
    verdicts: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    runnable = []
    for spec in args.backends:
        entry = known.get(spec)
        if entry is not None and not entry.get("available"):
            verdicts[spec] = f"unavailable: {entry.get('reason')}"
        else:
            runnable.append(spec)
    for i, spec in enumerate(runnable):
        pool = deadline.remaining() - reserves
        share = pool / (len(runnable) - i)
        if share < PROFILE_MIN_S:
            verdicts[spec] = f"skipped by the time guard: {max(0.0, share):.0f} s left for it"
            report.print(f"  {spec}: {verdicts[spec]}")
            continue
        result, failure = run_worker("profile", args, work, share + GRACE_S,
                                     budget_s=share - WORKER_START_S, extra=["--spec", spec],
                                     name=f"profile-{spec.replace(':', '-')}")
        result = result or {}
        if failure:
            result["status"] = (f"{failure} (partial results kept)" if result.get("measurements")
                                else failure)
        results[spec] = result
        verdicts[spec] = rep.backend_verdict(result)
        n1 = len(rep.latencies(result, 1))
        n2 = len(rep.latencies(result, 2))
        report.print(f"  {spec}: {n1} + {n2} measurements in {result.get('elapsed_s', 0.0):.0f} s "
                     f"(share {share:.0f} s): {verdicts[spec]}")
        report.section("profiling", results)
    if results:
        reference = "torch:cuda" if "torch:cuda" in results else None
        report.print()
        report.lines(rep.profile_table(results, reference))
        report.print()
        report.lines(rep.throughput_table(results))
        for spec, result in results.items():
            cache = result.get("cache") or {}
            if cache.get("kind"):
                details = {k: v for k, v in cache.items() if k not in ("verdict", "kind")}
                report.print(f"  engine cache {spec}: {cache['verdict']}; {details}")
            for space, entry in ((result.get("providers") or {}).get("sessions") or {}).items():
                report.print(f"  providers {spec} {space}: {entry.get('providers')}; nodes on CPU "
                             f"with fall-back disabled: {entry.get('cpu_nodes')}")
            for failure in result.get("failures", [])[:3]:
                report.print(f"  failed {spec} {failure['space']} batch {failure['batch']} "
                             f"{failure['arch']}: {failure['reason']}")
    report.section("profiling", results)
    return {spec: verdicts[spec] for spec in args.backends if spec in verdicts}


def _variant_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for name, v in result.get("variants", {}).items():
        rows.append({"variant": name, "precision": v.get("precision", ""),
                     "diff": rep.fmt(v.get("max_abs_diff"), ".2e") if "skipped" not in v else "-",
                     "rel": rep.fmt(v.get("relative"), ".1e") if "skipped" not in v else "-",
                     "p10": rep.fmt(v.get("latency_ms"), ".4f"),
                     "median": rep.fmt(v.get("median_ms"), ".4f"),
                     "note": v.get("skipped") or v.get("error") or ""})
    return rows


def section_export(report: Report, args: argparse.Namespace, work: Path, deadline: rep.Deadline,
                   device: str | None) -> str:
    report.print()
    report.print("== 4. export one fbnet network through hwnas.export and the TensorRT path")
    reserve = (0 if args.no_pipeline else PIPELINE_RESERVE_S) + MARGIN_S
    budget = min(deadline.remaining() - reserve, 150.0)
    if device is None:
        verdict = "skipped: no GPU backend is available to measure the export on"
    elif budget < EXPORT_MIN_S:
        verdict = f"skipped by the time guard: {max(0.0, budget):.0f} s left for it"
    else:
        result, failure = run_worker("export", args, work, budget, extra=["--spec", device])
        result = result or {}
        exp = result.get("export") or {}
        if exp:
            report.print(f"  {result.get('arch')}: {exp.get('file_bytes')} bytes, {exp.get('exporter')} "
                         f"opset {exp.get('opset')}, parity {rep.fmt(exp.get('parity_max_abs_diff'), '.1e')}, "
                         f"measured by hwnas.export ({exp.get('measured_what')}) on {exp.get('measured_on')}: "
                         f"{rep.fmt(exp.get('latency_ms'), '.4f')} ms")
        if result.get("engine"):
            eng = result["engine"]
            report.print(f"  fp16 engine (hwnas.export.build_tensorrt_engine): {eng['bytes']} bytes, "
                         f"built in {eng['build_s']:.1f} s")
        rows = _variant_rows(result)
        if rows:
            report.print("  the exported file on each runtime (logits of 8 inputs vs torch fp32 on "
                         "CPU; batch-1 latency, interleaved):")
            report.lines(rep.format_table(rows, [
                ("variant", "variant"), ("precision", "precision"), ("max abs diff", "diff"),
                ("relative", "rel"), ("p10 ms", "p10"), ("median ms", "median"),
                ("not run because", "note")]), "    ")
        for pair, diff in (result.get("fp16_vs_fp32") or {}).items():
            report.print(f"  fp16 vs fp32, {pair}: max abs diff {rep.fmt(diff.get('max_abs_diff'), '.2e')}"
                         f" (relative {rep.fmt(diff.get('relative'), '.1e')})")
        status = failure or result.get("status") or "no result came back"
        if status == "ok":
            skipped = [f"{n}: {v['skipped'][:160]}" for n, v in result.get("variants", {}).items()
                       if "skipped" in v]
            verdict = "ok" + (f" (not run: {'; '.join(skipped)})" if skipped else "")
        else:
            verdict = status
        report.section("export", {"result": result, "failure": failure})
    report.print(f"  export: {verdict}")
    return verdict


def section_pipeline(report: Report, args: argparse.Namespace, work: Path, deadline: rep.Deadline,
                     device: str | None) -> str:
    report.print()
    report.print("== 5. reduced pipeline end to end: hwnas search")
    budget = deadline.remaining() - MARGIN_S
    if device is None:
        verdict = "skipped: neither ort:cuda nor torch:cuda is available"
    elif budget < PIPELINE_MIN_S:
        verdict = f"skipped by the time guard: {max(0.0, budget):.0f} s left for it"
    else:
        cmd = [sys.executable, "-m", "hwnas", "search", "--device", device,
               "--out", str(work / "pipeline-run"), *pipeline_args()]
        report.print(f"  $ hwnas {' '.join(cmd[3:])}")
        start = time.monotonic()
        rc, output = run_child(cmd, budget, work / "pipeline.log")
        failure = child_failure(rc, output, budget)
        table = rep.final_stage_lines(output)
        report.lines(table, "    ")
        verdict = "ok" if failure is None else failure
        report.section("pipeline", {"command": cmd, "exit_code": rc, "seconds": time.monotonic() - start,
                                    "final_table": table, "output_tail": rep.last_lines(output, None, 60)})
    report.print(f"  pipeline: {verdict}")
    return verdict


def pipeline_args() -> list[str]:
    """The reduced settings, plus one audit round where this version of the pipeline has
    ``--max-rounds`` (a budget loop that searches again after a miss)."""
    args = list(PIPELINE_ARGS)
    try:
        from hwnas.cli import build_parser

        parser = build_parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "--max-rounds" in commands.choices["search"]._option_string_actions:
            args += ["--max-rounds", "1"]
    except Exception:  # noqa: BLE001 - the plain settings work on every version
        pass
    return args


def _measuring_device(env: dict[str, Any], specs: Sequence[str]) -> str | None:
    """ort:cuda where it runs (the pipeline's ONNX path), else torch:cuda."""
    backends = env.get("backends", {})
    for spec in specs:
        entry = backends.get(spec)
        if entry is None or entry.get("available"):
            return spec
    return None


def run_check(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hwnas-gpu-check-"))
    deadline = rep.Deadline(args.budget_s)
    report = Report(args.out, {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "budget_s": args.budget_s,
                               "args": {k: v for k, v in vars(args).items() if k not in (
                                   "worker", "spec", "work", "result")}})
    report.print(f"hwnas GPU check: budget {args.budget_s:.0f} s, report {report.path}")
    verdicts: dict[str, str] = {}
    try:
        env = section_environment(report, args, work, deadline)
        if not env:
            verdicts["environment"] = "the environment section gave no result (see its sections entry)"
        verdicts.update(section_profiling(report, args, work, deadline, env))
        device = _measuring_device(env, ("ort:cuda", "torch:cuda"))
        if not args.no_export:
            verdicts["export"] = section_export(report, args, work, deadline, device)
        if not args.no_pipeline:
            verdicts["pipeline"] = section_pipeline(report, args, work, deadline, device)
    finally:
        report.print()
        report.print(f"== 6. summary ({time.monotonic() - report.started:.0f} s)")
        report.lines(rep.summary_lines(verdicts))
        report.data["summary"] = verdicts
        if args.keep_work:
            report.print(f"work folder kept: {work}")
        report.save()
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(rep.is_ok(v) for v in verdicts.values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.worker:
            return worker_main(args)
        refusal = gpu_refusal()
        if refusal:
            raise BadInput(refusal)
        return run_check(args)
    except BadInput as error:
        print(f"gpu_check: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
