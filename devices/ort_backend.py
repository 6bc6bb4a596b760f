"""ONNX Runtime profilers: ``ort:cpu``, ``ort:cuda[:N]`` and ``ort:tensorrt[:N]``.

Each network is exported to ONNX in memory once (:mod:`devices.onnx_export`) and
one session is built per network with all graph optimisations on; timing wraps
``session.run`` with a pre-allocated input (IO binding with pre-allocated
device buffers on CUDA/TensorRT, so no host-device copy is timed).

``onnxruntime-gpu`` silently falls back to ``CPUExecutionProvider`` when the CUDA
or TensorRT provider cannot load (missing driver, cuDNN, libnvinfer...). Every
session's ``get_providers()`` is therefore checked, and a fall-back is a
:class:`DeviceUnavailable` naming ORT's own reason, never a CPU number
labelled as GPU.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from typing import Any, Iterator

import numpy as np

from devices.base import Profiler
from devices.engine_cache import default_folder, ort_tensorrt_options
from devices.errors import DeviceUnavailable, InvalidSetting, ProfilingError
from devices.gpu_libs import preload_for_ort
from devices.onnx_export import OPSET, export_onnx

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def captured_native_output() -> Iterator[list[str]]:
    """Capture what native code writes to fds 1 and 2 (ORT logs its provider-load
    errors there, not through Python), so the reason can go into our one sentence."""
    lines: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            text = _ANSI.sub("", sink.read().decode("utf-8", errors="replace"))
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


def fallback_reason(lines: list[str]) -> str:
    """The most specific line of ORT's log explaining why a provider did not load."""
    for line in lines:
        match = re.search(r"with error: (.+)$", line)
        if match:
            return match.group(1).strip()
    for line in lines:
        if "Failed to create" in line or "Please install" in line:
            return re.sub(r"^.*?\] ", "", line).strip()
    return "the provider did not load (ONNX Runtime gave no reason)"


def _probe_model() -> bytes:
    """A one-node ONNX graph (Relu) to test that a provider really loads."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


_PROBED: dict[tuple[str, int], str | None] = {}


class _OrtCPURunner:
    def __init__(self, session: Any, feeds: dict[str, np.ndarray]) -> None:
        self.session, self.feeds = session, feeds
        self.outputs = [o.name for o in session.get_outputs()]

    def time_once(self) -> float:
        start = time.perf_counter()
        self.session.run(self.outputs, self.feeds)
        return (time.perf_counter() - start) * 1e3

    def time_block(self, k: int) -> float:
        run, outputs, feeds = self.session.run, self.outputs, self.feeds
        start = time.perf_counter()
        for _ in range(k):
            run(outputs, feeds)
        return (time.perf_counter() - start) * 1e3

    def close(self) -> None:
        self.session = self.feeds = None


class _OrtIOBindingRunner:
    """Input and outputs live on the GPU in pre-allocated OrtValues; ``run_with_iobinding``
    returns once the provider's stream is done, so wall clock around it is the latency."""

    def __init__(self, session: Any, inputs: dict[str, np.ndarray], device_id: int) -> None:
        import onnxruntime as ort

        self.session = session
        self.binding = session.io_binding()
        self._keep = []
        for name, array in inputs.items():
            value = ort.OrtValue.ortvalue_from_numpy(array, "cuda", device_id)
            self._keep.append(value)
            self.binding.bind_ortvalue_input(name, value)
        for out in session.get_outputs():
            self.binding.bind_output(out.name, "cuda", device_id)
        session.run_with_iobinding(self.binding)  # lets ORT allocate outputs once
        outputs = self.binding.get_outputs()
        self._keep.extend(outputs)
        for out, value in zip(session.get_outputs(), outputs):
            self.binding.bind_ortvalue_output(out.name, value)

    def time_once(self) -> float:
        start = time.perf_counter()
        self.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()
        return (time.perf_counter() - start) * 1e3

    def time_block(self, k: int) -> float:
        start = time.perf_counter()
        for _ in range(k):
            self.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()
        return (time.perf_counter() - start) * 1e3

    def close(self) -> None:
        self.session = self.binding = None
        self._keep = []


class OrtProfiler(Profiler):
    """ONNX Runtime on one execution provider (set by subclasses' ``target``)."""

    backend = "ort"
    measures_onnx = True

    def __init__(self, index: int | None = None,
                 engine_cache: "str | os.PathLike[str] | None" = None, **settings: Any) -> None:
        self.engine_cache = engine_cache if engine_cache is not None else default_folder()
        if self.target == "cpu":
            index = None
        elif index is None:
            index = 0
        settings.setdefault("precision", "fp16" if self.target == "tensorrt" else "fp32")
        super().__init__(index, **settings)
        if self.target == "cuda" and self.requested_precision != "fp32":
            raise InvalidSetting("ort:cuda measures fp32 only (export an fp16 model for fp16)")
        if self.target == "cpu" and self.requested_precision != "fp32":
            raise InvalidSetting("ort:cpu measures fp32 only")

    @property
    def spec(self) -> str:
        base = f"ort:{self.target}"
        return base if not self.index else f"{base}:{self.index}"

    # ---- providers ------------------------------------------------------------------
    def _providers(self, model: bytes = b"", input_shape: tuple[int, ...] | None = None) -> list[Any]:
        device = {"device_id": str(self.index or 0)}
        if self.target == "cpu":
            return ["CPUExecutionProvider"]
        if self.target == "cuda":
            return [("CUDAExecutionProvider", device), "CPUExecutionProvider"]
        trt = {**device, "trt_fp16_enable": "True" if self.precision == "fp16" else "False",
               **ort_tensorrt_options(self.engine_cache, model, fp16=self.precision == "fp16",
                                      device_id=self.index or 0, input_shape=input_shape)}
        return [("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", device),
                "CPUExecutionProvider"]

    def session_settings(self) -> dict[str, Any]:
        """The session options that shape CPU timing, as recorded in the fingerprint.

        ORT's own defaults are kept where a deployer would keep them (memory arena and
        memory-pattern planning on, denormals computed, not flushed), so the number is
        what a default session costs; spinning is off because with one intra-op thread
        there is no pool to spin, and with more it would burn the other cores that
        interleaved timing shares with the rest of the machine."""
        return {"graph_optimization": "all", "execution_mode": "sequential",
                "intra_op_threads": self.plan.threads, "inter_op_threads": 1,
                "allow_spinning": False, "cpu_mem_arena": True, "mem_pattern": True,
                "denormal_as_zero": False}

    def _session_options(self) -> Any:
        import onnxruntime as ort

        settings = self.session_settings()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = settings["intra_op_threads"]
        options.inter_op_num_threads = settings["inter_op_threads"]
        options.enable_cpu_mem_arena = settings["cpu_mem_arena"]
        options.enable_mem_pattern = settings["mem_pattern"]
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if settings["allow_spinning"] else "0")
        options.add_session_config_entry("session.set_denormal_as_zero",
                                         "1" if settings["denormal_as_zero"] else "0")
        options.log_severity_level = 3
        return options

    def _session(self, model: bytes, input_shape: tuple[int, ...] | None = None) -> Any:
        """Build a session and refuse a silent fall-back to CPU."""
        import onnxruntime as ort

        wanted = PROVIDERS[self.target]
        if self.target == "cpu":
            return ort.InferenceSession(model, self._session_options(), providers=self._providers())
        preload_for_ort(self.target)  # CUDA/cuDNN/TensorRT from pip's wheels (devices.gpu_libs)
        with captured_native_output() as lines:
            try:
                session = ort.InferenceSession(model, self._session_options(),
                                               providers=self._providers(model, input_shape))
            except Exception as error:  # noqa: BLE001 - ORT raises plain RuntimeError/Fail
                session, failure = None, error
        if session is None:
            raise DeviceUnavailable(f"{self.spec} requested but ONNX Runtime could not create a "
                                    f"session: {str(failure).strip().splitlines()[0]}")
        active = session.get_providers()
        if not active or active[0] != wanted:
            raise DeviceUnavailable(
                f"{self.spec} requested but ONNX Runtime fell back to "
                f"{active[0] if active else 'no provider'}: {fallback_reason(lines)}")
        return session

    @classmethod
    def unavailable_reason(cls, index: int | None) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime-gpu)"
        if cls.target == "cpu":
            return None
        key = (cls.target, index or 0)
        if key not in _PROBED:
            spec = f"ort:{cls.target}" + (f":{index}" if index else "")
            wanted = PROVIDERS[cls.target]
            if wanted not in ort.get_available_providers():
                _PROBED[key] = (f"{spec} requested but this onnxruntime build has no {wanted} "
                                f"(install onnxruntime-gpu)")
            else:
                try:
                    cls(index)._session(_probe_model())
                    _PROBED[key] = None
                except DeviceUnavailable as error:
                    _PROBED[key] = str(error)
        return _PROBED[key]

    # ---- identity and timing --------------------------------------------------------
    def _fingerprint_fields(self) -> dict[str, Any]:
        import onnxruntime as ort
        import torch

        fields: dict[str, Any] = {"onnxruntime": str(ort.__version__), "torch": str(torch.__version__),
                                  "onnx_opset": OPSET, "onnx_batch": "dynamic",
                                  "provider": PROVIDERS[self.target],
                                  "ort_session": self.session_settings()}
        if self.target != "cpu":
            from devices.fingerprint import gpu_info

            fields.update(gpu_info(self.index or 0))
        if self.target == "tensorrt":
            try:
                import tensorrt  # type: ignore

                fields["tensorrt"] = tensorrt.__version__
            except ImportError:
                fields["tensorrt"] = None
        return fields

    def _prepare(self, module: Any, input_shape: tuple[int, ...], batch: int) -> Any:
        return self._prepare_onnx(export_onnx(module, input_shape, dynamic_batch=True),
                                  input_shape, batch)

    def _prepare_onnx(self, model: bytes, input_shape: tuple[int, ...], batch: int) -> Any:
        """A session over exactly these bytes (a file's, or the in-memory export's)."""
        session = self._session(model, (batch, *input_shape))  # the shape keys the engine cache
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ProfilingError(f"expected a network with one input, the model has {len(inputs)}")
        rng = np.random.default_rng(0)
        feed = {inputs[0].name: rng.standard_normal((batch, *input_shape)).astype(np.float32)}
        if self.target == "cpu":
            runner: Any = _OrtCPURunner(session, feed)
        else:
            runner = _OrtIOBindingRunner(session, feed, self.index or 0)
        try:
            runner.time_once()
        except Exception as error:  # noqa: BLE001 - ORT raises plain RuntimeError/Fail
            raise ProfilingError(f"ONNX Runtime could not run the model at input "
                                 f"{[batch, *input_shape]}: {str(error).strip().splitlines()[0]}") from None
        return runner


class OrtCPUProfiler(OrtProfiler):
    """``ort:cpu``: CPUExecutionProvider, ``plan.threads`` intra-op threads."""

    target = "cpu"


class OrtCUDAProfiler(OrtProfiler):
    """``ort:cuda[:N]``: CUDAExecutionProvider with IO binding."""

    target, uses_gpu = "cuda", True


class OrtTensorRTProfiler(OrtProfiler):
    """``ort:tensorrt[:N]``: TensorrtExecutionProvider (fp16 by default), CUDA EP for the rest."""

    target, uses_gpu = "tensorrt", True
