"""Latency of any model: an ONNX file, a TorchScript file or ``module:function`` returning an nn.Module.

Why: users of hardware-aware NAS often want the measured cost of a network they
already have (nn-Meter's ``predict --onnx``, but measured with hwnas's protocol:
interleaved rounds, blocks of back-to-back calls, the same statistic as every
stored number). The measurement goes into the measurement store under the space
``model`` and the arch ``sha256:<hex>`` of the file's bytes, so the same file is
found again whatever it is called.

* ONNX: timed as its own bytes on ONNX Runtime devices (``ort:*``); the input
  shape is read from the file, or completed by ``input_size`` when its spatial
  dimensions are dynamic. Torch devices time torch modules, not ONNX files.
* TorchScript (``torch.jit.load``) and functions: timed as modules on torch
  devices; on ONNX Runtime devices the profiler exports them with the one
  converter (``devices.onnx_export.export_onnx``), as for every space. A function
  is identified by its source file's bytes, its name and the input shape it is
  called for (it is called with no arguments, its own defaults).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaces.errors import InvalidOption

log = logging.getLogger(__name__)

SPACE = "model"
DEFAULT_SIZE = 224  # TorchScript files and functions carry no input shape; ImageNet's
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ptl", ".jit", ".torchscript")


ModelError = InvalidOption  # a --model cannot be loaded or measured as given


@dataclass
class Model:
    """A model ready to time: ``network`` is ONNX bytes or an nn.Module (eval mode)."""

    source: str                    # what the user gave
    kind: str                      # "onnx", "torchscript" or "function"
    network: Any
    input_shape: tuple[int, ...]   # without the batch
    arch: str                      # "sha256:<hex>", the store's arch key

    @property
    def label(self) -> str:
        return Path(self.source).name if self.kind != "function" else self.source


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def _onnx_shape(data: bytes, source: str, input_size: int | None) -> tuple[int, ...]:
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # noqa: BLE001 - protobuf decode errors of several kinds
        raise ModelError(f"{source} is not an ONNX model") from None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise ModelError(f"{source} has {len(inputs)} inputs ({names}); --model times a network "
                         f"with one image input: export it with only that input")
    name = inputs[0].name
    dims = list(inputs[0].type.tensor_type.shape.dim[1:])
    if not dims:
        raise ModelError(f"{source}'s input {name!r} has no dimensions besides the batch; "
                         f"--model times a network with one image input")
    known = [int(d.dim_value) if d.HasField("dim_value") else None for d in dims]
    if input_size is not None:
        if len(known) != 3:
            raise ModelError(f"{source}'s input {name!r} is not CxHxW, so --input-size does not "
                             f"apply to it")
        fixed = [v for v in known[1:] if v is not None]
        if any(v != input_size for v in fixed):
            raise ModelError(f"{source}'s input {name!r} has a fixed size "
                             f"{'x'.join(str(v or '?') for v in known)}; --input-size {input_size} "
                             f"does not fit it")
        return (known[0] or 3, input_size, input_size)
    if any(v is None for v in known):
        shape = "x".join("?" if v is None else str(v) for v in known)
        raise ModelError(f"{source}'s input {name!r} has dynamic dimensions ({shape}); give its "
                         f"size with --input-size SIZE")
    return tuple(known)  # type: ignore[arg-type]


def _torch_shape(input_size: int | None, in_channels: int) -> tuple[int, int, int]:
    size = input_size or DEFAULT_SIZE
    return (in_channels, size, size)


def _load_torchscript(path: Path) -> Any:
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch.jit.load is deprecated, and says so each call
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as error:  # noqa: BLE001 - corrupt archives raise many kinds
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ModelError(f"{path} is neither an ONNX model nor a TorchScript file "
                         f"(torch.jit.load: {first})") from None


def _load_function(text: str, input_size: int | None, in_channels: int) -> Model:
    import torch

    from spaces import loader

    spec = loader.parse(text)
    fn = loader.load(spec)
    if not callable(fn):
        raise ModelError(f"{spec.where} is not a function")
    try:
        module = fn()
    except TypeError as error:
        raise ModelError(f"{spec.where} must be callable with no arguments and return an "
                         f"nn.Module ({error})") from None
    except Exception as error:  # noqa: BLE001 - the user's code may raise anything
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise ModelError(f"{spec.where} raised {type(error).__name__}: {first}") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{spec.where} returned {type(module).__name__}, not a torch.nn.Module")
    shape = _torch_shape(input_size, in_channels)
    try:
        source = Path(inspect.getsourcefile(fn) or "").read_bytes()
    except (TypeError, OSError):
        source = b""
    arch = _sha256(source, spec.text.encode(), repr(shape).encode())
    return Model(text, "function", module.eval(), shape, arch)


def load(text: str, input_size: int | None = None, in_channels: int = 3) -> Model:
    """The model ``text`` names: a ``.onnx`` file, a TorchScript file, or ``module:function``
    / ``file.py:function``; :class:`ModelError` (one sentence) when it cannot be used."""
    if input_size is not None and input_size < 1:
        raise ModelError(f"--input-size must be at least 1, got {input_size}")
    path = Path(text).expanduser()
    if path.is_file():
        data = path.read_bytes()
        arch = "sha256:" + hashlib.sha256(data).hexdigest()  # what `sha256sum FILE` prints
        is_zip = data[:4] == b"PK\x03\x04"  # TorchScript archives are zip files; ONNX is not
        if path.suffix.lower() == ".onnx" or (not is_zip and path.suffix.lower()
                                              not in TORCHSCRIPT_SUFFIXES):
            return Model(str(path), "onnx", data, _onnx_shape(data, str(path), input_size), arch)
        module = _load_torchscript(path)
        return Model(str(path), "torchscript", module, _torch_shape(input_size, in_channels), arch)
    from spaces import loader

    if loader.looks_like_spec(text) and not path.suffix.lower() in (".onnx", *TORCHSCRIPT_SUFFIXES):
        return _load_function(text, input_size, in_channels)
    raise ModelError(f"model file {text} does not exist (give a .onnx or TorchScript file, or "
                     f"MODULE:FUNCTION returning an nn.Module)")


def check_device(model: Model, profiler: Any) -> None:
    """ONNX files run on ONNX Runtime devices only; say so before any work."""
    if model.kind == "onnx" and not getattr(profiler, "measures_onnx", False):
        raise ModelError(f"{model.label} is an ONNX file and {profiler.spec} times torch modules; "
                         f"measure it on an ONNX Runtime device such as ort:cpu (or convert it "
                         f"to TorchScript)")


def measure(model: Model, profiler: Any, store: Any, batch: int = 1) -> tuple[dict[str, Any], bool]:
    """Time ``model`` unless the store already holds it for this device, batch and shape;
    returns (the stored row as a dict, whether it was measured now)."""
    check_device(model, profiler)
    fingerprint = profiler.fingerprint()
    stored = _stored(store, model, fingerprint["id"], batch)
    if stored is not None:
        log.info("%s already stored for %s", model.arch, fingerprint["label"])
        return stored, False
    measurement = profiler.measure(model.network, model.input_shape, batch)
    store.add(SPACE, model.arch, fingerprint, measurement)
    row = _stored(store, model, fingerprint["id"], batch)
    return (row if row is not None else measurement.to_dict()), True


def _stored(store: Any, model: Model, device_id: str, batch: int) -> dict[str, Any] | None:
    from latency.store import shape_key

    frame = store.frame(space=SPACE, device=device_id, batch=batch,
                        input_shape=shape_key(model.input_shape))
    frame = frame[frame["arch"] == model.arch]
    return None if frame.empty else frame.iloc[-1].to_dict()
