"""``export_arch``: build, verify, measure the file's own bytes, stamp, write atomically.

It refuses to leave a file that has not passed every check: the graph is exported in
memory with the converter profiling uses (:mod:`devices.onnx_export`), checked with
``onnx.checker`` (full check), run in ONNX Runtime (CPU) at batch 1 and 8 and
compared with torch, stamped with metadata (:mod:`hwnas.onnx_meta`), measured, and
only then written to a temporary file beside the target and moved over it. A
failure at any step leaves the target as it was.

Measurement: on devices that run ONNX (``ort:*``) the latency is timed on the
serialised model itself -- the very bytes written, minus the latency entries that
are added to the metadata afterwards (metadata does not change the graph) -- in a
session built exactly as profiling builds one. Devices that run torch modules
(``torch:*``) time the module the file was exported from; the report and the
metadata say which (``latency_measured_on``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from devices.onnx_export import OPSET
from hwnas.export.errors import ExportError
from hwnas.export.report import ExportReport
from hwnas.export.verify import check_model, check_opset, export_and_verify
from hwnas.export.weights import apply_weights
from spaces import Arch, Space
from spaces.core import OutputError, atomic_write, check_writable

DEFAULT_OPSET = OPSET
_PROTOBUF_LIMIT = 2**31 - 1


def resolve_space(space: Space | str, space_kwargs: Mapping[str, Any] | None = None) -> Space:
    """A Space instance as given, or the registered space of that name built with kwargs."""
    import spaces

    if not isinstance(space, str):
        return space
    try:
        return spaces.get(space, **dict(space_kwargs or {}))
    except TypeError as error:  # an unknown or ill-typed keyword of the space's constructor
        raise ExportError(f"space {space!r} cannot be built with {dict(space_kwargs or {})}: "
                          f"{error}") from None


def resolve_arch(space: Space, arch: "Arch | str | Sequence[int]") -> Arch:
    """An Arch of ``space`` from an Arch, its string form or its choices (as arch.json
    stores them); another space's arch or string raises InvalidArchitecture (a HwnasError)
    naming the problem."""
    if isinstance(arch, Arch):
        return space.validate(arch)
    if isinstance(arch, (list, tuple)):
        return space.arch(arch)
    return space.from_string(str(arch).strip())


def check_target(path: str | Path, size_bytes: int | None = None) -> Path:
    """Refuse, before any work, a target that cannot be written: a folder, a device or
    other non-regular file, a missing or read-only parent folder, a disk on which a file of
    ``size_bytes`` (the caller's estimate) cannot fit."""
    try:
        return check_writable(path, size_bytes=size_bytes)
    except OutputError as error:
        raise ExportError(str(error)) from None


def write_atomically(data: bytes, target: Path) -> None:
    """The file appears whole or not at all (see :func:`spaces.core.atomic_write`)."""
    try:
        atomic_write(target, data, create_parent=False)
    except OutputError as error:
        raise ExportError(str(error)) from None


def _profiler(device: Any) -> Any:
    if isinstance(device, str):
        import devices

        return devices.get(device)
    return device


def _predictor(predictor: Any, space: Any, profiler: Any, allow_device_mismatch: bool) -> Any:
    """A predictor object or file, refused (PredictorMismatch, one sentence) when it was
    trained on another space, or on another device than the one measured here, since
    its prediction would then not be comparable with the measurement."""
    device = profiler.fingerprint_id if profiler is not None else None
    if isinstance(predictor, (str, Path)):
        from latency import predictors

        return predictors.load(predictor, space=space, device=device,
                               allow_device_mismatch=allow_device_mismatch)
    other = getattr(getattr(predictor, "space", None), "key", space.key)
    if other != space.key:
        raise ExportError(f"the predictor was trained on space {other!r}, not {space.key!r}")
    if hasattr(predictor, "check_device"):
        predictor.check_device(device, allow_device_mismatch)
    return predictor


def _predicted_ms(predictor: Any, arch: Any) -> float:
    value = np.asarray(predictor.predict([arch]), dtype=np.float64).reshape(-1)
    if value.size != 1 or not np.isfinite(value[0]):
        raise ExportError(f"the predictor returned {value.tolist()} for one architecture")
    return float(value[0])


def _deploy_fields(data: Any) -> dict[str, Any]:
    """Preprocessing, class names and dataset of a DataSplit, for the file's metadata."""
    out: dict[str, Any] = {"dataset": getattr(data, "name", None)}
    if getattr(data, "class_names", None):
        out["class_names"] = list(data.class_names)
    if getattr(data, "preprocessing", None) is not None:
        out["preprocessing"] = data.preprocessing.to_json()
    return {k: v for k, v in out.items() if v is not None}


def _to_int8(fp32_model: Any, module: Any, data: Any, report: ExportReport) -> tuple[Any, bytes]:
    """(int8 model with the metadata, fp32 bytes): quantized, checked, both accuracies."""
    import onnx

    from hwnas import onnx_meta
    from hwnas.export import int8 as int8_export

    fp32_bytes = fp32_model.SerializeToString()
    calibration, x_val, y_val = int8_export.as_arrays(data)
    quantized = onnx.load_model_from_string(int8_export.quantize(fp32_bytes, calibration))
    fp32_acc = int8_export.accuracy(fp32_bytes, x_val, y_val)
    int8_acc = int8_export.accuracy(quantized.SerializeToString(), x_val, y_val)
    report.int8, report.fp32_accuracy, report.accuracy = True, fp32_acc, int8_acc
    report.metadata.update(int8=True, fp32_accuracy=fp32_acc, accuracy=int8_acc,
                           accuracy_source="these int8 weights, in ONNX Runtime",
                           accuracy_split=f"validation: {len(y_val)} images held out of the "
                                          f"training data, never trained or calibrated on")
    onnx_meta.write_metadata(quantized, report.metadata)
    quantized.doc_string = fp32_model.doc_string + " (int8, QDQ)"
    check_model(quantized)
    return quantized, fp32_bytes


def measure_exported(profiler: Any, data: bytes, module: Any, input_shape: tuple[int, ...]) -> tuple[Any, str]:
    """(Measurement, what was timed): the bytes on ONNX devices, else the module."""
    if getattr(profiler, "measures_onnx", False):
        return profiler.measure(data, input_shape, batch=1), "file"
    return profiler.measure(module, input_shape, batch=1), "module"


def export_arch(space: Space | str, arch: Arch | str, path: str | Path, *,
                model: Any = None, weights: "str | Path | Mapping[str, Any] | None" = None,
                num_classes: int | None = None, input_size: int | None = None,
                opset: int = DEFAULT_OPSET, device: Any = "ort:cpu", predictor: Any = None,
                accuracy: float | None = None, measure: bool = True, exporter: str = "auto",
                allow_device_mismatch: bool = False, space_kwargs: Mapping[str, Any] | None = None,
                metadata: Mapping[str, Any] | None = None, seed: int = 0, untrained: bool = False,
                data: Any = None, int8: bool = False,
                bake_preprocessing: bool = False) -> ExportReport:
    """Export ``arch`` of ``space`` to a single self-contained ONNX file at ``path``.

    ``space``: a Space or a registered name (built with ``space_kwargs``); ``arch``: an
    Arch or its string. ``model``: an already built (e.g. trained) network of ``arch``;
    otherwise it is built, and ``weights`` (state dict or file) loaded strictly.
    ``device``: a devices spec or Profiler to measure batch-1 latency on (skipped when
    ``measure`` is False); ``predictor``: a latency predictor or its saved file, whose
    prediction is reported beside the measurement (it must have been trained on this
    space and, unless ``allow_device_mismatch``, on the measured device). ``accuracy``
    and ``metadata`` (extra entries such as ``trained_on`` or a search run's
    ``best/arch.json`` record; the entries computed here win on a clash) are stored in
    the file. ``exporter``: "auto" (TorchScript, falling back to dynamo), "torchscript"
    or "dynamo"; ``seed`` fixes the parity inputs.

    Honest weights: a network with neither ``model`` nor ``weights`` has random weights;
    it is exported only with ``untrained=True``, stamped ``trained=false`` and without an
    accuracy. ``data`` (a ``datasets.DataSplit``) supplies the preprocessing and class
    names when ``metadata`` lacks them, the calibration images for ``int8`` (ONNX
    Runtime static QDQ quantization; the accuracy of both models on its validation
    split goes into the report and the file) and nothing else. ``bake_preprocessing``
    exports a graph that takes the raw uint8 image (NHWC) and applies the recorded
    preprocessing itself. Raises a HwnasError subclass, with the target untouched, when
    an input is bad or a check fails.
    """
    import hwnas
    from hwnas import onnx_meta
    from spaces.flops import count_cost

    start = time.perf_counter()
    # cheap checks first: bad input fails before any network is built
    check_opset(opset, exporter)
    target = check_target(path)
    space_obj = resolve_space(space, space_kwargs)
    arch_obj = resolve_arch(space_obj, arch)
    if model is not None and weights is not None:
        raise ExportError("give either a built model or a weights file, not both")
    trained = model is not None or weights is not None
    if not trained and not untrained:
        raise ExportError("this network has no trained weights: give a weights file or train it "
                          "first (hwnas export --train DATASET), or pass --untrained to export "
                          "random weights for latency work only")
    if not trained and accuracy is not None:
        raise ExportError("an untrained network has no accuracy to stamp")
    extra = dict(metadata or {})
    if data is not None:
        for key, value in _deploy_fields(data).items():
            extra.setdefault(key, value)
    if not trained:
        extra.pop("accuracy", None)
    if int8 and data is None:
        raise ExportError("--int8 needs calibration images: train the network here (--train "
                          "DATASET) or export it from a run, whose dataset is used")
    if int8 and bake_preprocessing:
        raise ExportError("--int8 with --bake-preprocessing is not supported yet; export them "
                          "separately")
    pre = extra.get("preprocessing")
    if bake_preprocessing and not pre:
        raise ExportError("--bake-preprocessing needs to know the preprocessing: export a network "
                          "trained here (--train) or from a run")
    if space_kwargs is None and isinstance(extra.get("space_kwargs"), Mapping):
        space_kwargs = extra["space_kwargs"]
    num_classes = space_obj.num_classes(num_classes)  # None: the space's own; else checked
    input_shape = tuple(space_obj.input_shape(input_size))
    profiler = _profiler(device) if measure else None
    if int8 and profiler is not None and not getattr(profiler, "measures_onnx", False):
        raise ExportError(f"an int8 file is timed as a file: measure it on an ONNX Runtime "
                          f"device (e.g. --device ort:cpu), not {profiler.spec}")
    predictor_obj = (_predictor(predictor, space_obj, profiler, allow_device_mismatch)
                     if predictor is not None else None)
    if model is None:
        model = space_obj.build(arch_obj, num_classes, input_size)
        if weights is not None:
            apply_weights(model, weights)
    # the file holds every weight (4 bytes each): a disk without room fails before the checks
    check_target(target, 4 * sum(p.numel() for p in model.parameters()))  # fp32 weights
    network, graph_shape, input_dtype = model, input_shape, None
    if bake_preprocessing:
        from hwnas.export.preprocess import baked, raw_input_shape

        network, graph_shape, input_dtype = baked(model, pre), raw_input_shape(pre), "uint8"

    onnx_model, report = export_and_verify(network, graph_shape, opset, exporter, seed, input_dtype)
    logits = tuple(d.dim_value for d in onnx_model.graph.output[0].type.tensor_type.shape.dim[1:])
    if logits and logits != (num_classes,):
        raise ExportError(f"the network outputs {list(logits)} per sample, expected {num_classes} logits")
    cost = count_cost(model, input_shape)
    report.path, report.space, report.arch = target, space_obj.key, space_obj.to_string(arch_obj)
    report.macs, report.params, report.num_classes = cost.macs, cost.params, num_classes
    report.accuracy, report.trained = accuracy, trained
    report.input_shape = tuple(graph_shape)
    report.input_format = ("raw uint8 image, N x H x W x C (preprocessing inside the graph)"
                           if bake_preprocessing else
                           "float32 N x C x H x W, preprocessed as 'preprocessing' says")
    if predictor_obj is not None:
        report.predicted_latency_ms = _predicted_ms(predictor_obj, arch_obj)
    report.metadata = {
        **extra,
        "space": space_obj.key, "space_name": space_obj.name,
        "space_kwargs": dict(space_kwargs) if space_kwargs is not None else None,
        "arch": report.arch, "choices": list(arch_obj.choices), "input_shape": list(input_shape),
        "num_classes": num_classes, "macs": cost.macs, "params": cost.params, "accuracy": accuracy,
        "trained": "supernet" if trained and extra.get("trained") == "supernet" else trained,
        "input_format": report.input_format,
        "predicted_latency_ms": report.predicted_latency_ms,
        "predictor": str(predictor) if isinstance(predictor, (str, Path)) else None,
        "parity_max_abs_diff": report.parity_max_abs_diff, "exporter": report.exporter,
        "opset": opset, "hwnas_version": hwnas.__version__,
    }
    onnx_meta.write_metadata(onnx_model, report.metadata)
    onnx_model.doc_string = f"hwnas {space_obj.key} {report.arch}"
    check_model(onnx_model)
    report.checker_ok = True
    fp32_bytes = None
    if int8:
        onnx_model, fp32_bytes = _to_int8(onnx_model, model, data, report)
    if profiler is not None:
        # time the serialised graph itself; the stamp below only adds metadata entries
        if fp32_bytes is not None and getattr(profiler, "measures_onnx", False):
            pair = profiler.measure_many([onnx_model.SerializeToString(), fp32_bytes], input_shape)
            measurement, report.latency_measured_on = pair[0], "file"
            report.fp32_latency_ms = float(pair[1].latency_ms)
            report.metadata["fp32_latency_ms"] = report.fp32_latency_ms
        else:
            measurement, report.latency_measured_on = measure_exported(
                profiler, onnx_model.SerializeToString(), network, graph_shape)
        report.latency_ms = float(measurement.latency_ms)
        report.latency_statistic = measurement.statistic
        report.device, report.device_fingerprint_id = profiler.label, profiler.fingerprint_id
        report.measurement = measurement.to_dict()
        from hwnas.export.stamp import latency_fields

        report.metadata.update(latency_fields(measurement, report.device,
                                              report.device_fingerprint_id,
                                              report.latency_measured_on))
        onnx_meta.write_metadata(onnx_model, report.metadata)
    data = onnx_model.SerializeToString()
    if len(data) > _PROTOBUF_LIMIT:
        raise ExportError(f"the model is {len(data) / 2**30:.1f} GiB; a single ONNX file holds at most 2 GiB")
    write_atomically(data, target)
    report.file_bytes = target.stat().st_size
    report.total_s = time.perf_counter() - start
    return report
