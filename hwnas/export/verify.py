"""The checks an exported graph must pass before it is written: opset, self-contained,
``onnx.checker``, and ONNX Runtime agreeing with torch at batch 1 and 8."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from devices.onnx_export import INPUT_NAME, OPSET, OUTPUT_NAME, check_exporter, first_line, to_onnx
from hwnas.export.errors import ExportError, ParityError
from hwnas.export.report import ExportReport
from spaces.errors import HwnasError

PARITY_BATCHES = (1, 8)
# Allowed |ONNX Runtime - torch|: ATOL + RTOL * max|torch output|. For logits of
# trained nets (|y| <~ 30) that is 1e-4 within 3%; the relative term only matters for
# outputs in the hundreds (e.g. untrained NB201 nets in eval mode, |y| ~ 600), where
# float32 rounding alone differs by ~1e-4 between two correct implementations.
PARITY_ATOL, PARITY_RTOL = 1e-4, 1e-6


def check_opset(opset: int, exporter: str = "auto") -> int:
    """The opset, if the chosen exporter can write it (ExportError otherwise)."""
    try:
        return check_exporter(opset, exporter)
    except HwnasError as error:
        raise ExportError(str(error)) from None


@contextlib.contextmanager
def eval_mode(module: Any) -> Iterator[Any]:
    """Export and compare in eval mode, then give the caller's module back as it was."""
    import torch

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


def _graphs(graph: Any) -> Iterator[Any]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.g.node:
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def external_tensors(model: Any) -> list[str]:
    """Names of tensors whose data lives outside the model proto (must be none)."""
    from onnx.external_data_helper import uses_external_data

    names = []
    for graph in _graphs(model.graph):
        names += [t.name for t in graph.initializer if uses_external_data(t)]
        for node in graph.node:
            names += [f"{node.name}.{a.name}" for a in node.attribute
                      if a.HasField("t") and uses_external_data(a.t)]
    return names


def check_model(model: Any) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:  # noqa: BLE001 - ValidationError, InferenceError
        raise ExportError(f"onnx.checker rejected the exported model: {first_line(error)}") from None


def parity(model_bytes: bytes, module: Any, input_shape: Sequence[int],
           batches: Sequence[int] = PARITY_BATCHES, seed: int = 0,
           input_dtype: str | None = None) -> tuple[dict[int, float], float]:
    """Max abs difference between ONNX Runtime (CPU) and torch on random normal inputs
    (random raw pixel values 0..16 for a uint8 graph), per batch size, and the largest
    |torch output| seen; the module must be in eval mode."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph
        raise ExportError(f"ONNX Runtime cannot load the exported model: {first_line(error)}") from None
    rng = np.random.default_rng(seed)
    diffs, scale = {}, 0.0
    for batch in batches:
        if input_dtype == "uint8":
            x = rng.integers(0, 17, size=(batch, *input_shape)).astype(np.uint8)
        else:
            x = rng.standard_normal((batch, *input_shape)).astype(np.float32)
        expected = module(torch.from_numpy(x)).detach().numpy()
        try:
            (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
        except Exception as error:  # noqa: BLE001
            raise ExportError(f"ONNX Runtime failed at batch {batch}: {first_line(error)}") from None
        if got.shape != expected.shape:
            raise ParityError(f"ONNX Runtime output has shape {list(got.shape)} at batch {batch}, "
                              f"torch {list(expected.shape)}")
        diffs[batch] = float(np.max(np.abs(got.astype(np.float64) - expected)))
        scale = max(scale, float(np.max(np.abs(expected))))
    return diffs, scale


def parity_tolerance(output_scale: float) -> float:
    return PARITY_ATOL + PARITY_RTOL * output_scale


def default_opset(model: Any) -> int | None:
    """Version of the standard ONNX domain the model imports."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def export_and_verify(model: Any, input_shape: Sequence[int], opset: int = OPSET,
                      exporter: str = "auto", seed: int = 0,
                      input_dtype: str | None = None) -> tuple[Any, ExportReport]:
    """Export ``model`` in eval mode with the converter profiling uses
    (:func:`devices.onnx_export.to_onnx`, dynamic batch) and run every check that needs
    no metadata: opset, no external data, parity at batch 1 and 8. Returns the ONNX model
    and a partial report (exporter, timings, parity)."""
    check_opset(opset, exporter)
    with eval_mode(model):
        start = time.perf_counter()
        try:
            converted = to_onnx(model, input_shape, opset, exporter, dynamic_batch=True,
                                input_dtype=input_dtype)
        except HwnasError as error:
            raise ExportError(str(error)) from None
        export_s = time.perf_counter() - start
        onnx_model = converted.model
        found = default_opset(onnx_model)
        if found != opset:
            raise ExportError(f"the {converted.exporter} exporter wrote opset {found}, not the "
                              f"requested {opset}")
        if external_tensors(onnx_model):
            raise ExportError("the exported model keeps tensors in external data files")
        diffs, scale = parity(onnx_model.SerializeToString(), model, input_shape, seed=seed,
                              input_dtype=input_dtype)
    worst, allowed = max(diffs.values()), parity_tolerance(scale)
    if not worst <= allowed:
        raise ParityError(f"ONNX Runtime differs from torch by up to {worst:.3g} (batch sizes "
                          f"{', '.join(f'{b}: {d:.3g}' for b, d in diffs.items())}), more than "
                          f"the {allowed:.3g} allowed for outputs up to {scale:.3g}")
    report = ExportReport(
        path=Path(), space="", arch="", file_bytes=0, export_s=export_s, total_s=0.0,
        exporter=converted.exporter, opset=opset, checker_ok=False, parity=diffs,
        parity_tolerance=allowed, output_scale=scale, macs=0, params=0,
        input_shape=tuple(input_shape), num_classes=0, fallback_reason=converted.fallback_reason)
    return onnx_model, report
