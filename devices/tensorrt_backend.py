"""``tensorrt[:N]``: an engine built from the ONNX export with the TensorRT Python API.

Precision: FP16 by default. TensorRT deprecated weakly-typed networks (the
``BuilderFlag.FP16`` hint) in 10.12 and removed them in 11, where precision
comes from the graph's own types. So on TensorRT >= 10.12 (or whenever the
FP16 flag is gone) the module is exported in fp16 and the network is built
strongly typed; on older versions an fp32 export is built with the FP16 flag
when the GPU has fast fp16. ``fp32`` builds a plain fp32 engine. The precision
actually used is recorded in the fingerprint and in every Measurement.

Timing: IO tensors are pre-allocated torch CUDA tensors bound by address; each
sample is ``execute_async_v3`` on a private stream between two CUDA events,
after synchronising the stream. Needs TensorRT >= 8.5 (tensor-address API).

Engines are cached by the hash of the ONNX bytes and the build settings
(:mod:`devices.engine_cache`; in memory, or in the ``engine_cache`` folder /
``HWNAS_ENGINE_CACHE``), so measuring a network again does not rebuild it, and
builds share one timing cache (tactic timings of layers already seen), which
makes the many similar networks of a search space build faster.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

from devices.base import Profiler
from devices.engine_cache import EngineCache, default_folder, engine_key, write_atomically
from devices.errors import DeviceUnavailable, ProfilingError
from devices.onnx_export import export_onnx

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 1 << 30


def _version(trt: Any) -> tuple[int, int]:
    parts = (str(getattr(trt, "__version__", "0.0")).split(".") + ["0"])[:2]
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return 0, 0


def strongly_typed_fp16(trt: Any) -> bool:
    """True when fp16 must come from an fp16 graph (strong typing), not from a builder flag."""
    return _version(trt) >= (10, 12) or not hasattr(trt.BuilderFlag, "FP16")


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16,
             "INT32": torch.int32, "INT64": torch.int64, "INT8": torch.int8,
             "UINT8": torch.uint8, "BOOL": torch.bool}
    for name, torch_dtype in table.items():
        if hasattr(trt.DataType, name) and dtype == getattr(trt.DataType, name):
            return torch_dtype
    raise ProfilingError(f"TensorRT tensor type {dtype} has no torch equivalent")


class EngineRunner:
    """One engine with bound, pre-allocated IO tensors; ``time_once`` runs it between CUDA
    events on a private stream. ``outputs`` are the output tensors (torch, on the GPU)."""

    def __init__(self, engine: Any, context: Any, buffers: list[Any], stream: Any,
                 outputs: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None) -> None:
        import torch

        self.engine, self.context, self.buffers, self.stream = engine, context, buffers, stream
        self.outputs, self.inputs = outputs or {}, inputs or {}
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def time_once(self) -> float:
        self.stream.synchronize()
        self.start.record(self.stream)
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ProfilingError("TensorRT execute_async_v3 reported a failure")
        self.end.record(self.stream)
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end))

    def time_block(self, k: int) -> float:
        """``k`` enqueues between one pair of events on the private stream."""
        self.stream.synchronize()
        self.start.record(self.stream)
        for _ in range(k):
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise ProfilingError("TensorRT execute_async_v3 reported a failure")
        self.end.record(self.stream)
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end))

    def close(self) -> None:
        self.context = self.engine = None
        self.buffers = []
        self.outputs, self.inputs = {}, {}


def engine_runner(trt: Any, engine: Any, device: Any,
                  input_shapes: dict[str, Sequence[int]] | None = None) -> EngineRunner:
    """Bind pre-allocated torch tensors to every IO tensor of ``engine`` on ``device`` (random
    inputs, empty outputs) and run it once. ``input_shapes`` fixes dynamic input dimensions
    (an engine built with an optimisation profile); static engines need none."""
    import torch

    context = engine.create_execution_context()
    if context is None:
        raise ProfilingError("TensorRT could not create an execution context for the engine")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
    for name, shape in (input_shapes or {}).items():
        if not context.set_input_shape(name, tuple(int(d) for d in shape)):
            raise ProfilingError(f"the engine does not accept shape {tuple(shape)} for {name!r}")
    buffers, inputs, outputs = [], {}, {}
    for name in sorted(names, key=lambda n: not is_input[n]):  # inputs first: they fix outputs
        shape = tuple(context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise ProfilingError(f"TensorRT tensor {name!r} has a dynamic shape {shape}")
        dtype = _torch_dtype(trt, engine.get_tensor_dtype(name))
        if is_input[name]:
            tensor = torch.randn(shape, device=device).to(dtype)
            inputs[name] = tensor
        else:
            tensor = torch.empty(shape, device=device, dtype=dtype)
            outputs[name] = tensor
        context.set_tensor_address(name, tensor.data_ptr())
        buffers.append(tensor)
    stream = torch.cuda.Stream(device=device)
    torch.cuda.synchronize(device)  # the inputs were written on the default stream
    runner = EngineRunner(engine, context, buffers, stream, outputs, inputs)
    runner.time_once()
    return runner


class TensorRTProfiler(Profiler):
    """TensorRT engine on CUDA device N; precision ``fp16`` (default) or ``fp32``."""

    backend, target, uses_gpu = "tensorrt", "", True

    def __init__(self, index: int | None = 0,
                 engine_cache: "str | os.PathLike[str] | None" = None, **settings: Any) -> None:
        settings.setdefault("precision", "fp16")
        super().__init__(0 if index is None else index, **settings)
        self._trt: Any = None
        self._logger: Any = None
        self._runtime: Any = None
        self._fp16_mode: str | None = None
        folder = engine_cache if engine_cache is not None else default_folder()
        self.engine_cache = EngineCache(folder)
        self.build_s = 0.0  # seconds spent building engines (cache misses only)
        self.builds = 0
        self._timing_cache: Any = None

    @classmethod
    def unavailable_reason(cls, index: int | None) -> str | None:
        try:
            import tensorrt as trt  # type: ignore  # noqa: F401
        except ImportError:
            return ("tensorrt is not installed (pip install 'hwnas[tensorrt]', "
                    "needs an NVIDIA GPU)")
        from devices.gpu_libs import cuda_device_missing

        missing = cuda_device_missing("tensorrt", index)
        if missing:
            return missing
        if _version(trt) < (8, 5):
            return f"tensorrt {trt.__version__} is too old; hwnas needs TensorRT 8.5 or newer"
        return None

    # ---- TensorRT handles -----------------------------------------------------------
    def _tensorrt(self) -> Any:
        if self._trt is None:
            try:
                import tensorrt as trt  # type: ignore
            except ImportError as error:
                raise DeviceUnavailable(f"{self.spec} needs the tensorrt package: {error}") from None
            self._trt = trt
            self._logger = trt.Logger(trt.Logger.ERROR)
        return self._trt

    def _mode(self) -> str:
        """'fp32', 'fp16-strong' (fp16 graph, strongly typed) or 'fp16-flag' (builder hint)."""
        if self._fp16_mode is None:
            trt = self._tensorrt()
            if self.requested_precision != "fp16":
                self._fp16_mode = "fp32"
            elif strongly_typed_fp16(trt):
                self._fp16_mode = "fp16-strong"
            else:
                builder = trt.Builder(self._logger)
                fast = getattr(builder, "platform_has_fast_fp16", True)
                self._fp16_mode = "fp16-flag" if fast else "fp32"
        return self._fp16_mode

    @property
    def precision(self) -> str:
        return "fp32" if self._mode() == "fp32" else "fp16"

    def _fingerprint_fields(self) -> dict[str, Any]:
        import torch

        from devices.fingerprint import gpu_info

        trt = self._tensorrt()
        return {"tensorrt": str(trt.__version__), "torch": str(torch.__version__),
                "tensorrt_typing": "strong" if self._mode() == "fp16-strong" else "weak",
                **gpu_info(self.index or 0)}

    # ---- build and run --------------------------------------------------------------
    def _cache_context(self) -> dict[str, Any]:
        """Everything besides the ONNX bytes that the engine depends on (its cache key)."""
        import torch

        trt = self._tensorrt()
        props = torch.cuda.get_device_properties(self.index or 0)
        return {"tensorrt": str(trt.__version__), "mode": self._mode(),
                "workspace": WORKSPACE_BYTES, "gpu": props.name,
                "capability": f"{props.major}.{props.minor}", "device": self.index or 0}

    def _engine_plan(self, onnx_bytes: bytes) -> tuple[str, bytes]:
        """(cache key, serialized engine): from the cache, else built and cached."""
        key = engine_key(onnx_bytes, self._cache_context())
        plan = self.engine_cache.get(key)
        if plan is None:
            start = time.perf_counter()
            plan = self._build_plan(onnx_bytes)
            self.build_s += time.perf_counter() - start
            self.builds += 1
            self.engine_cache.put(key, plan)
        return key, plan

    def _timing_cache_path(self) -> Path | None:
        folder = self.engine_cache.folder
        return folder / "timing.cache" if folder is not None else None

    def _attach_timing_cache(self, config: Any) -> None:
        """One timing cache for every build of this profiler (loaded from the cache folder)."""
        if not hasattr(config, "create_timing_cache"):
            return
        try:
            if self._timing_cache is None:
                path = self._timing_cache_path()
                data = path.read_bytes() if path is not None and path.is_file() else b""
                self._timing_cache = config.create_timing_cache(data)
                if data and not config.set_timing_cache(self._timing_cache, False):
                    # saved by another TensorRT version or GPU: start an empty one
                    self._timing_cache = config.create_timing_cache(b"")
            config.set_timing_cache(self._timing_cache, False)
        except Exception as error:  # noqa: BLE001 - a build without it is only slower
            log.info("TensorRT timing cache not used: %s", error)
            self._timing_cache = None

    def _save_timing_cache(self) -> None:
        path = self._timing_cache_path()
        if path is None or self._timing_cache is None:
            return
        try:
            write_atomically(path, bytes(self._timing_cache.serialize()))
        except Exception as error:  # noqa: BLE001 - only the next run's builds get slower
            log.info("could not save the TensorRT timing cache to %s: %s", path, error)

    def _build_plan(self, onnx_bytes: bytes) -> bytes:
        """Parse the ONNX bytes and build a serialized engine (the slow step)."""
        trt = self._tensorrt()
        mode = self._mode()
        builder = trt.Builder(self._logger)
        flags = 0
        major, _ = _version(trt)
        if major < 10 and hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        if mode == "fp16-strong":
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ProfilingError(f"TensorRT could not parse the ONNX export: {errors or 'no detail'}")
        config = builder.create_builder_config()
        if hasattr(config, "set_memory_pool_limit"):
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if mode == "fp16-flag":
            config.set_flag(trt.BuilderFlag.FP16)
        self._attach_timing_cache(config)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ProfilingError("TensorRT failed to build an engine for this network")
        self._save_timing_cache()
        return bytes(plan)

    def _build_engine(self, onnx_bytes: bytes) -> Any:
        """The engine of these ONNX bytes, deserialized from the cache or freshly built."""
        trt = self._tensorrt()
        if self._runtime is None:
            self._runtime = trt.Runtime(self._logger)  # must outlive every engine it made
        builds = self.builds
        key, plan = self._engine_plan(onnx_bytes)
        engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None and self.builds == builds:  # a cached engine that does not load
            self.engine_cache.discard(key)
            key, plan = self._engine_plan(onnx_bytes)
            engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise ProfilingError("TensorRT could not deserialize the engine it just built")
        return engine

    def _prepare(self, module: Any, input_shape: tuple[int, ...], batch: int) -> EngineRunner:
        import torch

        trt = self._tensorrt()
        device = torch.device("cuda", self.index or 0)
        strong = self._mode() == "fp16-strong"
        onnx_bytes = export_onnx(module, input_shape, batch, half=strong,
                                 device=str(device) if strong else "cpu")
        with torch.cuda.device(device):
            engine = self._build_engine(onnx_bytes)
            return engine_runner(trt, engine, device)
