"""A network's output through ONNX Runtime (TorchScript export, as profiling exports it)."""

import io
import warnings

import numpy as np
import pytest
import torch


def ort_output(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"])
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.numpy()})[0]
