"""In-memory ONNX export of a module, once per (module, batch, shape, precision).

The legacy TorchScript exporter (``dynamo=False``) is used first: on this
project's networks it exports in a fraction of a second, while the dynamo
exporter takes seconds per network (0.3 s vs 9.8 s for the first export of a
tiny conv net here) and writes external data files for large models unless
told not to. The dynamo exporter is the fallback when the legacy one fails.
Exports are cached weakly per module, so re-measuring the same module on
another ONNX backend (or in a second pass) reuses its bytes.
"""

from __future__ import annotations

import copy
import io
import warnings
import weakref
from typing import Any

from devices.errors import ProfilingError

OPSET = 17
INPUT_NAME = "input"

_CACHE: "weakref.WeakKeyDictionary[Any, dict[tuple, bytes]]" = weakref.WeakKeyDictionary()


def _export(module: Any, example: Any, dynamo: bool) -> bytes:
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(module, (example,), dynamo=True, external_data=False,
                                        input_names=[INPUT_NAME], verbose=False)
            program.save(buffer, external_data=False)
        else:
            torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=["output"],
                              do_constant_folding=True)
    return buffer.getvalue()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def export_onnx(module: Any, input_shape: tuple[int, ...], batch: int = 1, *,
                half: bool = False, device: str = "cpu") -> bytes:
    """ONNX bytes of ``module`` in eval mode with a static input ``(batch, *input_shape)``.

    ``half``/``device`` export an fp16 copy on that device (TensorRT strongly-typed
    networks take their precision from the graph); the caller's module is never changed.
    """
    import torch

    key = (int(batch), tuple(input_shape), bool(half), str(device))
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
    dtype = torch.float16 if half else torch.float32
    example = torch.randn((batch, *input_shape), dtype=dtype, device=device)
    try:
        with torch.no_grad():
            try:
                data = _export(target, example, dynamo=False)
            except Exception as legacy_error:  # noqa: BLE001 - retry with the other exporter
                try:
                    data = _export(target, example, dynamo=True)
                except Exception:  # noqa: BLE001
                    raise ProfilingError(
                        f"ONNX export of {type(module).__name__} failed: {_first_line(legacy_error)}") from None
    finally:
        if target is module and was_training:
            module.train()
    _CACHE.setdefault(module, {})[key] = data
    return data
