"""Gradient-boosted trees (scikit-learn) on the one-hot: a strong non-differentiable baseline.

``HistGradientBoostingRegressor`` on log latency. Trees capture interactions
between decisions that an additive table cannot, but they are piecewise constant,
so there is no gradient to give: ``predict_soft`` raises SoftNotSupported.
The leaf size shrinks with the training set so that ten measurements still give a
model rather than a constant. The fitted model is stored as scikit-learn's own
pickle inside the predictor file (load predictor files you trust, as with any
scikit-learn model).
"""

from __future__ import annotations

import pickle
from typing import Any, Sequence

import numpy as np

from latency.predictors.base import Predictor
from spaces.arch import Arch
from spaces.base import Space


class GBDTPredictor(Predictor):
    kind = "gbdt"
    min_train = 5

    def __init__(self, space: Space, *, max_iter: int = 300, learning_rate: float = 0.1,
                 max_leaf_nodes: int = 31, threads: int | None = 1, extras: Sequence[str] = (),
                 seed: int = 0) -> None:
        super().__init__(space, extras=extras, seed=seed)
        self.max_iter, self.learning_rate = int(max_iter), float(learning_rate)
        self.max_leaf_nodes = int(max_leaf_nodes)
        self.threads = threads
        self.model = None

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "max_iter": self.max_iter, "learning_rate": self.learning_rate,
                "max_leaf_nodes": self.max_leaf_nodes, "threads": self.threads}

    def _limits(self):
        """OpenMP threads for sklearn (default 1: the machine is shared, fits are small)."""
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.threads)

    def _fit(self, archs: list[Arch], ms: np.ndarray) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor

        n = len(archs)
        self.model = HistGradientBoostingRegressor(
            max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=max(2, min(20, n // 20)),
            early_stopping=False, random_state=self.seed)
        with self._limits():
            self.model.fit(self.encoder.encode(archs), np.log(ms))

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        with self._limits():
            return np.exp(self.model.predict(self.encoder.encode(archs)))

    def _state(self) -> dict[str, Any]:
        return {"sklearn_pickle": pickle.dumps(self.model)}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.model = pickle.loads(state["sklearn_pickle"])
