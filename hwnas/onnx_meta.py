"""hwnas's facts about an exported network, stored in the ONNX file's ``metadata_props``.

Why inside the file: a deployed ``model.onnx`` travels without its search run,
so the architecture, its cost, the latency measured on which device (label and
fingerprint id) and the exporter/opset it came from must travel with it.
Entries are namespaced ``hwnas.<field>`` and typed by :data:`FIELDS`, so a
round trip gives back ints, floats and lists, not strings; entries written by
other tools are left alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from spaces.core.errors import DamagedFile

PREFIX = "hwnas."


# A path given as an ONNX model is missing or cannot be parsed as one.
InvalidOnnxFile = DamagedFile


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# field -> (encode, decode, description), in the order they are shown by ``--inspect``.
_Codec = tuple[Callable[[Any], str], Callable[[str], Any], str]
_TEXT: tuple[Callable[[Any], str], Callable[[str], Any]] = (str, str)
_INT: tuple[Callable[[Any], str], Callable[[str], Any]] = (lambda v: str(int(v)), int)
_FLOAT: tuple[Callable[[Any], str], Callable[[str], Any]] = (lambda v: repr(float(v)), float)
_JSON: tuple[Callable[[Any], str], Callable[[str], Any]] = (_json, json.loads)

FIELDS: dict[str, _Codec] = {
    "space": (*_TEXT, "space key (name and parameters, e.g. fbnetv2:tiny)"),
    "space_name": (*_TEXT, "space name in the registry"),
    "space_kwargs": (*_JSON, "keyword arguments that rebuild the space"),
    "arch": (*_TEXT, "architecture string"),
    "choices": (*_JSON, "option index per decision"),
    "input_shape": (*_JSON, "input shape without the batch dimension"),
    "num_classes": (*_INT, "number of output classes"),
    "macs": (*_INT, "multiply-accumulates at batch 1"),
    "params": (*_INT, "parameters"),
    "accuracy": (*_FLOAT, "accuracy of these weights (see accuracy_unit / accuracy_split)"),
    "accuracy_unit": (*_TEXT, "unit of accuracy"),
    "accuracy_split": (*_TEXT, "the images the accuracy was measured on"),
    "accuracy_source": (*_TEXT, "whose accuracy: these weights, or a benchmark table's"),
    "trained": (lambda v: v if v == "supernet" else ("true" if v else "false"),
                lambda t: "supernet" if t == "supernet" else t == "true",
                "whether the weights were trained (false: random, for latency work only; "
                "supernet: inherited from a trained one-shot supernet)"),
    "trained_on": (*_TEXT, "what the weights were trained on"),
    "dataset": (*_TEXT, "dataset the network classifies"),
    "class_names": (*_JSON, "output index -> class name"),
    "preprocessing": (*_JSON, "raw image -> input: scale, resize, channels, mean, std"),
    "input_format": (*_TEXT, "the graph's input: normalised float32 NCHW, or a raw uint8 image"),
    "int8": (lambda v: "true" if v else "false", lambda t: t == "true",
             "statically quantized (QDQ) by ONNX Runtime"),
    "fp32_accuracy": (*_FLOAT, "accuracy of the fp32 model the int8 one was quantized from"),
    "fp32_latency_ms": (*_FLOAT, "measured latency of the fp32 model (ms)"),
    "metrics": (*_JSON, "metrics the search recorded for this architecture"),
    "latency_ms": (*_FLOAT, "measured latency at batch 1 (ms)"),
    "latency_statistic": (*_TEXT, "statistic of the latency samples"),
    "latency_measured_on": (*_TEXT, "what was timed: this file's bytes, or the torch module"),
    "latency_block_calls": (*_INT, "back-to-back calls per timed sample"),
    "latency_median_ms": (*_FLOAT, "median of the timed samples (ms)"),
    "budget_ms": (*_FLOAT, "latency budget the network was chosen for (ms)"),
    "meets_budget": (lambda v: "true" if v else "false", lambda t: t == "true",
                     "measured latency within the budget"),
    "rounds": (*_INT, "search-measure rounds the budget took"),
    "device": (*_TEXT, "device label of the measurement"),
    "device_fingerprint_id": (*_TEXT, "device fingerprint id"),
    "predicted_latency_ms": (*_FLOAT, "latency predicted by the predictor (ms)"),
    "predictor": (*_TEXT, "predictor used for the prediction"),
    "parity_max_abs_diff": (*_FLOAT, "max |ONNX Runtime - torch| over the parity batches"),
    "exporter": (*_TEXT, "torch.onnx exporter that wrote the graph"),
    "opset": (*_INT, "ONNX opset"),
    "hwnas_version": (*_TEXT, "hwnas version"),
}


# What a deployer needs from a file; --inspect names the ones a file lacks.
DEPLOY_FIELDS = ("preprocessing", "class_names", "trained", "accuracy", "latency_ms")


def encode(values: Mapping[str, Any]) -> dict[str, str]:
    """``{"macs": 123}`` -> ``{"hwnas.macs": "123"}``; None values are dropped. Fields
    outside the schema (callers' own notes) are stored as JSON, so they read back with
    their types (a number stays a number)."""
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        codec = FIELDS.get(name)
        if codec:
            out[PREFIX + name] = codec[0](value)
        else:
            out[PREFIX + name] = _json(value)
    return out


def decode(props: Mapping[str, str]) -> dict[str, Any]:
    """Inverse of :func:`encode` for the ``hwnas.*`` entries; other entries are ignored."""
    out: dict[str, Any] = {}
    for key, text in props.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        codec = FIELDS.get(name)
        try:
            out[name] = codec[1](text) if codec else json.loads(text)
        except ValueError:  # written by hand or by another version: keep the text
            out[name] = text
    return out


def write_metadata(model: "onnx.ModelProto", values: Mapping[str, Any]) -> None:  # noqa: F821
    """Set the ``hwnas.*`` entries of ``model`` in place, replacing earlier hwnas entries."""
    encoded = encode(values)
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in kept + sorted(encoded.items(), key=lambda kv: _order(kv[0])):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _order(key: str) -> tuple[int, str]:
    names = list(FIELDS)
    name = key[len(PREFIX):]
    return (names.index(name) if name in names else len(names), name)


def load_model(path: str | Path) -> "onnx.ModelProto":  # noqa: F821
    """Parse an ONNX file without its external data (metadata needs only the header)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InvalidOnnxFile(f"{path} is not a file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise InvalidOnnxFile(f"{path} is not an ONNX model ({type(error).__name__})") from None
    # protobuf parses an empty file (and some other bytes) as an empty message: a model
    # has at least an IR version and a graph with an output
    if model.ir_version < 1 or not model.HasField("graph") or not model.graph.output:
        what = "is empty" if path.stat().st_size == 0 else "holds no ONNX graph"
        raise InvalidOnnxFile(f"{path} {what}, so it is not an ONNX model")
    return model


def read_metadata(source: "str | Path | onnx.ModelProto") -> dict[str, Any]:  # noqa: F821
    """The decoded ``hwnas.*`` entries of an ONNX file or in-memory model."""
    model = load_model(source) if isinstance(source, (str, Path)) else source
    return decode({p.key: p.value for p in model.metadata_props})


def describe(path: str | Path) -> list[tuple[str, str]]:
    """Rows (field, value) for ``hwnas export --inspect``: the graph's interface, then
    every hwnas entry in schema order, then foreign metadata entries."""
    model = load_model(path)
    rows: list[tuple[str, str]] = [("file", f"{path} ({Path(path).stat().st_size:,} bytes)")]
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            dims = [d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim]
            rows.append((kind, f"{value.name} [{', '.join(dims)}]"))
    rows.append(("producer", f"{model.producer_name} {model.producer_version}".strip()))
    meta = read_metadata(model)
    if not meta:
        rows.append(("hwnas", "no hwnas metadata: this file was not written by hwnas export, so "
                              "it says nothing about preprocessing, labels, accuracy or latency"))
    else:
        missing = [n for n in DEPLOY_FIELDS if n not in meta]
        if missing:
            rows.append(("missing", ", ".join(missing)))
    for name in sorted(meta, key=lambda n: _order(PREFIX + n)):
        value = meta[name]
        rows.append((name, _json(value) if isinstance(value, (list, dict)) else str(value)))
    for prop in model.metadata_props:
        if not prop.key.startswith(PREFIX):
            rows.append((prop.key, prop.value))
    return rows
