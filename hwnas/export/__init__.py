"""Deployable ONNX export of one architecture: built, checked, compared with torch,
measured on the file's own bytes, stamped and written atomically.

Modules, one job each: :mod:`~hwnas.export.verify` (convert with the converter
profiling uses, check, parity), :mod:`~hwnas.export.weights` (strict weight
loading), :mod:`~hwnas.export.report` (what was checked), :mod:`~hwnas.export.api`
(:func:`export_arch`, the one entry point) and :mod:`~hwnas.export.tensorrt` (the
optional fp16 engine).
"""

from hwnas.export.api import (DEFAULT_OPSET, check_target, export_arch, measure_exported,
                              resolve_arch, resolve_space, write_atomically)
from hwnas.export.errors import ExportError, ExportUnavailable, ParityError, WeightsMismatch
from hwnas.export.report import ExportReport
from hwnas.export.stamp import latency_fields, stamp
from hwnas.export.tensorrt import build_tensorrt_engine, require_tensorrt
from hwnas.export.verify import (PARITY_ATOL, PARITY_BATCHES, PARITY_RTOL, check_model,
                                 check_opset, default_opset, eval_mode, export_and_verify,
                                 external_tensors, parity, parity_tolerance)
from hwnas.export.weights import apply_weights, load_state_dict
from devices.onnx_export import EXPORTERS, INPUT_NAME, OUTPUT_NAME, to_onnx

__all__ = [
    "DEFAULT_OPSET", "EXPORTERS", "ExportError", "ExportReport", "ExportUnavailable",
    "INPUT_NAME", "OUTPUT_NAME", "PARITY_ATOL", "PARITY_BATCHES", "PARITY_RTOL", "ParityError",
    "WeightsMismatch", "apply_weights", "build_tensorrt_engine", "check_model", "check_opset",
    "check_target", "default_opset", "eval_mode", "export_and_verify", "export_arch",
    "external_tensors", "latency_fields", "load_state_dict", "measure_exported", "parity", "parity_tolerance",
    "require_tensorrt", "resolve_arch", "resolve_space", "stamp", "to_onnx", "write_atomically",
]
