"""Exact, instant metrics from benchmark tables: fast, fair comparisons of strategies.

Accuracy is NAS-Bench-201's (NATS-Bench tss) 200-epoch **test** accuracy, the
only accuracy in the shared table; it is what the benchmark literature
compares on. (Training-based search uses a held-out validation split instead,
see :mod:`hwnas.evaluators.train`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwnas.evaluators.base import ComposedEvaluator
from spaces import Arch, Space
from spaces.errors import HwnasError

# classes and input resolution of the benchmark's own training, so an exported
# network of the chosen cell matches the table it was chosen from
DATASET_SHAPES = {"cifar10": (10, 32), "cifar100": (100, 32), "imagenet16-120": (120, 16)}

ACCURACY_COLUMNS = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "imagenet16-120": "ImageNetTestAccuracy200Epochs",
}


def load_nb201_accuracy(dataset: str, path: str | Path | None = None) -> np.ndarray:
    """Accuracy (%) of every NB201 cell on ``dataset``; element k = benchmark index k."""
    import pandas as pd
    from latency.shared_data import NB201_ACCURACY, data_file

    if dataset not in ACCURACY_COLUMNS:
        raise HwnasError(f"no NB201 accuracy for dataset {dataset!r}; known: "
                         f"{', '.join(ACCURACY_COLUMNS)}")
    table = pd.read_csv(path or data_file(NB201_ACCURACY), usecols=[ACCURACY_COLUMNS[dataset]])
    return table[ACCURACY_COLUMNS[dataset]].to_numpy(dtype=float)


class TabularEvaluator(ComposedEvaluator):
    """NB201 accuracy by table lookup; latency from any :class:`LatencySource`."""

    name = "tabular"

    def __init__(self, space: Space, metrics: Sequence[str], dataset: str = "cifar10",
                 latency: Any = None, accuracy_path: str | Path | None = None,
                 input_size: int | None = None, num_classes: int | None = None) -> None:
        if not hasattr(space, "index"):
            raise HwnasError(f"the tabular evaluator needs a benchmark space with a table "
                             f"index (nb201), not {space.key!r}; use --evaluator train")
        self.dataset = dataset
        if dataset in DATASET_SHAPES:
            num_classes = num_classes or DATASET_SHAPES[dataset][0]
            input_size = input_size or DATASET_SHAPES[dataset][1]
        self._accuracy = load_nb201_accuracy(dataset, accuracy_path) if "accuracy" in metrics else None
        super().__init__(space, metrics, latency, input_size, num_classes)

    def _accuracy_many(self, archs: list[Arch]) -> np.ndarray:
        return self._accuracy[[self.space.index(a) for a in archs]]

    def best_possible(self) -> dict[str, float | None]:
        out = super().best_possible()
        if self._accuracy is not None:
            out["accuracy"] = float(self._accuracy.max())
        return out

    def whole_space(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Accuracy from the table, latency from a table or predictor, MACs/params from the
        space's additive cost table (exact, probed and verified; at the space's own input
        size and classes only) -- every cell, in benchmark-index order."""
        from hwnas.evaluators.latency_sources import PredictorLatency, TableLatency

        wanted = set(names) & set(self.metrics)
        archs = [self.space.from_index(i) for i in range(self.space.size)]
        out: dict[str, np.ndarray] = {}
        if "accuracy" in wanted and self._accuracy is not None:
            out["accuracy"] = self._accuracy[: self.space.size]
        if "latency_ms" in wanted and isinstance(self.latency, (TableLatency, PredictorLatency)):
            out["latency_ms"] = np.asarray(self.latency.latency_ms(archs), dtype=float)
        costs = [m for m in ("macs", "params") if m in wanted]
        defaults = ((self.input_size or self.space.default_input_size) == self.space.default_input_size
                    and (self.num_classes or self.space.default_num_classes)
                    == self.space.default_num_classes)
        if costs and defaults:
            from latency.encoding import shared_cost_table

            table = shared_cost_table(self.space)
            if table.additive:
                values = table.costs(archs)
                for m in costs:
                    out[m] = values[:, 0 if m == "macs" else 1]
        return out

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["dataset"] = self.dataset
        return out
