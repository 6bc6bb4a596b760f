"""The GPU check's sections that run networks; ``gpu_check.py`` runs each in its own process.

Each function returns a plain JSON-able dict (printed and judged by
``gpu_check_report``) and never raises for a backend that cannot run: the
reason goes into the dict. The device specs are parameters, so the same code
runs here with ``torch:cpu`` / ``ort:cpu`` standing in (tests) and on a GPU
host with the four GPU backends.
"""

from __future__ import annotations

import copy
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gpu_check_report import Deadline, engine_cache_verdict, first_sentence, plan_chunks

GPU_SPECS = ("torch:cuda", "ort:cuda", "ort:tensorrt", "tensorrt")
SPACES = ("nb201", "fbnet")
# Backends whose engines are cached (devices.engine_cache), and the cache's sub-folder.
ENGINE_CACHED = {"ort:tensorrt": "ort-tensorrt", "tensorrt": "tensorrt"}
PASS1_SHARE = 0.6  # of a backend's budget; pass 2 reuses cached engines and takes less
GROUP = 5          # networks timed together (interleaved) and committed together

Update = Callable[[dict[str, Any]], None]


def timing_plan(quick: bool = False) -> Any:
    """The GPU protocol: hwnas's default rounds and calls, a shorter time warm-up (GPU nets
    settle in a few calls); ``quick`` for smoke runs whose numbers are not worth keeping."""
    from devices import TimingPlan

    return TimingPlan.quick() if quick else TimingPlan(warmup_s=0.1)


def _reason(error: BaseException) -> str:
    text = first_sentence(str(error)) if str(error).strip() else ""
    return text if text and text != "no output" else type(error).__name__


# ---- section 1: environment, backends, fingerprints -------------------------------------
def environment() -> dict[str, Any]:
    """Library versions and what ONNX Runtime's GPU providers will load."""
    from devices import gpu_libs
    from devices.engine_cache import default_folder
    from devices.fingerprint import _driver_version, cudnn_version

    info: dict[str, Any] = {"python": platform.python_version(), "host": platform.node()}
    import torch

    info.update({"torch": str(torch.__version__), "torch_cuda": torch.version.cuda,
                 "cuda_available": torch.cuda.is_available(), "gpu_driver": _driver_version()})
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cudnn"] = cudnn_version(torch.backends.cudnn.version())
    try:
        import onnxruntime as ort
        from onnxruntime.capi import build_and_package_info as build

        info.update({"onnxruntime": str(ort.__version__),
                     "onnxruntime_package": getattr(build, "package_name", None),
                     "onnxruntime_build_cuda": getattr(build, "cuda_version", None),
                     "ort_providers": list(ort.get_available_providers()),
                     "ort_tensorrt_links": gpu_libs.ort_tensorrt_majors()})
        if "TensorrtExecutionProvider" in info["ort_providers"]:
            info["ort_preload"] = gpu_libs.preload_for_ort("tensorrt")
    except ImportError as error:
        info["onnxruntime"] = f"not importable: {error}"
    try:
        import tensorrt  # type: ignore

        info["tensorrt"] = str(tensorrt.__version__)
    except ImportError as error:
        info["tensorrt"] = f"not importable: {error}"
    lib_dir = gpu_libs.tensorrt_lib_dir()
    info["tensorrt_libs"] = str(lib_dir) if lib_dir else None
    info["engine_cache_env"] = default_folder()
    return info


def env_section(specs: Sequence[str] = GPU_SPECS) -> dict[str, Any]:
    """``devices.available()``, and the fingerprint of each of ``specs`` (or why not)."""
    import devices

    out: dict[str, Any] = {"environment": environment(), "available": [], "backends": {}}
    out["available"] = [{"spec": s.spec, "available": s.available, "reason": s.reason}
                        for s in devices.available()]
    for spec in specs:
        entry: dict[str, Any] = {}
        try:
            profiler = devices.get(spec)
            try:
                entry = {"available": True, "fingerprint": profiler.fingerprint()}
            finally:
                profiler.close()
        except Exception as error:  # noqa: BLE001 - a backend that cannot run says why
            entry = {"available": False, "reason": _reason(error)}
        out["backends"][spec] = entry
    return out


# ---- sections 2-3: profiling, two passes, caches, providers ------------------------------
def sample_archs(n: int, seed: int, names: Sequence[str] = SPACES) -> dict[str, list[str]]:
    """``n`` architecture strings per space (the same in every process for the same seed)."""
    import spaces

    out = {}
    for name in names:
        space = spaces.get(name)
        out[name] = [space.to_string(a) for a in space.sample_many(n, seed)]
    return out


def _row(pass_no: int, space: str, arch: str, m: Any) -> dict[str, Any]:
    return {"pass": pass_no, "space": space, "arch": arch, "batch": m.batch,
            "latency_ms": m.latency_ms, "statistic": m.statistic, "median_ms": m.median_ms,
            "min_ms": m.min_ms, "cv": m.cv, "robust_cv": m.robust_cv, "n_samples": m.n_samples,
            "setup_s": m.setup_s, "timing_s": m.timing_s, "warmup_s": m.warmup_s,
            "reference_ms": m.reference_ms, "precision": m.precision}


def _engine_files(folder: Path) -> dict[str, tuple[int, int]]:
    """Engine files ONNX Runtime wrote under ``folder``: path -> (mtime_ns, size)."""
    if not folder.is_dir():
        return {}
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*.engine")}


class _Backend:
    """One profiler over the two passes, with the bookkeeping the check reports."""

    def __init__(self, spec: str, plan: Any, cache_dir: Path | None) -> None:
        import devices

        settings: dict[str, Any] = {"plan": plan}
        if cache_dir is not None:
            settings["engine_cache"] = cache_dir
        self.spec, self.cache_dir = spec, cache_dir
        self.profiler = devices.get(spec, **settings)
        self.fingerprint = self.profiler.fingerprint()

    def snapshot(self) -> dict[str, Any]:
        """What the engine cache holds now (counts only; compared between passes)."""
        cache = getattr(self.profiler, "engine_cache", None)
        if self.spec == "tensorrt" and cache is not None:
            return {"engines": len(cache), "builds": self.profiler.builds,
                    "build_s": self.profiler.build_s, **cache.stats()}
        if self.spec == "ort:tensorrt" and self.cache_dir is not None:
            files = _engine_files(self.cache_dir / "ort-tensorrt")
            return {"engines": len(files), "files": files}
        return {}

    def close(self) -> None:
        self.profiler.close()


def _measure(backend: _Backend, space: Any, strings: list[str], modules: dict[str, Any],
             batch: int) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """Measure a group; if it fails for one network, measure each alone to find which."""
    from devices.errors import DeviceUnavailable
    from spaces.errors import HwnasError

    for text in strings:
        if text not in modules:
            modules[text] = space.build(space.from_string(text))
    try:
        found = backend.profiler.measure_many([modules[t] for t in strings], space.input_shape(),
                                              batch)
        return list(zip(strings, found)), []
    except DeviceUnavailable:
        raise
    except HwnasError as error:
        if len(strings) == 1:
            return [], [(strings[0], _reason(error))]
    done: list[tuple[str, Any]] = []
    failed: list[tuple[str, str]] = []
    for text in strings:
        d, f = _measure(backend, space, [text], modules, batch)
        done += d
        failed += f
    return done, failed


def profile_backend(spec: str, archs: dict[str, list[str]], batches: Sequence[int], plan: Any,
                    budget_s: float, work: Path, group: int = GROUP,
                    on_update: Update | None = None) -> dict[str, Any]:
    """Measure ``archs`` (space -> arch strings) at each batch on ``spec`` twice, within
    ``budget_s``: pass 1 in groups until its share of the budget is spent, pass 2 over what
    pass 1 measured; both committed to temporary stores under ``work``. Returns every
    measurement, per-pass times, the engine-cache comparison and (ORT) the providers."""
    import spaces
    from latency.store import MeasurementStore

    deadline = Deadline(budget_s)
    chunks = plan_chunks(archs, batches, group)
    result: dict[str, Any] = {"spec": spec, "status": "ok", "budget_s": budget_s,
                              "planned": sum(len(c[2]) for c in chunks), "measurements": [],
                              "failures": [], "skipped": [], "passes": {}}

    def update() -> None:
        result["elapsed_s"] = deadline.elapsed()
        if on_update is not None:
            on_update(result)

    cache_dir = work / "engine-cache" if spec in ENGINE_CACHED else None
    try:
        backend = _Backend(spec, plan, cache_dir)
    except Exception as error:  # noqa: BLE001 - DeviceUnavailable and anything a driver raises
        result["status"] = _reason(error)
        update()
        return result
    result.update({"label": backend.fingerprint.get("label"), "precision": backend.profiler.precision,
                   "fingerprint_id": backend.fingerprint.get("id"), "fingerprint": backend.fingerprint})
    space_objs = {name: spaces.get(name) for name in archs}
    modules: dict[str, Any] = {}  # kept between passes: pass 2 reuses each module's export
    slug = spec.replace(":", "-")
    stores = {p: MeasurementStore(work / f"{slug}-pass{p}.sqlite") for p in (1, 2)}
    measured: list[tuple[str, int, list[str], float]] = []  # pass-1 groups and their timing time
    snapshots: dict[int, dict[str, Any]] = {0: backend.snapshot()}
    try:
        for pass_no in (1, 2):
            start, build0 = time.perf_counter(), backend.snapshot().get("build_s")
            if pass_no == 1:
                guard = deadline.sub(budget_s * PASS1_SHARE)
                todo = [(s, b, strings, 0.0) for s, b, strings in chunks]
            else:
                guard, todo = deadline, list(measured)
            estimate, per_network = 0.0, 0.0
            for space_name, batch, strings, timed_s in todo:
                if pass_no == 2:  # no builds: pass 1's timing time, or what pass 2 takes so far
                    estimate = max(timed_s * 1.3 + 0.5, per_network * len(strings) * 1.2)
                if not guard.fits(estimate):
                    result["skipped"].append({"pass": pass_no, "space": space_name, "batch": batch,
                                              "networks": len(strings),
                                              "reason": f"time guard ({guard.remaining():.0f} s left)"})
                    continue
                t0 = time.perf_counter()
                done, failed = _measure(backend, space_objs[space_name], strings, modules, batch)
                if pass_no == 1:
                    estimate = (time.perf_counter() - t0) * 1.2
                else:
                    per_network = (time.perf_counter() - t0) / max(1, len(strings))
                rows = [_row(pass_no, space_name, text, m) for text, m in done]
                result["measurements"] += rows
                result["failures"] += [{"pass": pass_no, "space": space_name, "batch": batch,
                                        "arch": text, "reason": why} for text, why in failed]
                stores[pass_no].add_many([(space_objs[space_name].key, text, backend.fingerprint,
                                           m.to_dict()) for text, m in done])
                if pass_no == 1 and done:
                    measured.append((space_name, batch, [t for t, _ in done],
                                     sum(r["timing_s"] + r["warmup_s"] for r in rows)))
                update()
            snapshots[pass_no] = backend.snapshot()
            build1 = snapshots[pass_no].get("build_s")
            result["passes"][str(pass_no)] = {
                "wall_s": time.perf_counter() - start,
                "build_s": (build1 - build0) if build1 is not None and build0 is not None else None,
                "stored_rows": len(stores[pass_no])}
            update()
        result["cache"] = _cache_report(spec, snapshots, result)
        if spec.startswith("ort:") and spec != "ort:cpu":
            result["providers"] = provider_check(backend.profiler, space_objs, modules)
    except Exception as error:  # noqa: BLE001 - one backend failing must not stop the others
        result["status"] = f"{type(error).__name__}: {_reason(error)}"
    finally:
        backend.close()
        for store in stores.values():
            store.close()
        update()
    return result


def _cache_report(spec: str, snapshots: dict[int, dict[str, Any]], result: dict[str, Any]) -> dict[str, Any]:
    """Did pass 2 rebuild engines? Compares the cache after pass 1 with after pass 2."""
    if spec not in ENGINE_CACHED:
        return {"kind": None, "verdict": "ok"}
    remeasured = sum(1 for r in result["measurements"] if r["pass"] == 2)
    after1, after2 = snapshots.get(1, {}), snapshots.get(2, {})
    if spec == "tensorrt":
        rebuilt = int(after2.get("builds", 0)) - int(after1.get("builds", 0))
        report = {"kind": "tensorrt", "engines_after_pass1": after1.get("engines", 0),
                  "builds_pass1": after1.get("builds", 0), "builds_pass2": rebuilt,
                  "hits": after2.get("hits"), "folder": after2.get("folder")}
    else:
        files1, files2 = after1.get("files", {}), after2.get("files", {})
        rebuilt = sum(1 for path, stamp in files2.items() if files1.get(path) != stamp)
        report = {"kind": "ort-tensorrt", "engines_after_pass1": len(files1),
                  "model_folders": len({str(Path(p).parent) for p in files1}),
                  "new_or_rewritten_in_pass2": rebuilt}
    report["verdict"] = engine_cache_verdict(report["kind"], int(report["engines_after_pass1"]),
                                             rebuilt, remeasured)
    return report


def provider_check(profiler: Any, space_objs: dict[str, Any], modules: dict[str, Any]) -> dict[str, Any]:
    """For one network per space: the session's providers (the profiler refuses a session
    whose first provider is not the one asked for) and whether ONNX Runtime accepts it with
    CPU fall-back disabled for single nodes (``session.disable_cpu_ep_fallback``)."""
    import onnxruntime as ort

    from devices.onnx_export import export_onnx
    from devices.ort_backend import captured_native_output

    report: dict[str, Any] = {"sessions": {}, "verdict": "ok"}
    for name, space in space_objs.items():
        module = next((m for text, m in modules.items() if _belongs(space, text)), None)
        if module is None:
            continue
        entry: dict[str, Any] = {}
        model = export_onnx(module, tuple(space.input_shape()), 1)
        shape = (1, *space.input_shape())
        try:
            entry["providers"] = list(profiler._session(model, shape).get_providers())
        except Exception as error:  # noqa: BLE001 - DeviceUnavailable names ORT's reason
            entry["providers"] = None
            report["verdict"] = _reason(error)
        options = profiler._session_options()
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        # ORT refuses that setting when the CPU provider is listed, so it is left out here
        providers = [p for p in profiler._providers(model, shape) if p != "CPUExecutionProvider"]
        with captured_native_output():
            try:
                ort.InferenceSession(model, options, providers=providers)
                entry["cpu_nodes"] = "none"
            except Exception as error:  # noqa: BLE001 - the message names the nodes' problem
                entry["cpu_nodes"] = _reason(error)
        report["sessions"][name] = entry
    return report


def _belongs(space: Any, text: str) -> bool:
    from spaces.errors import HwnasError

    try:
        space.from_string(text)
        return True
    except HwnasError:
        return False


# ---- section 4: export through the package's TensorRT path ------------------------------
def calibrate_batchnorm(model: Any, input_shape: Sequence[int], seed: int, steps: int = 10) -> Any:
    """Fill BatchNorm running statistics from random batches (train mode, no gradients).
    Why: an untrained FBNet in eval mode outputs logits of ~1e-8, below fp16's smallest
    normal number, so an fp16/fp32 comparison of it would measure underflow, not fp16."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn((16, *input_shape), generator=generator))
    return model.eval()


def _logit_diff(got: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    got64, ref64 = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got64.shape != ref64.shape:
        return {"error": f"shape {list(got64.shape)} vs {list(ref64.shape)}"}
    if not np.all(np.isfinite(got64)):
        return {"error": "logits are not all finite"}
    diff = float(np.max(np.abs(got64 - ref64)))
    scale = float(np.max(np.abs(ref64)))
    return {"max_abs_diff": diff, "relative": diff / scale if scale else None, "scale": scale}


def export_section(work: Path, device: str, seed: int, plan: Any, on_update: Update | None = None,
                   batch: int = 8) -> dict[str, Any]:
    """Export one fbnet network with ``hwnas.export`` (measured on ``device``), build the
    package's fp16 TensorRT engine of the file where it offers one, and run the file on
    every GPU runtime available: logits against torch fp32 (and fp16 against fp32), and
    the batch-1 latency of each, timed together in interleaved rounds."""
    import torch

    import devices
    import spaces
    from devices.measurement import Measurement
    from devices.timing import run_interleaved
    from hwnas.export import build_tensorrt_engine, export_arch

    result: dict[str, Any] = {"status": "ok", "device": device, "variants": {}, "notes": []}

    def update() -> None:
        if on_update is not None:
            on_update(result)

    space = spaces.get("fbnet")
    arch = space.sample_many(1, seed + 1)[0]
    shape = tuple(space.input_shape())
    result["arch"] = space.to_string(arch)
    model = calibrate_batchnorm(space.build(arch), shape, seed)
    path = work / "fbnet.onnx"
    try:
        profiler = devices.get(device, plan=plan)
        report = export_arch(space, arch, path, model=model, device=profiler)
        profiler.close()
    except Exception as error:  # noqa: BLE001 - the export failing is this section's result
        result["status"] = f"the export failed: {_reason(error)}"
        update()
        return result
    result["export"] = {"path": str(path), "file_bytes": report.file_bytes, "exporter": report.exporter,
                        "opset": report.opset, "parity_max_abs_diff": report.parity_max_abs_diff,
                        "output_scale": report.output_scale, "latency_ms": report.latency_ms,
                        "measured_on": report.device, "export_s": report.export_s,
                        # newer hwnas.export times the file's own bytes where the device runs ONNX
                        "measured_what": getattr(report, "latency_measured_on", "module")}
    update()

    rng = np.random.default_rng(seed)
    x_many = rng.standard_normal((batch, *shape)).astype(np.float32)
    x_one = rng.standard_normal((1, *shape)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x_many)).numpy()
    runners: dict[str, Any] = {}
    logits: dict[str, np.ndarray] = {}

    def variant(name: str, precision: str, build: Callable[[], tuple[np.ndarray, Any]]) -> None:
        entry: dict[str, Any] = {"precision": precision}
        start = time.perf_counter()
        try:
            out, runner = build()
            logits[name] = out
            runners[name] = runner
            entry.update(_logit_diff(out, reference))
            if "error" in entry:
                result["status"] = f"{name}: {entry['error']}"
        except Exception as error:  # noqa: BLE001 - a runtime missing here is reported, not fatal
            entry["skipped"] = _reason(error)
        entry["setup_s"] = time.perf_counter() - start
        result["variants"][name] = entry
        update()

    for precision in ("fp32", "fp16"):
        def torch_variant(precision: str = precision) -> tuple[np.ndarray, Any]:
            gpu = devices.get("torch:cuda", precision=precision, plan=plan)
            dtype = torch.float16 if precision == "fp16" else torch.float32
            module = copy.deepcopy(model).to("cuda", dtype).eval()
            with torch.no_grad():
                out = module(torch.from_numpy(x_many).to("cuda", dtype)).float().cpu().numpy()
            return out, gpu._prepare(model, shape, 1)
        variant(f"torch:cuda {precision}", precision, torch_variant)

    data = path.read_bytes()
    for spec, precision in (("ort:cuda", "fp32"), ("ort:tensorrt", "fp32"), ("ort:tensorrt", "fp16")):
        def ort_variant(spec: str = spec, precision: str = precision) -> tuple[np.ndarray, Any]:
            from devices.ort_backend import _OrtIOBindingRunner

            profiler = devices.get(spec, precision=precision, plan=plan,
                                   engine_cache=work / "engine-cache")
            session = profiler._session(data)  # refuses a silent fall-back to CPU
            (out,) = session.run(["logits"], {"input": x_many})
            return out, _OrtIOBindingRunner(session, {"input": x_one}, 0)
        variant(f"{spec} {precision} (file)", precision, ort_variant)

    engine_path = work / "fbnet.engine"

    def engine_variant() -> tuple[np.ndarray, Any]:
        start = time.perf_counter()
        build_tensorrt_engine(path, engine_path, max_batch=batch)  # says why not, in one sentence
        import tensorrt as trt  # type: ignore

        from devices.tensorrt_backend import engine_runner

        result["engine"] = {"path": str(engine_path), "bytes": engine_path.stat().st_size,
                            "build_s": time.perf_counter() - start}
        runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        device_obj = torch.device("cuda", 0)
        many = engine_runner(trt, engine, device_obj, {"input": x_many.shape})
        many.inputs["input"].copy_(torch.from_numpy(x_many).to(device_obj))
        torch.cuda.synchronize(device_obj)  # the copy ran on the default stream, the engine does not
        many.time_once()
        out = many.outputs["logits"].float().cpu().numpy()
        many.close()
        one = engine_runner(trt, engine, device_obj, {"input": x_one.shape})
        one._keep = (runtime, engine)  # the runtime must outlive the engine
        return out, one
    variant("tensorrt fp16 engine (hwnas export)", "fp16", engine_variant)

    for fp16, fp32 in (("torch:cuda fp16", "torch:cuda fp32"),
                       ("ort:tensorrt fp16 (file)", "ort:tensorrt fp32 (file)"),
                       ("tensorrt fp16 engine (hwnas export)", "ort:cuda fp32 (file)")):
        if fp16 in logits and fp32 in logits:
            result.setdefault("fp16_vs_fp32", {})[f"{fp16} vs {fp32}"] = _logit_diff(logits[fp16],
                                                                                      logits[fp32])
    if runners:
        names = list(runners)
        try:
            raw = run_interleaved([runners[n] for n in names], plan, cpu_clock=False)
            for name, timing in zip(names, raw):
                m = Measurement.from_samples(timing.rounds_ms, plan.statistic, batch=1,
                                             input_shape=shape, warmup_iters=timing.warmup_iters,
                                             warmup_s=timing.warmup_s)
                result["variants"][name].update({"latency_ms": m.latency_ms, "median_ms": m.median_ms,
                                                 "statistic": m.statistic, "n_samples": m.n_samples})
        except Exception as error:  # noqa: BLE001
            result["status"] = f"timing the exported file failed: {_reason(error)}"
        finally:
            for runner in runners.values():
                runner.close()
    skipped = {n: v["skipped"] for n, v in result["variants"].items() if "skipped" in v}
    if len(skipped) == len(result["variants"]):
        result["status"] = f"no GPU runtime ran the exported file; first: {next(iter(skipped.values()))}"
    result["notes"] = [f"{n}: {why}" for n, why in skipped.items()]
    update()
    return result


def environ_with_root(root: Path) -> dict[str, str]:
    """The environment for a child process that imports hwnas from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in env.get("PYTHONPATH", "").split(
        os.pathsep) if p])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
