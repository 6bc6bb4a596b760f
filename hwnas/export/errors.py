"""Errors of the export package (all HwnasError: one sentence, exit 2 at the CLI)."""

from __future__ import annotations

from spaces.core.errors import Incompatible, StepFailed, Unavailable


ExportError = StepFailed  # The network could not be exported, or the export failed a check.


WeightsMismatch = Incompatible  # A weights file does not fit the architecture's network.


ParityError = StepFailed  # ONNX Runtime's output differs from torch's by more than the tolerance.


# An optional target (the fp16 TensorRT engine) cannot be built on this machine.
ExportUnavailable = Unavailable


