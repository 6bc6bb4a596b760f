"""Few-shot predictor for a new device, built on devices already measured.

Method (ours; informed by HELP, NeurIPS 2021, and nn-Meter, neither copied):

1. *Reference predictors.* For each reference device (e.g. the imported HELP
   devices) a predictor is fitted on all its stored measurements: with
   ``reference_kind="auto"`` the better, on a held-out fifth, of an additive ``lut``
   and a small ``mlp`` (the MLP wins where decisions interact, e.g. NB201 on
   pixel3; the table wins on additive, noisy or rounded devices). Its output -- not
   the raw measurement -- is the feature, because it (a) exists for every
   architecture of the space, measured or not, (b) denoises phones that round to
   whole ms, and (c) has a ``predict_soft``, which makes this predictor
   differentiable too.
2. *Log-space mixture.* The new device's log latency is modelled as
   ``b + sum_r w_r log L_r(a)``. With 10 measurements and ~10 references this is
   fragile, so two estimates are averaged: a ridge fit on standardised features
   (strength by exact leave-one-out) and a non-negative least-squares fit (a new
   device is "some positive blend of known devices", a strong prior that keeps
   rankings sane). Averaging them beat either alone on HELP's meta-train/-valid
   devices.
3. *Correction.* Residuals are fitted with a ridge look-up table over the one-hot
   (strength again by leave-one-out), so what no reference device explains -- an op
   that is unusually slow only here -- is learnt as measurements accumulate; with
   10 it stays near zero. From ``mlp_from`` measurements on (``correction="auto"``)
   the residual is instead an MLP ensemble on the one-hot, which also learns
   interactions between decisions that no additive term has.

References: a dict ``{name: fitted Predictor}`` or :meth:`fit_references` on a
store frame. The reference devices and their predictors are saved inside the file.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import nnls

from latency.encoding import one_hot
from latency.predictors.base import Predictor, PredictorError, SoftNotSupported
from latency.predictors.lut import ridge_loo
from spaces.arch import Arch
from spaces.base import Space

MIX_ALPHAS = tuple(10.0 ** (k / 2) for k in range(-6, 7))
CORRECTIONS = ("auto", "lut", "mlp", "none")
CORRECTION_ALPHAS = tuple(10.0 ** k for k in range(-2, 5))


_DESIGN_CACHE: dict[tuple[str, int, int], list[Arch]] = {}


def design_archs(space: Space, size: int, seed: int) -> list[Arch]:
    """A fixed random sample of the space on which features are standardised (cached:
    sampling 2,000 architectures costs more than a 10-point fit)."""
    key = (space.key, size, seed)
    if key not in _DESIGN_CACHE:
        _DESIGN_CACHE[key] = space.sample_many(size, seed)
    return _DESIGN_CACHE[key]


REFERENCE_MLP = {"members": 2, "batch_size": 256, "max_steps": 4000, "patience": 400}


def fit_reference_predictor(space: Space, archs: "Sequence[Arch | str]", ms: np.ndarray,
                            kind: str = "auto", options: Mapping[str, Any] | None = None,
                            seed: int = 0) -> Predictor:
    """A predictor of one reference device. ``kind="auto"``: fit ``lut`` and ``mlp`` on
    80 % of the rows, keep the kind with the lower held-out squared log error, refit it
    on all rows. ``options`` go to the MLP (default :data:`REFERENCE_MLP`)."""
    from latency.predictors import create

    archs, ms = list(archs), np.asarray(ms, dtype=np.float64)
    mlp_options = {**REFERENCE_MLP, **(options or {})}

    def make(which: str) -> Predictor:
        return create(which, space, seed=seed, **(mlp_options if which == "mlp" else {}))

    if kind == "auto":
        order = np.random.default_rng(seed).permutation(len(archs))
        cut = int(0.8 * len(archs))
        if cut < 20 or len(archs) - cut < 5:
            kind = "lut"
        else:
            train, held = order[:cut], order[cut:]
            errors = {}
            for which in ("lut", "mlp"):
                pred = make(which).fit([archs[i] for i in train], ms[train])
                errors[which] = float(np.mean(np.log(pred.predict([archs[i] for i in held]) / ms[held]) ** 2))
            kind = min(errors, key=errors.get)
    pred = make(kind) if kind in ("lut", "mlp") else create(kind, space, seed=seed, **(options or {}))
    pred.fit(archs, ms)
    pred.train_archs = []  # thousands of strings per reference: not worth the file size
    return pred


def reference_key(label: str, batch: int) -> str:
    """Name of one reference latency series: a device label at one batch size."""
    return f"{label}@b{int(batch)}"


def reference_series(frame: pd.DataFrame) -> dict[str, tuple[list[str], np.ndarray]]:
    """Split a store frame into ``{label@bBATCH: (arch strings, ms)}``; where a device has
    several input shapes at one batch, the most frequent shape is used."""
    needed = {"arch", "device_label", "batch", "latency_ms"}
    if not needed <= set(frame.columns):
        raise PredictorError(f"reference data needs columns {', '.join(sorted(needed))}")
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    for (label, batch), group in frame.groupby(["device_label", "batch"], sort=True):
        if "input_shape" in group and group["input_shape"].nunique() > 1:
            group = group[group["input_shape"] == group["input_shape"].mode().iloc[0]]
        group = group.groupby("arch", sort=False)["latency_ms"].median()
        group = group[np.isfinite(group.values) & (group.values > 0)]
        out[reference_key(str(label), int(batch))] = (group.index.tolist(), group.values.astype(np.float64))
    return out


class TransferPredictor(Predictor):
    """Mixture of reference-device predictors in log space plus a one-hot correction."""

    kind = "transfer"
    min_train = 3

    def __init__(self, space: Space, *, references: Mapping[str, Predictor] | None = None,
                 reference_kind: str = "auto", reference_options: Mapping[str, Any] | None = None,
                 correction: str = "auto", mlp_from: int = 100,
                 mlp_options: Mapping[str, Any] | None = None, design_size: int = 2000,
                 extras: Sequence[str] = (), seed: int = 0) -> None:
        if extras:
            raise PredictorError("the transfer predictor's features are reference-device latencies; "
                                 "it takes no extra features")
        super().__init__(space, seed=seed)
        self.reference_kind = reference_kind
        self.reference_options = dict(reference_options or {})
        if correction not in CORRECTIONS:
            raise PredictorError(f"transfer correction must be one of {', '.join(CORRECTIONS)}, "
                                 f"got {correction!r}")
        self.correction, self.mlp_from = correction, int(mlp_from)
        self.mlp_options = dict(mlp_options or {})
        self.design_size = int(design_size)
        self.residual: Predictor | None = None
        self.references: dict[str, Predictor] = {}
        if references:
            self.set_references(references)
        self.weights = np.zeros(0)
        self.bias = 0.0
        self.table = np.zeros(space.num_options)

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "reference_kind": self.reference_kind,
                "reference_options": self.reference_options, "correction": self.correction,
                "mlp_from": self.mlp_from, "mlp_options": self.mlp_options,
                "design_size": self.design_size}

    # ---- references --------------------------------------------------------------------
    def set_references(self, references: Mapping[str, Predictor]) -> "TransferPredictor":
        for name, pred in references.items():
            if pred.space.key != self.space.key:
                raise PredictorError(f"reference {name!r} is a predictor for space {pred.space.key}, "
                                     f"not {self.space.key}")
            if not pred.fitted:
                raise PredictorError(f"reference {name!r} is not fitted")
        self.references = dict(sorted(references.items()))
        return self

    def fit_references(self, frame: pd.DataFrame, keys: Sequence[str] | None = None,
                       exclude: Sequence[str] = (), min_size: int = 30) -> "TransferPredictor":
        """Fit one ``reference_kind`` predictor per ``label@bBATCH`` series of a store frame
        (all with at least ``min_size`` rows, or exactly ``keys``), skipping ``exclude``."""
        series = reference_series(frame)
        if keys is not None:
            missing = [k for k in keys if k not in series]
            if missing:
                raise PredictorError(f"no reference data for {', '.join(missing)}; "
                                     f"available: {', '.join(series) or 'none'}")
            series = {k: series[k] for k in keys}
        series = {k: v for k, v in series.items()
                  if k not in set(exclude) and (keys is not None or len(v[0]) >= min_size)}
        if not series:
            raise PredictorError(f"the transfer predictor needs reference devices with at least "
                                 f"{min_size} measurements of {self.space.key}; none found")
        refs = {}
        for key, (archs, ms) in series.items():
            refs[key] = fit_reference_predictor(self.space, archs, ms, self.reference_kind,
                                                self.reference_options, self.seed)
            refs[key].set_device(None, key)
        return self.set_references(refs)

    def _features(self, archs: list[Arch]) -> np.ndarray:
        """``(N, R)`` log latency of each reference predictor."""
        # archs are validated already: call the references' internals, not predict()
        return np.log(np.stack([p._predict(archs) for p in self.references.values()], 1))

    # ---- fitting ------------------------------------------------------------------------
    def _fit(self, archs: list[Arch], ms: np.ndarray) -> None:
        if not self.references:
            raise PredictorError("the transfer predictor has no reference devices; pass references= "
                                 "or call fit_references() with stored measurements of other devices")
        y = np.log(ms)
        z = self._features(archs)
        design = self._features(design_archs(self.space, self.design_size, self.seed))
        mu, sd = design.mean(0), design.std(0) + 1e-9
        w_ridge, b_ridge, self.mix_alpha, _ = ridge_loo((z - mu) / sd, y, MIX_ALPHAS)
        coef, _ = nnls(np.concatenate([z, np.ones((len(y), 1)), -np.ones((len(y), 1))], 1), y)
        w_nnls, b_nnls = coef[:-2], coef[-2] - coef[-1]
        self.weights = 0.5 * (w_ridge / sd + w_nnls)
        self.bias = float(0.5 * (b_ridge - (mu / sd) @ w_ridge + b_nnls))
        self.table = np.zeros(self.space.num_options)
        self.residual = None
        # one affine fit in log space per reference: their disagreement is the uncertainty
        self.single = np.array([np.polyfit(z[:, r], y, 1) if np.ptp(z[:, r]) > 0
                                else [0.0, float(y.mean())] for r in range(z.shape[1])])
        residual = y - (self.bias + z @ self.weights)
        mode = self.correction
        if mode == "auto":
            mode = "mlp" if len(y) >= self.mlp_from else "lut"
        if mode == "lut":
            onehot = one_hot(self.space, archs).astype(np.float64)
            self.table, shift, _, _ = ridge_loo(onehot, residual, CORRECTION_ALPHAS)
            self.bias += shift
        elif mode == "mlp":
            # The MLP learns log latency; fed exp(residual) it learns the residual factor.
            from latency.predictors.mlp import MLPPredictor

            options = {"seed": self.seed, **self.mlp_options}
            self.residual = MLPPredictor(self.space, **options).fit(archs, np.exp(residual))
            self.residual.train_archs = []  # already recorded by this predictor

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        onehot = one_hot(self.space, archs).astype(np.float64)
        out = np.exp(self.bias + self._features(archs) @ self.weights + onehot @ self.table)
        return out * self.residual._predict(archs) if self.residual is not None else out

    def _predict_std(self, archs: list[Arch]) -> np.ndarray:
        """Disagreement between the reference devices (ms): each reference alone, fitted
        affinely in log space to this device's measurements, predicts each architecture;
        the spread of those predictions (log-space std times the prediction) is high where
        the devices that taught this predictor disagree -- where measuring teaches most.
        With one reference it is zero everywhere (nothing to disagree with)."""
        single = getattr(self, "single", None)
        pred = self._predict(archs)
        if single is None or len(single) < 2:
            return np.zeros(len(archs))
        z = self._features(archs)
        logs = z * single[:, 0] + single[:, 1]
        return pred * logs.std(axis=1)

    def _predict_soft(self, probs: torch.Tensor) -> torch.Tensor:
        logs = []
        for name, pred in self.references.items():
            try:
                logs.append(torch.log(pred.predict_soft(probs)))
            except SoftNotSupported:
                raise SoftNotSupported(f"the transfer predictor's reference {name!r} "
                                       f"({pred.kind}) has no predict_soft") from None
        z = torch.stack(logs, 1)
        weights = torch.as_tensor(self.weights, dtype=probs.dtype, device=probs.device)
        table = torch.as_tensor(self.table, dtype=probs.dtype, device=probs.device)
        out = torch.exp(self.bias + z @ weights + probs @ table)
        return out * self.residual._predict_soft(probs) if self.residual is not None else out

    def mixture(self) -> dict[str, float]:
        """Weight of each reference device's log latency (what this device resembles)."""
        return {name: float(w) for name, w in zip(self.references, self.weights)}

    # ---- persistence --------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"references": {k: p.to_dict() for k, p in self.references.items()},
                "weights": torch.as_tensor(self.weights), "bias": self.bias,
                "table": torch.as_tensor(self.table),
                "single": torch.as_tensor(getattr(self, "single", np.zeros((0, 2)))),
                "residual": self.residual.to_dict() if self.residual is not None else None}

    def _set_state(self, state: dict[str, Any]) -> None:
        from latency.predictors import from_dict

        self.references = {k: from_dict(v, self.space) for k, v in state["references"].items()}
        self.weights = state["weights"].numpy().astype(np.float64)
        self.table = state["table"].numpy().astype(np.float64)
        self.bias = float(state["bias"])
        single = state.get("single")  # absent in files written before it existed
        self.single = single.numpy().astype(np.float64) if single is not None else None
        residual = state.get("residual")
        self.residual = from_dict(residual, self.space) if residual is not None else None
