"""TensorRT engines cached per network, so a second measurement does not build it again.

Why: building a TensorRT engine takes seconds per network (tactic search),
timing it takes a fraction of a second; re-measuring a network (a second pass,
a resumed run) should pay the build once. Two caches:

* :class:`EngineCache` (the ``tensorrt`` backend): serialized engines keyed by
  the SHA-256 of the ONNX bytes plus everything else the engine depends on
  (TensorRT version, GPU, precision mode, builder settings), in memory or in a
  folder (files written atomically, so a killed run never leaves half an engine).
* :func:`ort_tensorrt_options` (``ort:tensorrt``): ONNX Runtime's own engine cache,
  pointed at one sub-folder per model. ORT names cached engines by a hash of
  the graph's tensor *names* and its versions -- not of shapes or weights
  (``TRTGenerateId`` in ORT's TensorRT provider) -- so two architectures whose
  exports share node names, or one network at batch 1 and 32, would read each
  other's engine from a shared folder. One folder per hash of the bytes cannot.

``HWNAS_ENGINE_CACHE`` names a default folder for both (unset: the ``tensorrt``
backend caches in memory and ``ort:tensorrt`` does not cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

ENV = "HWNAS_ENGINE_CACHE"
SUFFIX = ".engine"


def default_folder() -> str | None:
    """The folder named by ``HWNAS_ENGINE_CACHE``, or None."""
    value = os.environ.get(ENV, "").strip()
    return value or None


def engine_key(onnx_bytes: bytes, context: Mapping[str, Any]) -> str:
    """SHA-256 over the ONNX bytes and the canonical JSON of ``context`` (32 hex digits)."""
    digest = hashlib.sha256(onnx_bytes)
    digest.update(b"\0")
    digest.update(json.dumps(dict(context), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def write_atomically(path: Path, data: bytes) -> None:
    """Temporary file in the same folder, then ``os.replace``: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class EngineCache:
    """Serialized engines by key: files ``<key>.engine`` in ``folder``, or (no folder) the
    ``max_entries`` most recently used ones in memory. Counts hits, misses and stores."""

    def __init__(self, folder: "str | os.PathLike[str] | None" = None, max_entries: int = 64) -> None:
        self.folder = Path(folder).expanduser() if folder is not None else None
        self.max_entries = max_entries
        self._memory: "OrderedDict[str, bytes]" = OrderedDict()
        self.hits = self.misses = self.stores = 0

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{key}{SUFFIX}"

    def get(self, key: str) -> bytes | None:
        data: bytes | None = None
        if self.folder is None:
            data = self._memory.get(key)
            if data is not None:
                self._memory.move_to_end(key)
        else:
            try:
                data = self._path(key).read_bytes() or None
            except OSError:
                data = None
        if data is None:
            self.misses += 1
        else:
            self.hits += 1
        return data

    def put(self, key: str, data: bytes) -> None:
        self.stores += 1
        if self.folder is None:
            self._memory[key] = bytes(data)
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)
            return
        try:
            write_atomically(self._path(key), bytes(data))
        except OSError as error:  # a full or read-only disk costs a rebuild next time, no more
            log.warning("could not cache a TensorRT engine in %s: %s", self.folder, error)

    def discard(self, key: str) -> None:
        """Forget an entry that turned out unusable (e.g. it does not deserialize)."""
        self._memory.pop(key, None)
        if self.folder is not None:
            with contextlib.suppress(OSError):
                self._path(key).unlink()

    def __len__(self) -> int:
        if self.folder is None:
            return len(self._memory)
        return len(list(self.folder.glob(f"*{SUFFIX}"))) if self.folder.is_dir() else 0

    def stats(self) -> dict[str, Any]:
        return {"folder": str(self.folder) if self.folder else None, "entries": len(self),
                "hits": self.hits, "misses": self.misses, "stores": self.stores}


def has_dynamic_input(model: bytes) -> bool:
    """True when an input of the ONNX model has a dimension that is not a fixed number
    (e.g. a dynamic batch); an unreadable model counts as dynamic."""
    try:
        import onnx

        graph = onnx.load_model_from_string(model).graph
    except Exception:  # noqa: BLE001 - not parseable: assume the worst
        return True
    weights = {t.name for t in graph.initializer}
    return any(not d.HasField("dim_value") or d.dim_value <= 0
               for value in graph.input if value.name not in weights
               for d in value.type.tensor_type.shape.dim)


def ort_tensorrt_options(folder: "str | os.PathLike[str] | None", model: bytes, *, fp16: bool,
                         device_id: int = 0,
                         input_shape: "tuple[int, ...] | None" = None) -> dict[str, str]:
    """ONNX Runtime TensorRT provider options for ``model``'s engine cache: caching off
    without a folder; else engines in ``folder/ort-tensorrt/<hash of bytes, input shape,
    precision, device>/`` and one timing cache (tactic timings, valid across models)
    beside them. ``input_shape`` (with the batch) keys the engine of a dynamic-batch model:
    without it such a model is not cached, since ORT would rebuild one shared engine with a
    widened shape profile (batch 1's engine turning into a 1..32 one)."""
    if folder is None:
        return {"trt_engine_cache_enable": "False"}
    if input_shape is None and has_dynamic_input(model):
        log.info("ORT-TensorRT engine cache off for a dynamic-shape model timed without its shape")
        return {"trt_engine_cache_enable": "False"}
    root = Path(folder).expanduser().resolve() / "ort-tensorrt"
    context = {"fp16": bool(fp16), "device_id": int(device_id),
               "input_shape": [int(d) for d in input_shape] if input_shape is not None else None}
    sub = root / engine_key(model, context)
    sub.mkdir(parents=True, exist_ok=True)
    return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(sub),
            "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(root)}
