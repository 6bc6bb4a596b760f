"""MACs-only baseline: latency = scale * MACs + offset, fitted by least squares.

It shows what a learnt predictor adds over the proxy that FLOPs-constrained NAS
uses. MACs come from ``space.cost`` through the encoding's CostTable (an exact
additive table when the space's costs are additive, else a per-architecture
cache). The fit is non-negative (a negative scale would rank big networks as
fast); ``offset=False`` forces pure proportionality. ``predict_soft`` uses the
expected MACs of the soft architecture, which is exact for additive spaces.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from scipy.optimize import nnls

from latency.encoding import CostTable
from latency.predictors.base import Predictor, PredictorError
from spaces.arch import Arch
from spaces.base import Space


class FlopsPredictor(Predictor):
    kind = "flops"
    min_train = 2

    def __init__(self, space: Space, *, offset: bool = True, cost_table: CostTable | None = None,
                 extras: Sequence[str] = (), seed: int = 0) -> None:
        if extras:
            raise PredictorError("the flops predictor uses MACs only; it takes no extra features")
        super().__init__(space, seed=seed)
        self.offset = bool(offset)
        self.costs = cost_table or self.encoder.cost_table
        self.scale_ms_per_mmac, self.offset_ms = 0.0, 0.0

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "offset": self.offset}

    def _fit(self, archs: list[Arch], ms: np.ndarray) -> None:
        mmacs = self.costs.macs(archs) / 1e6
        design = np.stack([mmacs, np.ones_like(mmacs)], 1) if self.offset else mmacs[:, None]
        coef, _ = nnls(design, ms)
        self.scale_ms_per_mmac = float(coef[0])
        self.offset_ms = float(coef[1]) if self.offset else 0.0
        self._floor = float(ms.min()) * 1e-3

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        mmacs = self.costs.macs(archs) / 1e6
        return np.maximum(self.scale_ms_per_mmac * mmacs + self.offset_ms, self._floor)

    def _predict_soft(self, probs: torch.Tensor) -> torch.Tensor:
        mmacs = self.costs.soft_costs(probs)[:, 0] / 1e6
        return (self.scale_ms_per_mmac * mmacs + self.offset_ms).clamp_min(self._floor)

    def _state(self) -> dict[str, Any]:
        return {"scale_ms_per_mmac": self.scale_ms_per_mmac, "offset_ms": self.offset_ms,
                "floor": self._floor}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.scale_ms_per_mmac = float(state["scale_ms_per_mmac"])
        self.offset_ms, self._floor = float(state["offset_ms"]), float(state["floor"])
