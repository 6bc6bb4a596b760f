"""Deployable ONNX export of one architecture: built, checked, compared with torch, measured.

One function, :func:`export_arch`, serves ``hwnas export`` and a search run's
``best/model.onnx``. It refuses to leave a file that has not passed every check:
the graph is exported in memory, checked with ``onnx.checker`` (full check),
run in ONNX Runtime (CPU) at batch 1 and 8 and compared with torch (max abs
difference <= 1e-4, plus 1e-6 of the output's magnitude), measured on the target
device, stamped with metadata (:mod:`hwnas.onnx_meta`), and only then written to a
temporary file beside the target and moved over it with ``os.replace``. A failure at
any step leaves the target as it was.

Measurement: the devices layer times the same module (it exports its own static-batch
copy for ONNX Runtime), so the latency is that of this network on that device, not a
timing of the bytes in this file.

Exporter: ``torch.onnx.export(dynamo=True)`` first (the supported exporter), with a
dynamic batch dimension and no external data (one self-contained file); if it
fails for a module, the TorchScript exporter (``dynamo=False``) is tried and the
report and metadata say which one wrote the graph.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from spaces import Arch, Space
from spaces.errors import HwnasError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 20
# The dynamo exporter's own ops are written at opset 18; below that it converts the
# graph down (lossy, may silently stay at 18). 23 is the newest opset torch.onnx
# targets (torch.onnx._constants.ONNX_MAX_OPSET). The TorchScript fallback stops at 20.
MIN_OPSET, MAX_OPSET, TORCHSCRIPT_MAX_OPSET = 18, 23, 20
PARITY_BATCHES = (1, 8)
# Allowed |ONNX Runtime - torch|: ATOL + RTOL * max|torch output|. For logits of
# trained nets (|y| <~ 30) that is 1e-4 within 3%; the relative term only matters for
# outputs in the hundreds (e.g. untrained NB201 nets in eval mode, |y| ~ 600), where
# float32 rounding alone differs by ~1e-4 between two correct implementations.
PARITY_ATOL, PARITY_RTOL = 1e-4, 1e-6
EXPORTERS = ("auto", "dynamo", "torchscript")
_PROTOBUF_LIMIT = 2**31 - 1


class ExportError(HwnasError, RuntimeError):
    """The network could not be exported, or the export failed a check."""


class WeightsMismatch(ExportError):
    """A weights file does not fit the architecture's network."""


class ParityError(ExportError):
    """ONNX Runtime's output differs from torch's by more than the tolerance."""


class ExportUnavailable(ExportError):
    """An optional target (the fp16 TensorRT engine) cannot be built on this machine."""


@dataclass
class ExportReport:
    """Everything checked and measured while exporting; ``metadata`` is what the file holds."""

    path: Path
    space: str
    arch: str
    file_bytes: int
    export_s: float
    total_s: float
    exporter: str
    opset: int
    checker_ok: bool
    parity: dict[int, float]
    parity_tolerance: float
    output_scale: float
    macs: int
    params: int
    input_shape: tuple[int, ...]
    num_classes: int
    latency_ms: float | None = None
    latency_statistic: str | None = None
    device: str | None = None
    device_fingerprint_id: str | None = None
    predicted_latency_ms: float | None = None
    accuracy: float | None = None
    fallback_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def parity_max_abs_diff(self) -> float:
        return max(self.parity.values())

    @property
    def parity_relative(self) -> float:
        """Worst difference relative to the largest output: shows when a tiny output scale
        (e.g. an untrained FBNet's near-zero classifier, logits ~1e-8) makes the absolute
        check easy to pass."""
        return self.parity_max_abs_diff / self.output_scale if self.output_scale else float("inf")

    @property
    def prediction_error(self) -> float | None:
        """(predicted - measured) / measured, when both exist."""
        if self.latency_ms is None or self.predicted_latency_ms is None:
            return None
        return (self.predicted_latency_ms - self.latency_ms) / self.latency_ms

    def rows(self) -> list[tuple[str, str]]:
        """(field, value) pairs for the CLI's summary table."""
        rows = [("file", f"{self.path} ({self.file_bytes / 1024:.1f} KiB)"),
                ("space", self.space), ("arch", self.arch),
                ("exporter", f"{self.exporter}, opset {self.opset}"
                 + (f" (dynamo failed: {self.fallback_reason})" if self.fallback_reason else "")),
                ("export time", f"{self.export_s:.2f} s (all steps {self.total_s:.2f} s)"),
                ("onnx.checker", "ok (full_check)" if self.checker_ok else "failed")]
        rows += [(f"parity batch {b}", f"max abs diff {d:.2e} (allowed {self.parity_tolerance:.2g})")
                 for b, d in self.parity.items()]
        rows.append(("output scale", f"max |output| {self.output_scale:.3g}, worst diff relative to "
                                     f"it {self.parity_relative:.1e}"))
        rows += [("MACs", f"{self.macs / 1e6:.2f} M"), ("params", f"{self.params / 1e6:.3f} M"),
                 ("input", "x".join(map(str, self.input_shape))), ("classes", str(self.num_classes))]
        if self.accuracy is not None:
            rows.append(("accuracy", f"{self.accuracy:.4f}"))
        if self.latency_ms is not None:
            rows.append(("latency", f"{self.latency_ms:.3f} ms ({self.latency_statistic}, batch 1) "
                                    f"on {self.device} [{self.device_fingerprint_id}]"))
        if self.predicted_latency_ms is not None:
            error = self.prediction_error
            rows.append(("predicted", f"{self.predicted_latency_ms:.3f} ms"
                         + (f" ({error:+.1%} vs measured)" if error is not None else "")))
        return rows

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["parity"] = {str(k): v for k, v in self.parity.items()}
        return data


# ---- inputs -----------------------------------------------------------------------------
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


def resolve_arch(space: Space, arch: Arch | str) -> Arch:
    """An Arch of ``space`` from an Arch or its string form; another space's arch or string
    raises InvalidArchitecture (a HwnasError) naming the problem."""
    if isinstance(arch, Arch):
        return space.validate(arch)
    return space.from_string(str(arch).strip())


def check_opset(opset: int, exporter: str = "auto") -> int:
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")
    high = TORCHSCRIPT_MAX_OPSET if exporter == "torchscript" else MAX_OPSET
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= high:
        raise ExportError(f"opset {opset} is not supported by the {exporter} exporter; "
                          f"use {MIN_OPSET}..{high}")
    return opset


def check_target(path: str | Path) -> Path:
    """Refuse, before any work, a target that cannot be written: a folder, a missing or
    read-only parent folder."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ExportError(f"{target} is a folder; give the path of the .onnx file to write")
    parent = target.parent.resolve() if str(target.parent) else Path.cwd()
    if not parent.is_dir():
        raise ExportError(f"cannot write {target}: folder {target.parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {target}: folder {target.parent} is not writable")
    return target


def load_state_dict(weights: "str | Path | Mapping[str, Any]") -> dict[str, Any]:
    """A state dict from a mapping or a ``torch.save`` file holding one (possibly under
    ``state_dict`` or ``model``, as training checkpoints often do)."""
    import torch

    if isinstance(weights, (str, Path)):
        path = Path(weights)
        if not path.is_file():
            raise WeightsMismatch(f"weights file {path} does not exist")
        try:
            weights = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - pickle/zip errors of many kinds
            raise WeightsMismatch(
                f"{path} is not a torch weights file ({type(error).__name__})") from None
    if isinstance(weights, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(weights.get(key), Mapping):
                weights = weights[key]
                break
    if not isinstance(weights, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise WeightsMismatch("the weights are not a state dict (a mapping of names to tensors)")
    return dict(weights)


def apply_weights(module: Any, weights: "str | Path | Mapping[str, Any]") -> None:
    """Load weights strictly; a mismatch names the first key that does not fit."""
    state = load_state_dict(weights)
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise WeightsMismatch(f"the weights do not fit the architecture: key {key!r} is missing")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise WeightsMismatch(
                f"the weights do not fit the architecture: key {key!r} has shape "
                f"{list(state[key].shape)} in the weights but {list(tensor.shape)} in the network")
    extra = [k for k in state if k not in expected]
    if extra:
        raise WeightsMismatch(f"the weights do not fit the architecture: unexpected key {extra[0]!r}")
    module.load_state_dict(state, strict=True)


# ---- export -----------------------------------------------------------------------------
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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(error: BaseException) -> str:
    """The gist of an exporter's error: first line, colours and "next steps" cut off."""
    text = _ANSI.sub("", str(error)).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line.split(" This is step")[0].strip()[:300]


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """The exporters print progress, warnings and whole graphs (on stdout, on stderr and
    through torch's loggers); the report says what matters, so hold that noise back."""
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


def _dynamo(module: Any, example: Any, opset: int) -> "onnx.ModelProto":  # noqa: F821
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(module, (example,), None, dynamo=True, opset_version=opset,
                                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                dynamic_shapes=({0: batch},), external_data=False,
                                optimize=True, verbose=False)
    return program.model_proto


def _torchscript(module: Any, example: Any, opset: int) -> "onnx.ModelProto":  # noqa: F821
    import onnx
    import torch

    buffer = io.BytesIO()
    torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset,
                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                      do_constant_folding=True)
    return onnx.load_model_from_string(buffer.getvalue())


def to_onnx(module: Any, input_shape: Sequence[int], opset: int = DEFAULT_OPSET,
            exporter: str = "auto") -> tuple["onnx.ModelProto", str, str | None]:  # noqa: F821
    """The module (already in eval mode) as an in-memory ONNX model with a dynamic batch.

    Returns (model, exporter used, why dynamo was not used or None). The example input
    has batch 2: torch.export specialises a size-1 dimension to a constant.
    """
    import torch

    check_opset(opset, exporter)
    example = torch.randn((2, *input_shape))
    reason = None
    with quiet_exporters():
        if exporter in ("auto", "dynamo"):
            try:
                return _dynamo(module, example, opset), "dynamo", None
            except Exception as error:  # noqa: BLE001 - the exporter raises many kinds
                reason = _first_line(error)
                if exporter == "dynamo" or opset > TORCHSCRIPT_MAX_OPSET:
                    raise ExportError(f"the dynamo exporter failed: {reason}") from None
        try:
            return _torchscript(module, example, opset), "torchscript", reason
        except Exception as error:  # noqa: BLE001
            prefix = f"the dynamo exporter failed ({reason}) and " if reason else ""
            raise ExportError(f"{prefix}the TorchScript exporter failed: {_first_line(error)}") from None


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
        raise ExportError(f"onnx.checker rejected the exported model: {_first_line(error)}") from None


def parity(model_bytes: bytes, module: Any, input_shape: Sequence[int],
           batches: Sequence[int] = PARITY_BATCHES, seed: int = 0) -> tuple[dict[int, float], float]:
    """Max abs difference between ONNX Runtime (CPU) and torch on random normal inputs,
    per batch size, and the largest |torch output| seen; the module must be in eval mode."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph
        raise ExportError(f"ONNX Runtime cannot load the exported model: {_first_line(error)}") from None
    rng = np.random.default_rng(seed)
    diffs, scale = {}, 0.0
    for batch in batches:
        x = rng.standard_normal((batch, *input_shape)).astype(np.float32)
        expected = module(torch.from_numpy(x)).detach().numpy()
        try:
            (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
        except Exception as error:  # noqa: BLE001
            raise ExportError(f"ONNX Runtime failed at batch {batch}: {_first_line(error)}") from None
        if got.shape != expected.shape:
            raise ParityError(f"ONNX Runtime output has shape {list(got.shape)} at batch {batch}, "
                              f"torch {list(expected.shape)}")
        diffs[batch] = float(np.max(np.abs(got.astype(np.float64) - expected)))
        scale = max(scale, float(np.max(np.abs(expected))))
    return diffs, scale


def parity_tolerance(output_scale: float) -> float:
    return PARITY_ATOL + PARITY_RTOL * output_scale


def write_atomically(data: bytes, target: Path) -> None:
    """Write to a temporary file in the target's folder and ``os.replace`` it over the
    target, so a reader never sees half a model and a failure leaves no file behind."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ExportError(f"cannot write {target}: {error.strerror or error}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---- measurement ------------------------------------------------------------------------
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


# ---- the one entry point ----------------------------------------------------------------
def default_opset(model: Any) -> int | None:
    """Version of the standard ONNX domain the model imports."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def export_and_verify(model: Any, input_shape: Sequence[int], opset: int = DEFAULT_OPSET,
                      exporter: str = "auto", seed: int = 0) -> tuple[Any, ExportReport]:
    """Export ``model`` in eval mode and run every check that needs no metadata: opset,
    no external data, output width, parity at batch 1 and 8. Returns the ONNX model and a
    partial report (exporter, timings, parity)."""
    with eval_mode(model):
        start = time.perf_counter()
        onnx_model, used, fallback = to_onnx(model, input_shape, opset, exporter)
        export_s = time.perf_counter() - start
        found = default_opset(onnx_model)
        if found != opset:
            raise ExportError(f"the {used} exporter wrote opset {found}, not the requested {opset}")
        if external_tensors(onnx_model):
            raise ExportError("the exported model keeps tensors in external data files")
        diffs, scale = parity(onnx_model.SerializeToString(), model, input_shape, seed=seed)
    worst, allowed = max(diffs.values()), parity_tolerance(scale)
    if not worst <= allowed:
        raise ParityError(f"ONNX Runtime differs from torch by up to {worst:.3g} (batch sizes "
                          f"{', '.join(f'{b}: {d:.3g}' for b, d in diffs.items())}), more than "
                          f"the {allowed:.3g} allowed for outputs up to {scale:.3g}")
    report = ExportReport(
        path=Path(), space="", arch="", file_bytes=0, export_s=export_s, total_s=0.0,
        exporter=used, opset=opset, checker_ok=False, parity=diffs, parity_tolerance=allowed,
        output_scale=scale, macs=0, params=0, input_shape=tuple(input_shape), num_classes=0,
        fallback_reason=fallback)
    return onnx_model, report


def export_arch(space: Space | str, arch: Arch | str, path: str | Path, *,
                model: Any = None, weights: "str | Path | Mapping[str, Any] | None" = None,
                num_classes: int | None = None, input_size: int | None = None,
                opset: int = DEFAULT_OPSET, device: Any = "ort:cpu", predictor: Any = None,
                accuracy: float | None = None, measure: bool = True, exporter: str = "auto",
                allow_device_mismatch: bool = False, space_kwargs: Mapping[str, Any] | None = None,
                metadata: Mapping[str, Any] | None = None, seed: int = 0) -> ExportReport:
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
    the file. ``exporter``: "auto" (dynamo, falling back to TorchScript), "dynamo" or
    "torchscript"; ``seed`` fixes the parity inputs. Raises a HwnasError
    subclass, with the target untouched, when an input is bad or a check fails.
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
    extra = dict(metadata or {})
    if space_kwargs is None and isinstance(extra.get("space_kwargs"), Mapping):
        space_kwargs = extra["space_kwargs"]
    num_classes = num_classes or space_obj.default_num_classes
    input_shape = tuple(space_obj.input_shape(input_size))
    profiler = _profiler(device) if measure else None
    predictor_obj = (_predictor(predictor, space_obj, profiler, allow_device_mismatch)
                     if predictor is not None else None)
    if model is None:
        model = space_obj.build(arch_obj, num_classes, input_size)
        if weights is not None:
            apply_weights(model, weights)

    onnx_model, report = export_and_verify(model, input_shape, opset, exporter, seed)
    logits = tuple(d.dim_value for d in onnx_model.graph.output[0].type.tensor_type.shape.dim[1:])
    if logits and logits != (num_classes,):
        raise ExportError(f"the network outputs {list(logits)} per sample, expected {num_classes} logits")
    cost = count_cost(model, input_shape)
    report.path, report.space, report.arch = target, space_obj.key, space_obj.to_string(arch_obj)
    report.macs, report.params, report.num_classes = cost.macs, cost.params, num_classes
    report.accuracy = accuracy
    if profiler is not None:
        measurement = profiler.measure(model, input_shape, batch=1)
        report.latency_ms = float(measurement.latency_ms)
        report.latency_statistic = measurement.statistic
        report.device, report.device_fingerprint_id = profiler.label, profiler.fingerprint_id
    if predictor_obj is not None:
        report.predicted_latency_ms = _predicted_ms(predictor_obj, arch_obj)

    report.metadata = {
        **extra,
        "space": space_obj.key, "space_name": space_obj.name,
        "space_kwargs": dict(space_kwargs) if space_kwargs is not None else None,
        "arch": report.arch, "choices": list(arch_obj.choices), "input_shape": list(input_shape),
        "num_classes": num_classes, "macs": cost.macs, "params": cost.params, "accuracy": accuracy,
        "latency_ms": report.latency_ms, "latency_statistic": report.latency_statistic,
        "device": report.device, "device_fingerprint_id": report.device_fingerprint_id,
        "predicted_latency_ms": report.predicted_latency_ms,
        "predictor": str(predictor) if isinstance(predictor, (str, Path)) else None,
        "parity_max_abs_diff": report.parity_max_abs_diff, "exporter": report.exporter,
        "opset": opset, "hwnas_version": hwnas.__version__,
    }
    onnx_meta.write_metadata(onnx_model, report.metadata)
    onnx_model.doc_string = f"hwnas {space_obj.key} {report.arch}"
    check_model(onnx_model)
    report.checker_ok = True
    data = onnx_model.SerializeToString()
    if len(data) > _PROTOBUF_LIMIT:
        raise ExportError(f"the model is {len(data) / 2**30:.1f} GiB; a single ONNX file holds at most 2 GiB")
    write_atomically(data, target)
    report.file_bytes = target.stat().st_size
    report.total_s = time.perf_counter() - start
    return report


# ---- optional fp16 TensorRT engine ------------------------------------------------------
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

    major_minor = tuple(int(p) for p in (trt.__version__.split(".") + ["0"])[:2])
    if major_minor >= (10, 12) or not hasattr(trt.BuilderFlag, "FP16"):
        raise ExportUnavailable(f"TensorRT {trt.__version__} takes fp16 only from an fp16 graph "
                                f"(strong typing), and hwnas export writes fp32 graphs")
    return trt


def build_tensorrt_engine(onnx_path: str | Path, engine_path: str | Path,
                          max_batch: int = PARITY_BATCHES[-1]) -> Path:
    """Serialise an fp16 TensorRT engine of an exported model (batch 1..``max_batch``,
    tuned for 1) beside it; the fp32 ONNX file stays the deployable artefact."""
    trt = require_tensorrt()
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
    target = check_target(engine_path)
    write_atomically(bytes(plan), target)
    return target
