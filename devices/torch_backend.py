"""Eager PyTorch profilers: ``torch:cpu`` (wall clock) and ``torch:cuda[:N]`` (CUDA events).

CPU runs use a fixed intra-op thread count (default 1) set for the duration of
the measurement and restored afterwards, because torch's default (all cores)
makes latency depend on what else the machine is doing.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from typing import Any, Iterator

from devices.base import Profiler
from devices.errors import InvalidSetting


class _TorchCPURunner:
    def __init__(self, module: Any, example: Any) -> None:
        self.module, self.example = module, example

    def time_once(self) -> float:
        import torch

        start = time.perf_counter()
        with torch.inference_mode():
            self.module(self.example)
        return (time.perf_counter() - start) * 1e3

    def time_block(self, k: int) -> float:
        import torch

        module, example = self.module, self.example
        with torch.inference_mode():
            start = time.perf_counter()
            for _ in range(k):
                module(example)
            return (time.perf_counter() - start) * 1e3

    def close(self) -> None:
        self.module = self.example = None


class _TorchCUDARunner:
    """Synchronize, record a start event, run, record an end event, wait for it."""

    def __init__(self, module: Any, example: Any, device: Any) -> None:
        import torch

        self.module, self.example, self.device = module, example, device
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def time_once(self) -> float:
        import torch

        torch.cuda.synchronize(self.device)
        with torch.inference_mode():
            self.start.record()
            self.module(self.example)
            self.end.record()
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end))

    def time_block(self, k: int) -> float:
        """One pair of events around ``k`` launches: per-launch host overhead overlaps
        with the GPU work as it does in a serving loop."""
        import torch

        torch.cuda.synchronize(self.device)
        with torch.inference_mode():
            self.start.record()
            for _ in range(k):
                self.module(self.example)
            self.end.record()
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end))

    def close(self) -> None:
        self.module = self.example = None


class TorchCPUProfiler(Profiler):
    """``torch:cpu``: eager module, float32, ``plan.threads`` intra-op threads."""

    backend, target = "torch", "cpu"

    def __init__(self, index: int | None = None, **settings: Any) -> None:
        super().__init__(None, **settings)
        if self.requested_precision != "fp32":
            raise InvalidSetting("torch:cpu measures fp32 only")

    def _fingerprint_fields(self) -> dict[str, Any]:
        import torch

        return {"torch": str(torch.__version__)}

    @contextmanager
    def _timing_scope(self) -> Iterator[None]:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.plan.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _prepare(self, module: Any, input_shape: tuple[int, ...], batch: int) -> _TorchCPURunner:
        import torch

        module.eval()
        runner = _TorchCPURunner(module, torch.randn((batch, *input_shape)))
        runner.time_once()
        return runner


class TorchCUDAProfiler(Profiler):
    """``torch:cuda:N``: eager module on GPU N (fp32, or an fp16 copy), CUDA-event timing."""

    backend, target, uses_gpu = "torch", "cuda", True

    def __init__(self, index: int | None = 0, **settings: Any) -> None:
        super().__init__(0 if index is None else index, **settings)

    @classmethod
    def unavailable_reason(cls, index: int | None) -> str | None:
        from devices.gpu_libs import cuda_device_missing

        return cuda_device_missing("torch:cuda", index)

    def _fingerprint_fields(self) -> dict[str, Any]:
        import torch

        from devices.fingerprint import gpu_info

        return {"torch": str(torch.__version__), **gpu_info(self.index or 0)}

    def _prepare(self, module: Any, input_shape: tuple[int, ...], batch: int) -> _TorchCUDARunner:
        import torch

        device = torch.device("cuda", self.index or 0)
        dtype = torch.float16 if self.requested_precision == "fp16" else torch.float32
        gpu_module = copy.deepcopy(module).to(device=device, dtype=dtype).eval()
        example = torch.randn((batch, *input_shape), device=device, dtype=dtype)
        runner = _TorchCUDARunner(gpu_module, example, device)
        runner.time_once()
        return runner
