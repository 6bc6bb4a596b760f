"""The optional fp16 TensorRT engine built beside an exported ONNX file (``--fp16``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas.export.errors import ExportError, ExportUnavailable
from hwnas.export.verify import PARITY_BATCHES
from spaces.core import atomic_write, check_writable
from spaces.errors import HwnasError


def require_tensorrt() -> Any:
    """The tensorrt module, or ExportUnavailable saying in one sentence why not (no GPU,
    package missing, or a TensorRT that takes fp16 only from an fp16 graph)."""
    import devices

    try:
        devices.get("tensorrt")
    except HwnasError as error:
        raise ExportUnavailable(f"--fp16 builds a TensorRT engine, which cannot be done here: "
                                f"{str(error).rstrip('.')}") from None
    import tensorrt as trt  # type: ignore

    if not hasattr(trt.BuilderFlag, "FP16"):  # removed in TensorRT 11 (deprecated in 10.12)
        raise ExportUnavailable(f"TensorRT {trt.__version__} takes fp16 only from an fp16 graph "
                                f"(strong typing), and hwnas export writes fp32 graphs")
    return trt


def build_tensorrt_engine(onnx_path: str | Path, engine_path: str | Path,
                          max_batch: int = PARITY_BATCHES[-1]) -> Path:
    """Serialise an fp16 TensorRT engine of an exported model (batch 1..``max_batch``,
    tuned for 1) beside it; the fp32 ONNX file stays the deployable artefact."""
    trt = require_tensorrt()
    target = check_writable(engine_path)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {onnx_path}: {errors or 'no detail'}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    tensor = network.get_input(0)
    shape = tuple(tensor.shape)[1:]
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, (1, *shape), (1, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT failed to build an fp16 engine from {onnx_path}")
    return atomic_write(target, bytes(plan))
