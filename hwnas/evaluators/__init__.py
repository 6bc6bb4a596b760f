"""Evaluators turn architectures into metrics, one batch at a time; found by name.

``get(name)`` returns the class; constructors differ (a table needs a dataset
name, training needs data), so the CLI builds them from its options.
"""

from __future__ import annotations

import importlib

from spaces.errors import UnknownName

from hwnas.evaluators.base import ComposedEvaluator, CostMetrics, Evaluator

_REGISTRY = {
    "tabular": "hwnas.evaluators.tabular:TabularEvaluator",
    "train": "hwnas.evaluators.train:TrainEvaluator",
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> type[Evaluator]:
    if name not in _REGISTRY:
        raise UnknownName("evaluator", name, names())
    module, _, attr = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def register(name: str, path: str) -> None:
    """Add an evaluator class under ``name`` (``module:Class``)."""
    _REGISTRY[name] = path


__all__ = ["ComposedEvaluator", "CostMetrics", "Evaluator", "get", "names", "register"]
