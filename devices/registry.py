"""Profilers found by spec string, as timm finds models: ``devices.get("ort:cpu")``.

Specs are ``backend:target[:index]``: ``torch:cpu``, ``torch:cuda[:N]``,
``ort:cpu``, ``ort:cuda[:N]``, ``ort:tensorrt[:N]``, ``tensorrt[:N]``; ``cpu``
and ``cuda`` are aliases. Entries are import paths so that listing specs does
not import onnxruntime or tensorrt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from devices.base import Profiler
from devices.errors import DeviceUnavailable
from spaces.core import Registry
from spaces.errors import UnknownName

DEVICES: Registry[type[Profiler]] = Registry("device", {
    "torch:cpu": "devices.torch_backend:TorchCPUProfiler",
    "torch:cuda": "devices.torch_backend:TorchCUDAProfiler",
    "ort:cpu": "devices.ort_backend:OrtCPUProfiler",
    "ort:cuda": "devices.ort_backend:OrtCUDAProfiler",
    "ort:tensorrt": "devices.ort_backend:OrtTensorRTProfiler",
    "tensorrt": "devices.tensorrt_backend:TensorRTProfiler",
})
# Backends whose spec takes a device index (default 0).
_INDEXED = {"torch:cuda", "ort:cuda", "ort:tensorrt", "tensorrt"}
ALIASES = {"cpu": "torch:cpu", "cuda": "torch:cuda:0"}
names = DEVICES.names


def register(name: str, factory: "str | Callable[..., Profiler]", indexed: bool = False) -> None:
    """Add a backend (a class or a ``module:attr`` path) under ``name``."""
    DEVICES.register(name, factory)
    if indexed:
        _INDEXED.add(name)


def unregister(name: str) -> None:
    """Remove a backend (tests that register a stand-in clean up with it)."""
    DEVICES.unregister(name)
    _INDEXED.discard(name)


def _known() -> list[str]:
    return [f"{n}[:N]" if n in _INDEXED else n for n in names()] + sorted(ALIASES)


def parse(spec: str) -> tuple[str, int | None]:
    """``"ort:cuda:1"`` -> ``("ort:cuda", 1)``; ``"cpu"`` -> ``("torch:cpu", None)``."""
    text = str(spec).strip().lower()
    text = ALIASES.get(text, text)
    if text in DEVICES:
        return text, (0 if text in _INDEXED else None)
    head, _, tail = text.rpartition(":")
    if head in _INDEXED and tail.isdigit():
        return head, int(tail)
    raise UnknownName("device", str(spec), _known())


def canonical(name: str, index: int | None) -> str:
    """The spec string profilers report: ``ort:cuda`` for ORT's device 0 (as the user
    writes it), ``torch:cuda:0`` and ``tensorrt:0`` with their index."""
    if index is None or (name.startswith("ort:") and index == 0):
        return name
    return f"{name}:{index}"




def get(spec: str, **settings: Any) -> Profiler:
    """The profiler for ``spec``; settings (threads, rounds, calls, statistic, precision,
    plan=TimingPlan(...)) go to its constructor. Raises UnknownName for a bad spec and
    DeviceUnavailable (one sentence) when the backend cannot run here."""
    name, index = parse(spec)
    cls = DEVICES.get(name)
    reason = cls.unavailable_reason(index)
    if reason:
        raise DeviceUnavailable(reason)
    return cls(index, **settings)


@dataclass(frozen=True)
class DeviceStatus:
    """One row of :func:`available`: whether ``spec`` can run here, and why not."""

    spec: str
    available: bool
    reason: str = ""


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken CUDA install simply means no GPU
        return 0


def available() -> list[DeviceStatus]:
    """Every backend on this machine (each GPU index separately), runnable or not and why."""
    gpus = max(1, _gpu_count())
    rows = []
    for name in DEVICES.in_order():  # registration order: torch, ort, tensorrt
        indices: list[int | None] = list(range(gpus)) if name in _INDEXED else [None]
        for index in indices:
            spec = canonical(name, index)
            try:
                reason = DEVICES.get(name).unavailable_reason(index)
            except Exception as error:  # noqa: BLE001 - report, never crash the listing
                reason = f"{spec} check failed: {error}"
            rows.append(DeviceStatus(spec, not reason, reason or ""))
    return rows
