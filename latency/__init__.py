"""A model of what networks cost: measurement store, encodings, predictors, metrics, latency loss.

``latency`` imports ``spaces`` only (never ``devices`` or ``hwnas``). The public names
below are imported on first use, so ``import latency`` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {"metrics": "latency.metrics", "predictors": "latency.predictors",
            "store": "latency.store", "active": "latency.active"}
_NAMES = {
    "MeasurementStore": ("latency.store", "MeasurementStore"),
    "StoreError": ("latency.store", "StoreError"),
    "drift_corrected": ("latency.store", "drift_corrected"),
    "Predictor": ("latency.predictors", "Predictor"),
    "PredictorError": ("latency.predictors", "PredictorError"),
    "PredictorMismatch": ("latency.predictors", "PredictorMismatch"),
    "create_predictor": ("latency.predictors", "create"),
    "load_predictor": ("latency.predictors", "load"),
    "latency_loss": ("latency.loss", "latency_loss"),
    "active_profile": ("latency.active", "active_profile"),
    "one_hot": ("latency.encoding", "one_hot"),
}

__all__ = sorted([*_MODULES, *_NAMES])


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value: Any = importlib.import_module(_MODULES[name])
    elif name in _NAMES:
        module, attr = _NAMES[name]
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'latency' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
