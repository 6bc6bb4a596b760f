"""What hardware and software a number was measured on.

A latency is only comparable with latencies from the same CPU/GPU model, the
same library versions and the same precision and thread count, so every
measurement is stored with the fingerprint of its profiler and keyed by a
short hash of it. The hash deliberately leaves out things that change without
changing speed (host name, kernel release, CPU MHz readout).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from functools import lru_cache
from typing import Any

from spaces.core.ids import fingerprint_id

__all__ = ["cpu_info", "cudnn_version", "fingerprint_id", "gpu_info", "short_cpu_name"]

# Instruction-set extensions that change which kernels a library picks.
_ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8",
              "neon", "asimd", "sve")


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model, family/model/stepping, logical CPUs, usable CPUs and ISA flags."""
    info: dict[str, Any] = {"cpu_model": platform.processor() or platform.machine(),
                            "cpu_arch": platform.machine(), "cpu_cores": os.cpu_count() or 0}
    try:
        info["cpu_usable"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["cpu_usable"] = info["cpu_cores"]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return info
    first = text.split("\n\n", 1)[0]
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    model = fields.get("model name") or fields.get("Model") or fields.get("Hardware")
    if model:
        info["cpu_model"] = re.sub(r"\s+", " ", model)
    if "cpu family" in fields:
        info["cpu_family"] = f"{fields.get('cpu family')}/{fields.get('model')}/{fields.get('stepping')}"
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    info["cpu_isa"] = [f for f in _ISA_FLAGS if f in flags]
    return info


def _driver_version() -> str | None:
    """NVIDIA driver version without requiring pynvml."""
    try:
        import pynvml  # type: ignore

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # noqa: BLE001 - optional probe, any failure means "try the next way"
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as fh:
            match = re.search(r"Kernel Module\s+([\d.]+)", fh.read())
            return match.group(1) if match else None
    except OSError:
        return None


def cudnn_version(value: int | None) -> str | None:
    """cuDNN's integer version as text: 9.x encodes MAJOR*10000 + MINOR*100 + PATCH
    (92400 -> "9.24.0"), 8.x and older MAJOR*1000 + MINOR*100 + PATCH (8902 -> "8.9.2")."""
    if not value:
        return None
    value = int(value)
    if value >= 10_000:
        return f"{value // 10_000}.{value // 100 % 100}.{value % 100}"
    return f"{value // 1000}.{value // 100 % 10}.{value % 100}"


def gpu_info(index: int) -> dict[str, Any]:
    """Name, compute capability, memory, driver, CUDA runtime and cuDNN of CUDA device ``index``
    (cuDNN as torch loaded it; ONNX Runtime's CUDA providers use the same pip wheel)."""
    import torch

    props = torch.cuda.get_device_properties(index)
    try:
        cudnn = cudnn_version(torch.backends.cudnn.version())
    except Exception:  # noqa: BLE001 - a torch without cuDNN simply has none to report
        cudnn = None
    return {
        "gpu_model": props.name,
        "gpu_capability": f"{props.major}.{props.minor}",
        "gpu_memory_gib": round(props.total_memory / 2**30),
        "gpu_driver": _driver_version(),
        "cuda_runtime": torch.version.cuda,
        "cudnn": cudnn,
    }


def short_cpu_name(model: str) -> str:
    """Drop trademark noise so labels stay readable: 'Intel(R) Xeon(R) Gold 6226 CPU @ 2.70GHz'
    -> 'Intel Xeon Gold 6226'."""
    name = re.sub(r"\((R|TM|r|tm)\)", "", model)
    name = re.sub(r"\s+@.*$", "", name)
    name = re.sub(r"\b(CPU|Processor|\d+-Core)\b", "", name)
    return re.sub(r"\s+", " ", name).strip() or model
