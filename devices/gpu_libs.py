"""Load the native libraries ONNX Runtime's GPU providers link, before a session needs them.

Why: onnxruntime-gpu's CUDA and TensorRT providers are shared libraries that
``dlopen`` CUDA, cuDNN and TensorRT (``libnvinfer.so.10`` ...) by soname. pip
installs those libraries inside Python packages (torch's ``nvidia-*`` wheels,
the ``tensorrt_libs`` folder of TensorRT's libs wheel), which are not on the
loader's search path, so the provider fails to load and ONNX Runtime silently
falls back to CPU. A library already loaded into the process satisfies the
soname, so loading them here, by full path, makes the providers load.

``preload_for_ort(target)`` is called before every GPU session; it is cheap
after the first call. What it found is logged and returned (the GPU check
prints it).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import io
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# The TensorRT libraries ONNX Runtime's TensorRT provider links, in load order
# (the plugin library and the ONNX parser depend on libnvinfer).
TENSORRT_LIBRARIES = ("libnvinfer", "libnvinfer_plugin", "libnvonnxparser")
_SONAME = re.compile(rb"(libnvinfer|libnvonnxparser|libnvinfer_plugin)\.so\.(\d+)")

_DONE: dict[str, dict[str, Any]] = {}


def tensorrt_lib_dir() -> Path | None:
    """The folder of the ``tensorrt_libs`` package (TensorRT's libs wheel), found without
    importing it (importing it loads every library in it, which we want to control)."""
    try:
        spec = importlib.util.find_spec("tensorrt_libs")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    return Path(locations[0]) if locations else None


def library_files(folder: Path, major: int | None = None) -> list[Path]:
    """``libnvinfer.so.N``, ``libnvinfer_plugin.so.N``, ``libnvonnxparser.so.N`` in ``folder``,
    in load order; ``major`` picks N (else the highest found). Missing ones are left out."""
    found = []
    for stem in TENSORRT_LIBRARIES:
        versions = []
        for path in folder.glob(f"{stem}.so.*"):
            suffix = path.name[len(stem) + len(".so."):]
            if suffix.isdigit():  # the soname itself, not libnvinfer.so.10.16.1
                versions.append((int(suffix), path))
        if major is not None:
            versions = [v for v in versions if v[0] == major]
        if versions:
            found.append(max(versions)[1])
    return found


def ort_tensorrt_majors() -> dict[str, int]:
    """The TensorRT sonames ONNX Runtime's TensorRT provider links (``{"libnvinfer": 10,
    ...}``), read from the provider library's dynamic string table; empty if not found."""
    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        return {}
    if spec is None or not spec.origin:
        return {}
    provider = Path(spec.origin).parent / "capi" / "libonnxruntime_providers_tensorrt.so"
    try:
        data = provider.read_bytes()
    except OSError:
        return {}
    return {m.group(1).decode(): int(m.group(2)) for m in _SONAME.finditer(data)}


def inferlib_version(handle: Any) -> str | None:
    """``getInferLibVersion()`` of a loaded libnvinfer as "10.16.1" (None if unavailable).
    TensorRT >= 10 encodes MAJOR*10000 + MINOR*100 + PATCH, older ones MAJOR*1000 + ..."""
    try:
        function = handle.getInferLibVersion
    except AttributeError:
        return None
    function.restype = ctypes.c_int32
    return decode_inferlib_version(int(function()))


def decode_inferlib_version(value: int) -> str:
    if value >= 100_000:
        return f"{value // 10_000}.{value // 100 % 100}.{value % 100}"
    return f"{value // 1000}.{value // 100 % 10}.{value % 100}"


def preload_tensorrt() -> dict[str, Any]:
    """Load TensorRT's libraries from the ``tensorrt_libs`` wheel, matching the major version
    ONNX Runtime's provider links; say what was loaded, or why not."""
    folder = tensorrt_lib_dir()
    wanted = ort_tensorrt_majors().get("libnvinfer")
    report: dict[str, Any] = {"folder": str(folder) if folder else None, "ort_links": wanted,
                              "loaded": [], "errors": []}
    if folder is None:
        report["errors"].append("the tensorrt_libs package (TensorRT's libs wheel) is not installed")
        return report
    files = library_files(folder, wanted)
    if not any(f.name.startswith("libnvinfer.so.") for f in files):
        present = sorted(p.name for p in folder.glob("libnvinfer.so.*"))
        report["errors"].append(
            f"{folder} has no libnvinfer.so.{wanted if wanted is not None else 'N'} "
            f"(it has {', '.join(present) or 'none'})")
    for path in files:
        try:
            handle = ctypes.CDLL(str(path))
        except OSError as error:
            report["errors"].append(f"{path.name}: {error}")
            continue
        report["loaded"].append(str(path))
        if path.name.startswith("libnvinfer.so."):
            report["version"] = inferlib_version(handle)
    return report


def preload_cuda() -> dict[str, Any]:
    """CUDA and cuDNN: import torch first (it loads the nvidia-* wheels' libraries the way
    it needs them), then ONNX Runtime's own ``preload_dlls`` where this version has it."""
    report: dict[str, Any] = {"torch": False, "ort_preload_dlls": None}
    try:
        import torch  # noqa: F401

        report["torch"] = True
    except ImportError:
        pass
    try:
        import onnxruntime as ort
    except ImportError:
        return report
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        report["ort_preload_dlls"] = "not in this onnxruntime version"
        return report
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # it prints its warnings
            preload(cuda=True, cudnn=True)
        report["ort_preload_dlls"] = "called"
    except Exception as error:  # noqa: BLE001 - a failed preload is reported, never fatal
        report["ort_preload_dlls"] = f"failed: {error}"
    if printed.getvalue().strip():
        report["ort_preload_output"] = printed.getvalue().strip()
    return report


def preload_for_ort(target: str) -> dict[str, Any]:
    """Load what ONNX Runtime's ``cuda`` or ``tensorrt`` provider needs (once per process)."""
    if target not in ("cuda", "tensorrt"):
        return {}
    if target not in _DONE:
        report = {"cuda": _DONE["cuda"]["cuda"] if "cuda" in _DONE else preload_cuda()}
        if target == "tensorrt":
            report["tensorrt"] = preload_tensorrt()
            for error in report["tensorrt"]["errors"]:  # ORT's own fall-back reason says more
                log.info("TensorRT libraries for ONNX Runtime: %s", error)
        _DONE[target] = report
        log.info("preloaded GPU libraries for ONNX Runtime's %s provider: %s", target, report)
    return _DONE[target]


def cuda_device_missing(backend: str, index: int | None) -> str | None:
    """Why ``backend:index`` cannot run on this machine's CUDA devices (one sentence), or
    None: the check every CUDA backend makes before anything is loaded."""
    import torch

    if not torch.cuda.is_available():
        return (f"{backend}:{index or 0} needs a CUDA GPU, but torch.cuda.is_available() "
                f"is False on this machine")
    if (index or 0) >= torch.cuda.device_count():
        return (f"{backend}:{index} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)")
    return None
