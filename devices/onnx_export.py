"""The one torch -> ONNX converter, used by profiling and by ``hwnas export`` alike.

Why one: the latency a user is told must be that of the file they ship. When
profiling timed a static-batch TorchScript export at opset 17 and the shipped
file was a dynamic-batch dynamo export at opset 20, the same network differed by
3-7% between the two graphs. Here both come from :func:`to_onnx` with the same
defaults, so the store's numbers, the predictor trained on them and the shipped
file describe one graph.

Exporter order ("auto"): the TorchScript exporter (``dynamo=False``) first: on
this project's networks it exports in a fraction of a second, while the dynamo
exporter takes seconds per network (0.3 s vs 9.8 s for the first export of a
tiny conv net here) and writes its own ops at opset 18 or later. The dynamo
exporter is the fallback when the TorchScript one fails, and the only one for
opsets above 20. Opset 17 (the default) also loads in TensorRT 8.x toolchains.

Batch: ONNX Runtime profiling and the shipped file use a dynamic batch dimension;
TensorRT's engine build asks for a static one (``dynamic_batch=False``).
Exports are cached weakly per module, so re-measuring the same module on another
ONNX backend (or in a second pass) reuses its bytes.

Networks whose output does not depend on their input -- valid members of a space,
e.g. NB201 cells whose every path is cut by ``none`` edges -- lose their input in a
static-batch export (the exporter folds the whole graph into constants), and an
ONNX file without an input cannot be fed or timed. Such a network is exported again
through :func:`keep_input`, which ties the output to the input at the cost of one
slice, multiply and add on ``(batch, 1)`` values, so every backend times it like
any other network.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import re
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from devices.errors import InvalidSetting, ProfilingError
from spaces.core.errors import StepFailed

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
EXPORTERS = ("auto", "torchscript", "dynamo")
TORCHSCRIPT_OPSETS = (7, 20)   # what torch.onnx.export(dynamo=False) writes
DYNAMO_OPSETS = (17, 23)       # dynamo writes 18+ natively and converts down to 17

_CACHE: "weakref.WeakKeyDictionary[Any, dict[tuple, bytes]]" = weakref.WeakKeyDictionary()
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


ConversionError = StepFailed  # Neither exporter could turn the module into ONNX.


@dataclass
class Converted:
    """An in-memory ONNX model and how it was made."""

    model: Any               # onnx.ModelProto
    exporter: str            # "torchscript" or "dynamo"
    fallback_reason: str | None = None  # why the first exporter was not used


def first_line(error: BaseException) -> str:
    """The gist of an exporter's error: first line, colours and "next steps" cut off."""
    text = _ANSI.sub("", str(error)).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line.split(" This is step")[0].strip()[:300]


def check_exporter(opset: int, exporter: str = "auto") -> int:
    """The opset, if the exporter (or, for "auto", one of them) can write it."""
    if exporter not in EXPORTERS:
        raise InvalidSetting(f"unknown exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")
    ranges = {"torchscript": [TORCHSCRIPT_OPSETS], "dynamo": [DYNAMO_OPSETS],
              "auto": [TORCHSCRIPT_OPSETS, DYNAMO_OPSETS]}[exporter]
    if not isinstance(opset, int) or not any(lo <= opset <= hi for lo, hi in ranges):
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        raise InvalidSetting(f"opset {opset} is not supported by the {exporter} exporter; "
                             f"use {lo}..{hi}")
    return opset


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """The exporters print progress, warnings and whole graphs (on stdout, on stderr and
    through torch's loggers); callers report what matters, so hold that noise back."""
    loggers = [logging.getLogger(name) for name in ("torch", "onnxscript", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _torchscript(module: Any, example: Any, opset: int, dynamic_batch: bool) -> Any:
    import onnx
    import torch

    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset,
                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_axes=axes, do_constant_folding=True)
    return onnx.load_model_from_string(buffer.getvalue())


def _dynamo(module: Any, example: Any, opset: int, dynamic_batch: bool) -> Any:
    import torch

    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    program = torch.onnx.export(module, (example,), None, dynamo=True, opset_version=opset,
                                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                dynamic_shapes=shapes, external_data=False, optimize=True,
                                verbose=False)
    return program.model_proto


def keep_input(module: Any) -> Any:
    """``module`` wrapped so its output keeps a data dependence on the input: ``f(x) + 0 *
    x[:, first element]`` -- the same values for finite inputs, and the graph input kept."""
    import torch

    class KeepInput(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            out = self.inner(x)
            anchor = x.reshape(x.shape[0], -1)[:, :1]
            return out + anchor.reshape([x.shape[0]] + [1] * (out.dim() - 1)) * 0.0

    return KeepInput(module).eval()


def output_depends_on_input(model: Any) -> bool:
    """True when the model has its graph input and its first output is computed from it."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    if not inputs or not model.graph.output:
        return False
    reached = set(inputs)
    changed = True
    while changed:
        changed = False
        for node in model.graph.node:
            if any(name in reached for name in node.input) and not set(node.output) <= reached:
                reached.update(node.output)
                changed = True
    return model.graph.output[0].name in reached


def to_onnx(module: Any, input_shape: Sequence[int], opset: int = OPSET, exporter: str = "auto",
            *, dynamic_batch: bool = True, batch: int = 1, input_dtype: str | None = None) -> Converted:
    """``module`` (already in eval mode, on its device and dtype) as an in-memory ONNX model.

    ``exporter``: "auto" (TorchScript, then dynamo), "torchscript" or "dynamo". With a
    dynamic batch the example has batch 2 for dynamo (torch.export specialises a size-1
    dimension to a constant); with a static one it has ``batch``. ``input_dtype``
    "uint8" exports a graph that takes raw images (the example holds small integers).
    """
    import torch

    check_exporter(opset, exporter)
    param = next(iter(module.parameters()), None)
    dtype = param.dtype if param is not None else torch.float32
    where = param.device if param is not None else torch.device("cpu")
    if input_dtype == "uint8":
        dtype = torch.uint8
    order = ["torchscript", "dynamo"] if exporter == "auto" else [exporter]
    order = [e for e in order
             if (TORCHSCRIPT_OPSETS if e == "torchscript" else DYNAMO_OPSETS)[0] <= opset
             <= (TORCHSCRIPT_OPSETS if e == "torchscript" else DYNAMO_OPSETS)[1]]
    reasons: list[str] = []
    with quiet_exporters(), torch.no_grad():
        for name in order:
            size = (2 if name == "dynamo" else 1) if dynamic_batch else batch
            if dtype == torch.uint8:
                example = torch.randint(0, 17, (size, *input_shape), dtype=dtype, device=where)
            else:
                example = torch.randn((size, *input_shape), dtype=dtype, device=where)
            try:
                make = _torchscript if name == "torchscript" else _dynamo
                model = make(module, example, opset, dynamic_batch)
                if not output_depends_on_input(model):  # see the module docstring
                    model = make(keep_input(module), example, opset, dynamic_batch)
                return Converted(model, name, "; ".join(reasons) or None)
            except Exception as error:  # noqa: BLE001 - the exporters raise many kinds
                reasons.append(f"{name}: {first_line(error)}")
    raise ConversionError(f"ONNX export of {type(module).__name__} failed ({'; '.join(reasons)})")


def export_onnx(module: Any, input_shape: tuple[int, ...], batch: int = 1, *,
                half: bool = False, device: str = "cpu", dynamic_batch: bool = False) -> bytes:
    """ONNX bytes of ``module`` in eval mode at the default opset and exporter order, for
    timing: a dynamic batch (as the shipped file has) or a static ``batch``.

    ``half``/``device`` export an fp16 copy on that device (TensorRT strongly-typed
    networks take their precision from the graph); the caller's module is never changed.
    """
    key = (int(batch), tuple(input_shape), bool(half), str(device), bool(dynamic_batch))
    cached = _CACHE.get(module, {}).get(key)
    if cached is not None:
        return cached
    target = module
    if half or device != "cpu":
        target = copy.deepcopy(module).to(device)
        if half:
            target = target.half()
    was_training = target.training
    target.eval()
    try:
        data = to_onnx(target, input_shape, dynamic_batch=dynamic_batch,
                       batch=batch).model.SerializeToString()
    finally:
        if target is module and was_training:
            module.train()
    _CACHE.setdefault(module, {})[key] = data
    return data


# ---- ONNX models given by the caller ------------------------------------------------------
def is_onnx(network: Any) -> bool:
    """True for what the ONNX-running backends accept: a path, bytes or an onnx.ModelProto."""
    if isinstance(network, (bytes, bytearray, memoryview, str, os.PathLike)):
        return True
    return type(network).__name__ == "ModelProto" and hasattr(network, "SerializeToString")


def onnx_bytes(network: Any) -> bytes:
    """The serialised model of a path, bytes or proto (a missing or unreadable file is a
    ProfilingError naming it)."""
    if isinstance(network, (bytes, bytearray, memoryview)):
        return bytes(network)
    if isinstance(network, (str, os.PathLike)):
        path = Path(network)
        if not path.is_file():
            raise ProfilingError(f"ONNX file {path} does not exist")
        try:
            return path.read_bytes()
        except OSError as error:
            raise ProfilingError(f"cannot read ONNX file {path}: {error.strerror or error}") from None
    return network.SerializeToString()


def onnx_input_shape(data: bytes) -> tuple[int, ...]:
    """The model's one input shape without the batch dimension (which may be dynamic)."""
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # noqa: BLE001 - protobuf decode errors of several kinds
        raise ProfilingError("the given bytes are not an ONNX model") from None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ProfilingError(f"expected an ONNX model with one input, it has {len(inputs)}; "
                             f"give the input shape")
    dims = inputs[0].type.tensor_type.shape.dim[1:]
    if not dims or any(not d.HasField("dim_value") for d in dims):
        raise ProfilingError(f"the ONNX model's input {inputs[0].name!r} has dynamic dimensions "
                             f"besides the batch; give the input shape")
    return tuple(int(d.dim_value) for d in dims)
