"""What an export checked and measured, as a table for the CLI and JSON for files."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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
    latency_measured_on: str | None = None   # "file": the written bytes; "module": torch
    device: str | None = None
    device_fingerprint_id: str | None = None
    predicted_latency_ms: float | None = None
    accuracy: float | None = None
    fallback_reason: str | None = None
    measurement: dict[str, Any] | None = None  # the devices.Measurement of the latency
    trained: bool = True
    input_format: str = ""
    int8: bool = False
    fp32_accuracy: float | None = None
    fp32_latency_ms: float | None = None
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
                 + (f" (first choice failed: {self.fallback_reason})" if self.fallback_reason else "")),
                ("export time", f"{self.export_s:.2f} s (all steps {self.total_s:.2f} s)"),
                ("onnx.checker", "ok (full_check)" if self.checker_ok else "failed")]
        rows += [(f"parity batch {b}", f"max abs diff {d:.2e} (allowed {self.parity_tolerance:.2g})")
                 for b, d in self.parity.items()]
        rows.append(("output scale", f"max |output| {self.output_scale:.3g}, worst diff relative to "
                                     f"it {self.parity_relative:.1e}"))
        rows += [("MACs", f"{self.macs / 1e6:.2f} M"), ("params", f"{self.params / 1e6:.3f} M"),
                 ("input shape", "x".join(map(str, self.input_shape))),
                 ("classes", str(self.num_classes))]
        rows.append(("input", self.input_format or "x".join(map(str, self.input_shape))))
        if not self.trained:
            rows.append(("weights", "untrained (random): no accuracy; for latency work only"))
        if self.accuracy is not None:
            rows.append(("accuracy", f"{self.accuracy:.2f} % (validation split)"
                         + (f"; fp32 {self.fp32_accuracy:.2f} %" if self.int8 else "")))
        if self.latency_ms is not None:
            rows.append(("latency", f"{self.latency_ms:.4g} ms ({self.latency_statistic}, batch 1, "
                                    f"timed on the {self.latency_measured_on}) on {self.device} "
                                    f"[{self.device_fingerprint_id}]"
                         + (f"; fp32 {self.fp32_latency_ms:.4g} ms" if self.fp32_latency_ms else "")))
        if self.predicted_latency_ms is not None:
            error = self.prediction_error
            rows.append(("predicted", f"{self.predicted_latency_ms:.4g} ms"
                         + (f" ({error:+.1%} vs measured)" if error is not None else "")))
        return rows

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["parity"] = {str(k): v for k, v in self.parity.items()}
        if data.get("measurement"):
            data["measurement"] = {k: v for k, v in data["measurement"].items()
                                   if k not in ("samples_ms", "aux_samples_ms")}
        return data
