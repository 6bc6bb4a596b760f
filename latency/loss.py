"""Differentiable latency penalties that turn a predicted latency into a training signal.

``latency_loss(pred_ms, budget_ms, form, **params)`` returns a tensor of the shape
of ``pred_ms`` (reduce it yourself); gradients flow back through ``pred_ms`` -- e.g.
from ``predictor.predict_soft(probs)`` to the architecture parameters. Forms:

``fbnet``   ``alpha * log(lat / unit_ms) ** beta`` (FBNet, Wu et al. 2019; alpha=0.2,
            beta=0.6). FBNet *multiplies* the task loss by it; it has no budget, so
            ``budget_ms`` is ignored (may be None). The log is clamped at ``eps`` so a
            latency below ``unit_ms`` gives a tiny, flat penalty instead of NaN:
            pass ``unit_ms`` below your smallest latency on sub-ms devices.
``mnasnet`` ``(lat / T) ** (-w)`` with ``w = alpha`` if ``lat <= T`` else ``beta``
            (MnasNet, Tan et al. 2019; soft constraint alpha=beta=-0.07, hard-ish
            alpha=0, beta=-1). MnasNet maximises ``acc * (lat/T) ** w``; this is the
            reciprocal of that factor, so it grows with latency and can multiply a
            loss (or ``-w * log(lat/T)``, its log, be added to one).
``hinge``   ``weight * relu(lat / T - 1) ** power``: zero inside the budget, linear
            (``power=1``) or quadratic (``power=2``) outside -- the form for a hard
            budget with a gradient only where it is violated.
"""

from __future__ import annotations

from typing import Any

import torch
from spaces.core.errors import InvalidOption


FORMS = ("fbnet", "mnasnet", "hinge")
_DEFAULTS: dict[str, dict[str, float]] = {
    "fbnet": {"alpha": 0.2, "beta": 0.6, "unit_ms": 1.0, "eps": 1e-6},
    "mnasnet": {"alpha": -0.07, "beta": -0.07},
    "hinge": {"weight": 1.0, "power": 1.0},
}


LossError = InvalidOption  # An unknown loss form, a missing/invalid budget or parameter.


def _params(form: str, given: dict[str, Any]) -> dict[str, float]:
    unknown = sorted(set(given) - set(_DEFAULTS[form]))
    if unknown:
        raise LossError(f"latency loss {form!r} takes {', '.join(_DEFAULTS[form])}; "
                        f"got unknown {', '.join(unknown)}")
    return {**_DEFAULTS[form], **{k: float(v) for k, v in given.items()}}


def latency_loss(pred_ms: "torch.Tensor | float", budget_ms: "float | torch.Tensor | None",
                 form: str = "hinge", **params: Any) -> torch.Tensor:
    """The latency penalty of ``pred_ms`` (see the module doc for each form)."""
    if form not in FORMS:
        raise LossError(f"unknown latency loss form {form!r}; known: {', '.join(FORMS)}")
    p = _params(form, params)
    lat = pred_ms if isinstance(pred_ms, torch.Tensor) else torch.as_tensor(pred_ms, dtype=torch.float32)
    if form == "fbnet":
        if p["unit_ms"] <= 0:
            raise LossError("fbnet loss needs unit_ms > 0")
        return p["alpha"] * torch.log(lat / p["unit_ms"]).clamp_min(p["eps"]) ** p["beta"]
    if budget_ms is None:
        raise LossError(f"the {form} latency loss needs a budget in ms")
    budget = torch.as_tensor(budget_ms, dtype=lat.dtype, device=lat.device)
    if not bool((budget > 0).all()):
        raise LossError(f"the latency budget must be positive, got {budget_ms}")
    ratio = lat / budget
    if form == "mnasnet":
        w = torch.where(ratio <= 1, torch.as_tensor(p["alpha"], dtype=lat.dtype),
                        torch.as_tensor(p["beta"], dtype=lat.dtype))
        return ratio.clamp_min(1e-12) ** (-w)
    if p["power"] <= 0:
        raise LossError("hinge loss needs power > 0")
    return p["weight"] * torch.relu(ratio - 1.0) ** p["power"]
