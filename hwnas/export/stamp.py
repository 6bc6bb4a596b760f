"""Add facts to an exported file's metadata without touching its graph.

Why a separate step: the latency stamped on a file must be measured on that
file, and measuring needs the finished graph; metadata entries do not change
what ONNX Runtime executes, so they are added afterwards. The rewrite is atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hwnas.export.errors import ExportError
from spaces.core import OutputError, atomic_write


def stamp(source: str | Path, values: Mapping[str, Any], target: str | Path | None = None) -> Path:
    """Merge ``values`` into the hwnas metadata of ``source`` and write the result to
    ``target`` (default: over ``source``). The graph, weights and other entries are kept."""
    from hwnas import onnx_meta

    model = onnx_meta.load_model(source)
    merged = {**onnx_meta.read_metadata(model), **dict(values)}
    onnx_meta.write_metadata(model, merged)
    out = Path(target) if target is not None else Path(source)
    try:
        return atomic_write(out, model.SerializeToString())
    except OutputError as error:
        raise ExportError(str(error)) from None


def latency_fields(measurement: Any, device_label: str, device_id: str,
                   measured_on: str) -> dict[str, Any]:
    """The metadata entries that describe a measurement of the file."""
    return {"latency_ms": float(measurement.latency_ms),
            "latency_statistic": measurement.statistic,
            "latency_measured_on": measured_on,
            "latency_block_calls": int(measurement.block_calls),
            "latency_median_ms": float(measurement.median_ms),
            "device": device_label, "device_fingerprint_id": device_id}
