"""INT8 export with ONNX Runtime's static quantization, calibrated on training images.

Deployment to CPUs and edge devices usually means INT8. ONNX Runtime's
``quantize_static`` writes a QDQ graph (QuantizeLinear/DequantizeLinear around the
int8 weights and activations), the format TensorRT and most runtimes read; the
activation ranges come from running a few hundred *training* images through the
fp32 model (never the validation images the accuracy is reported on). Weights are
quantized per channel to 7 bits (``reduce_range``): on x86 CPUs without VNNI, ONNX
Runtime's u8 x s8 kernels add pairs of products in 16 bits, and full 8-bit weights
saturate there -- measured on two digits networks, full range lost 3.9 and 2.5
accuracy points, 7-bit weights 0.3 and 0.0 (MinMax, Entropy and Percentile
calibration, more calibration images and excluding the first/last layers were all
worse). Activations are unsigned 8-bit (post-ReLU values are non-negative; signed
symmetric activations lost 6-35 points). The INT8 file is verified by ``onnx.checker`` and by its
accuracy on the validation split next to the fp32 model's -- an INT8 model is not
expected to match fp32 outputs to 1e-4, so accuracy is the check that matters.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.export.errors import ExportError

CALIBRATION_IMAGES = 256


class _Reader:
    """``CalibrationDataReader`` protocol: one image batch per call, then None."""

    def __init__(self, name: str, images: np.ndarray, batch: int = 32) -> None:
        self.items = [{name: images[i:i + batch]} for i in range(0, len(images), batch)]

    def get_next(self) -> dict[str, np.ndarray] | None:
        return self.items.pop(0) if self.items else None

    def rewind(self) -> None:  # newer ORT versions may call it
        pass


def quantize(fp32: bytes, calibration: np.ndarray, input_name: str = "input") -> bytes:
    """INT8 QDQ bytes of ``fp32`` calibrated on ``calibration`` (N, C, H, W float32)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = np.ascontiguousarray(calibration[:CALIBRATION_IMAGES], dtype=np.float32)
    if len(images) == 0:
        raise ExportError("--int8 needs calibration images; none were given")
    with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as tmp:
        src, pre, out = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - pre-processing is an optimisation, not required
            pre = src
        try:
            quantize_static(str(pre), str(out), _Reader(input_name, images),
                            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        except Exception as error:  # noqa: BLE001 - ORT raises many kinds
            raise ExportError(f"ONNX Runtime could not quantize the model: "
                              f"{str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}") from None
        return out.read_bytes()


def accuracy(model: bytes, x: np.ndarray, y: np.ndarray, input_name: str = "input",
             batch: int = 256) -> float:
    """Top-1 accuracy (%) of an ONNX model on preprocessed images, in ONNX Runtime (CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    correct = 0
    for i in range(0, len(y), batch):
        (logits,) = session.run(None, {input_name: np.ascontiguousarray(x[i:i + batch], np.float32)})
        correct += int((np.asarray(logits).argmax(1) == np.asarray(y[i:i + batch])).sum())
    return 100.0 * correct / max(len(y), 1)


def as_arrays(data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibration images, validation images, validation labels) of a DataSplit."""
    return (data.x_train.detach().cpu().numpy(), data.x_val.detach().cpu().numpy(),
            data.y_val.detach().cpu().numpy())
