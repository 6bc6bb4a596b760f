"""Additive look-up table (FBNet style): latency = constant + one cost per chosen option.

Fitted by ridge regression on the one-hot, on log latency (costs multiply: a
device that is 2x slower on one block type is 2x slower wherever it sits) or on
linear latency (costs add, as in per-layer look-up tables such as HW-NAS-Bench's
simulated devices); ``target="auto"`` picks whichever has the lower leave-one-out
error. The ridge strength is chosen by exact leave-one-out, which keeps the table
sane with fewer measurements than options.

``predict_soft`` is the *exact* expected latency when each decision is drawn
independently from its probabilities: linear ``b + p.t``; log
``e^b * prod_d sum_o p_do e^{t_do}``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from latency.encoding import one_hot
from latency.predictors.base import Predictor, PredictorError
from spaces.arch import Arch
from spaces.base import Space

ALPHAS = tuple(10.0 ** k for k in range(-6, 4))
TARGETS = ("auto", "log", "linear")


def ridge_loo(features: np.ndarray, y: np.ndarray, alphas: Sequence[float],
              penalty: np.ndarray | None = None) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Ridge with an unpenalised intercept, alpha chosen by exact leave-one-out.

    ``penalty`` scales alpha per column (0 = unpenalised). Returns (weights, intercept,
    chosen alpha, leave-one-out predictions at that alpha).
    """
    n, p = features.shape
    design = np.concatenate([features, np.ones((n, 1))], 1)
    scale = np.r_[np.ones(p) if penalty is None else penalty, 0.0]
    gram, rhs = design.T @ design, design.T @ y
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for alpha in alphas:
        matrix = gram + np.diag(alpha * scale + 1e-10)
        try:
            inv = np.linalg.inv(matrix)
        except np.linalg.LinAlgError:
            continue
        coef = inv @ rhs
        fitted = design @ coef
        leverage = ((design @ inv) * design).sum(1)
        loo = y - (y - fitted) / np.clip(1.0 - leverage, 1e-9, None)
        err = float(np.mean((y - loo) ** 2))
        if best is None or err < best[0] - 1e-15:
            best = (err, alpha, coef, loo)
    if best is None:
        raise PredictorError("the least-squares system is singular for every ridge strength")
    _, alpha, coef, loo = best
    return coef[:-1], float(coef[-1]), float(alpha), loo


def decision_matrix(space: Space) -> np.ndarray:
    """``(num_options, num_decisions)`` 0/1 membership: which decision an option belongs to."""
    member = np.zeros((space.num_options, len(space.decisions)), dtype=np.float64)
    for d, (offset, decision) in enumerate(zip(space.option_offsets, space.decisions)):
        member[offset:offset + len(decision), d] = 1.0
    return member


class LUTPredictor(Predictor):
    """Per-option costs (``table``, ms or log-ms) plus a constant (``bias``)."""

    kind = "lut"
    min_train = 2

    def __init__(self, space: Space, *, target: str = "auto", alpha: float | None = None,
                 extras: Sequence[str] = (), seed: int = 0) -> None:
        if extras:
            raise PredictorError("the lut predictor is additive over decisions; it takes no extra features")
        if target not in TARGETS:
            raise PredictorError(f"lut target must be one of {', '.join(TARGETS)}, got {target!r}")
        super().__init__(space, seed=seed)
        self.target_option, self.alpha_option = target, alpha
        self.target = "log" if target == "auto" else target
        self.table = np.zeros(space.num_options)
        self.bias = 0.0
        self.alpha = 0.0

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "target": self.target_option, "alpha": self.alpha_option}

    def _solve(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float, np.ndarray]:
        alphas = (self.alpha_option,) if self.alpha_option is not None else ALPHAS
        return ridge_loo(x, y, alphas)

    def _fit(self, archs: list[Arch], ms: np.ndarray) -> None:
        x = one_hot(self.space, archs).astype(np.float64)
        candidates = ("log", "linear") if self.target_option == "auto" else (self.target_option,)
        best = None
        for target in candidates:
            y = np.log(ms) if target == "log" else ms
            table, bias, alpha, loo = self._solve(x, y)
            loo_ms = np.exp(loo) if target == "log" else np.clip(loo, ms.min() * 1e-3, None)
            err = float(np.mean(np.log(loo_ms / ms) ** 2))
            if best is None or err < best[0]:
                best = (err, target, table, bias, alpha)
        _, self.target, self.table, self.bias, self.alpha = best
        self._floor = float(ms.min()) * 1e-3

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return self.bias + x @ self.table

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        raw = self._raw(one_hot(self.space, archs).astype(np.float64))
        return np.exp(raw) if self.target == "log" else np.clip(raw, self._floor, None)

    def _predict_soft(self, probs: torch.Tensor) -> torch.Tensor:
        table = torch.as_tensor(self.table, dtype=probs.dtype, device=probs.device)
        if self.target == "linear":
            return (self.bias + probs @ table).clamp_min(self._floor)
        member = torch.as_tensor(decision_matrix(self.space), dtype=probs.dtype, device=probs.device)
        per_decision = (probs * torch.exp(table)) @ member  # (B, D): E[e^{t_d}] per decision
        return torch.exp(self.bias + torch.log(per_decision.clamp_min(1e-30)).sum(1))

    def costs(self) -> list[tuple[str, str, float]]:
        """(decision, option, cost) rows; ms for a linear table, log-ms for a log one.
        Only differences within a decision are identified by the data."""
        rows = []
        for offset, decision in zip(self.space.option_offsets, self.space.decisions):
            for j, option in enumerate(decision.options):
                rows.append((decision.name, option, float(self.table[offset + j])))
        return rows

    def _state(self) -> dict[str, Any]:
        return {"table": torch.as_tensor(self.table), "bias": self.bias, "alpha": self.alpha,
                "target": self.target, "floor": self._floor}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.table = state["table"].numpy().astype(np.float64)
        self.bias, self.alpha = float(state["bias"]), float(state["alpha"])
        self.target, self._floor = str(state["target"]), float(state["floor"])
