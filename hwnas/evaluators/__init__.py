"""Evaluators turn architectures into metrics, one batch at a time; found by name.

``get(name)`` returns the class; constructors differ (a table needs a dataset
name, training needs data), so the CLI builds them from its options.
"""

from __future__ import annotations

from spaces.core import Registry

from hwnas.evaluators.base import ComposedEvaluator, CostMetrics, Evaluator

EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", {
    "tabular": "hwnas.evaluators.tabular:TabularEvaluator",
    "train": "hwnas.evaluators.train:TrainEvaluator",
    "oneshot": "hwnas.oneshot.evaluate:OneShotEvaluator",
    "smash": "hwnas.oneshot.smash:SmashEvaluator",
})
names, get, register = EVALUATORS.names, EVALUATORS.get, EVALUATORS.register


__all__ = ["EVALUATORS", "ComposedEvaluator", "CostMetrics", "Evaluator", "get", "names",
           "register"]
