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
"""

from __future__ import annotations

from typing import Any

from devices.base import Profiler
from devices.errors import DeviceUnavailable, ProfilingError
from devices.onnx_export import export_onnx

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


class _EngineRunner:
    def __init__(self, engine: Any, context: Any, buffers: list[Any], stream: Any) -> None:
        import torch

        self.engine, self.context, self.buffers, self.stream = engine, context, buffers, stream
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


class TensorRTProfiler(Profiler):
    """TensorRT engine on CUDA device N; precision ``fp16`` (default) or ``fp32``."""

    backend, target, uses_gpu = "tensorrt", "", True

    def __init__(self, index: int | None = 0, **settings: Any) -> None:
        settings.setdefault("precision", "fp16")
        super().__init__(0 if index is None else index, **settings)
        self._trt: Any = None
        self._logger: Any = None
        self._runtime: Any = None
        self._fp16_mode: str | None = None

    @classmethod
    def unavailable_reason(cls, index: int | None) -> str | None:
        try:
            import tensorrt as trt  # type: ignore  # noqa: F401
        except ImportError:
            return ("tensorrt is not installed (pip install 'hwnas[tensorrt]', "
                    "needs an NVIDIA GPU)")
        import torch

        if not torch.cuda.is_available():
            return (f"tensorrt:{index or 0} needs a CUDA GPU, but torch.cuda.is_available() "
                    f"is False on this machine")
        if (index or 0) >= torch.cuda.device_count():
            return (f"tensorrt:{index} does not exist: this machine has "
                    f"{torch.cuda.device_count()} CUDA device(s)")
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
    def _build_engine(self, onnx_bytes: bytes) -> Any:
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
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ProfilingError("TensorRT failed to build an engine for this network")
        if self._runtime is None:
            self._runtime = trt.Runtime(self._logger)  # must outlive every engine it made
        engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise ProfilingError("TensorRT could not deserialize the engine it just built")
        return engine

    def _prepare(self, module: Any, input_shape: tuple[int, ...], batch: int) -> _EngineRunner:
        import torch

        trt = self._tensorrt()
        device = torch.device("cuda", self.index or 0)
        strong = self._mode() == "fp16-strong"
        onnx_bytes = export_onnx(module, input_shape, batch, half=strong,
                                 device=str(device) if strong else "cpu")
        with torch.cuda.device(device):
            engine = self._build_engine(onnx_bytes)
            context = engine.create_execution_context()
            buffers = []
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                shape = tuple(context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise ProfilingError(f"TensorRT tensor {name!r} has a dynamic shape {shape}")
                dtype = _torch_dtype(trt, engine.get_tensor_dtype(name))
                if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                    tensor = torch.randn(shape, device=device).to(dtype)
                else:
                    tensor = torch.empty(shape, device=device, dtype=dtype)
                context.set_tensor_address(name, tensor.data_ptr())
                buffers.append(tensor)
            stream = torch.cuda.Stream(device=device)
            runner = _EngineRunner(engine, context, buffers, stream)
            runner.time_once()
        return runner
