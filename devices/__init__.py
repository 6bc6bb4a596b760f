"""Where networks run and what they cost: profilers for torch, ONNX Runtime and TensorRT.

``devices.get("ort:cpu")`` returns a :class:`Profiler`; ``profiler.measure(module,
(3, 32, 32))`` or ``profiler.measure_many(modules, ...)`` return
:class:`Measurement` s (every sample kept; ``latency_ms`` is the reported
statistic, p10 of samples pooled over interleaved rounds by default: see
:mod:`devices.timing`). ``devices.available()`` says which backends run here.

``devices`` imports ``spaces`` only (never ``latency`` or ``hwnas``).
"""

from devices.base import Profiler
from devices.errors import DeviceUnavailable, InvalidSetting, ProfilingError
from devices.fingerprint import fingerprint_id
from devices.measurement import Measurement, check_statistic, statistic_of
from devices.registry import ALIASES, DeviceStatus, available, get, names, parse, register
from devices.timing import TimingPlan

__all__ = [
    "ALIASES", "DeviceStatus", "DeviceUnavailable", "InvalidSetting", "Measurement", "Profiler",
    "ProfilingError", "TimingPlan", "available", "check_statistic", "fingerprint_id", "get",
    "names", "parse", "register", "statistic_of",
]
