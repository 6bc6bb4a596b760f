"""Errors of the export package (all HwnasError: one sentence, exit 2 at the CLI)."""

from __future__ import annotations

from spaces.errors import HwnasError


class ExportError(HwnasError, RuntimeError):
    """The network could not be exported, or the export failed a check."""


class WeightsMismatch(ExportError):
    """A weights file does not fit the architecture's network."""


class ParityError(ExportError):
    """ONNX Runtime's output differs from torch's by more than the tolerance."""


class ExportUnavailable(ExportError):
    """An optional target (the fp16 TensorRT engine) cannot be built on this machine."""
