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
   that is unusually slow only here -- is learnt as measurements accumulate. With
   ``correction="auto"`` there is none below ``lut_from`` (30) measurements: on HELP's
   split (``benchmarks/transfer_shots.py``) a table fitted to 10 residuals cost NB201
   0.004 mean Spearman (random shots; 0.0015 designed) and changed FBNet by < 0.001;
   at 20 the effect is within +-0.003 either way; from 30 on it helps (random shots:
   NB201 +0.002 at 30; FBNet, HELP's three / all six devices, +0.006 / +0.003 at 50 and
   +0.010 / +0.006 at 90). From ``mlp_from`` measurements on the residual is instead
   an MLP ensemble on the one-hot, which also learns interactions between decisions
   that no additive term has.

*Which* architectures are measured matters as much as the model: see
:func:`latency.shots.choose_shots` (a D-optimal design over the reference features).

References: a dict ``{name: fitted Predictor}`` or :meth:`fit_references` on a
store frame; only rows of this predictor's space and of one input shape are used
(others are ignored with a logged warning), so latencies of different inputs are
never mixed. The reference devices and their predictors are saved inside the file.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import nnls

from latency.encoding import one_hot
from latency.predictors.base import Predictor, PredictorError, PredictorMismatch, SoftNotSupported
from latency.predictors.lut import ridge_loo
from latency.store import StoreError, shape_key
from spaces.arch import Arch
from spaces.base import Space

log = logging.getLogger(__name__)

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


def _shape(value: Any) -> str:
    try:
        return shape_key(value)
    except StoreError as error:
        raise PredictorError(str(error)) from None


def reference_rows(frame: pd.DataFrame, space_key: str,
                   input_shape: "str | Sequence[int] | None" = None) -> tuple[pd.DataFrame, str | None]:
    """The rows of a store frame a transfer predictor of ``space_key`` may learn from, and
    their input shape: rows of other spaces are dropped, and of the input shapes only
    ``input_shape`` (default: the most frequent one). Latencies of another space or input
    size describe other networks, so mixing them in would corrupt the mixture; what is
    dropped is logged as a warning."""
    if "space" in frame.columns:
        other = frame["space"] != space_key
        if other.any():
            log.warning("transfer references: ignoring %d rows of other spaces (%s); only %s "
                        "measurements are references", int(other.sum()),
                        ", ".join(sorted(map(str, frame.loc[other, "space"].unique()))), space_key)
            frame = frame[~other]
    if "input_shape" not in frame.columns or frame.empty:
        return frame, _shape(input_shape) if input_shape is not None else None
    shapes = frame["input_shape"].map(_shape)
    target = _shape(input_shape) if input_shape is not None else str(shapes.mode().iloc[0])
    other = shapes != target
    if other.all():
        raise PredictorError(f"no reference measurements of {space_key} at input shape {target}; "
                             f"stored: {', '.join(sorted(shapes.unique()))}")
    if other.any():
        log.warning("transfer references: ignoring %d rows at input shape(s) %s; references must "
                    "share the new device's input shape %s", int(other.sum()),
                    ", ".join(sorted(shapes[other].unique())), target)
    return frame[~other], target


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
                 correction: str = "auto", lut_from: int = 30, mlp_from: int = 100,
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
        self.correction, self.lut_from, self.mlp_from = correction, int(lut_from), int(mlp_from)
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
                "lut_from": self.lut_from, "mlp_from": self.mlp_from, "mlp_options": self.mlp_options,
                "design_size": self.design_size}

    # ---- references --------------------------------------------------------------------
    def set_references(self, references: Mapping[str, Predictor]) -> "TransferPredictor":
        for name, pred in references.items():
            if pred.space.key != self.space.key:
                raise PredictorError(f"reference {name!r} is a predictor for space {pred.space.key}, "
                                     f"not {self.space.key}")
            if not pred.fitted:
                raise PredictorError(f"reference {name!r} is not fitted")
        shapes = {name: _shape(pred.device["input_shape"]) for name, pred in references.items()
                  if (pred.device or {}).get("input_shape")}
        if len(set(shapes.values())) > 1:
            listed = ", ".join(f"{name} {shape}" for name, shape in sorted(shapes.items()))
            raise PredictorError(f"the reference devices were measured at different input shapes "
                                 f"({listed}); use references of one input shape")
        self.references = dict(sorted(references.items()))
        return self

    @property
    def reference_shape(self) -> str | None:
        """The input shape the references were measured at, where they record it."""
        for pred in self.references.values():
            if (pred.device or {}).get("input_shape"):
                return _shape(pred.device["input_shape"])
        return None

    def set_device(self, device_id: str | None, label: str | None = None,
                   fingerprint: dict[str, Any] | None = None, batch: int | None = None,
                   input_shape: str | None = None) -> "TransferPredictor":
        """As :meth:`Predictor.set_device`; refuses a device measured at another input shape
        than the references (a mixture of latencies of other inputs would be wrong)."""
        shape = self.reference_shape
        if input_shape is not None and shape is not None and _shape(input_shape) != shape:
            raise PredictorMismatch(f"the transfer predictor's references were measured at input "
                                    f"shape {shape}, the device at {_shape(input_shape)}; fit "
                                    f"references at {_shape(input_shape)}")
        super().set_device(device_id, label, fingerprint, batch, input_shape)
        return self

    def fit_references(self, frame: pd.DataFrame, keys: Sequence[str] | None = None,
                       exclude: Sequence[str] = (), min_size: int = 30,
                       input_shape: "str | Sequence[int] | None" = None) -> "TransferPredictor":
        """Fit one ``reference_kind`` predictor per ``label@bBATCH`` series of a store frame
        (all with at least ``min_size`` rows, or exactly ``keys``), skipping ``exclude`` (the
        device being fitted). Only rows of this space at ``input_shape`` (default: the most
        frequent shape) are used; others are ignored with a logged warning."""
        frame, shape = reference_rows(frame, self.space.key, input_shape)
        series = reference_series(frame)
        excluded = set(exclude)
        at = f" at input shape {shape}" if shape else ""
        if keys is not None:
            own = [k for k in keys if k in excluded]
            if own:
                raise PredictorError(f"{', '.join(own)} is the device being fitted; it cannot be "
                                     f"its own reference")
            missing = [k for k in keys if k not in series]
            if missing:
                available = [k for k in series if k not in excluded]
                raise PredictorError(f"no reference data for {', '.join(missing)} ({self.space.key}"
                                     f"{at}); available: {', '.join(available) or 'none'}")
            series = {k: series[k] for k in keys}
        small = [k for k, v in series.items()
                 if k not in excluded and keys is None and len(v[0]) < min_size]
        if small:
            log.info("transfer references: skipping %s (fewer than %d measurements)",
                     ", ".join(small), min_size)
        series = {k: v for k, v in series.items() if k not in excluded and k not in small}
        if not series:
            raise PredictorError(f"the transfer predictor needs reference devices with at least "
                                 f"{min_size} measurements of {self.space.key}{at}; none found")
        refs = {}
        for key, (archs, ms) in series.items():
            refs[key] = fit_reference_predictor(self.space, archs, ms, self.reference_kind,
                                                self.reference_options, self.seed)
            refs[key].set_device(None, key, input_shape=shape)
        log.info("transfer references for %s%s: %s", self.space.key, at,
                 ", ".join(f"{k} ({refs[k].kind}, {len(series[k][0])} rows)" for k in refs))
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
        self.weights, self.bias = self._mix(z, y)
        self.table = np.zeros(self.space.num_options)
        self.residual = None
        # one affine fit in log space per reference: their disagreement is the uncertainty
        self.single = np.array([np.polyfit(z[:, r], y, 1) if np.ptp(z[:, r]) > 0
                                else [0.0, float(y.mean())] for r in range(z.shape[1])])
        residual = y - (self.bias + z @ self.weights)
        mode = self.correction
        if mode == "auto":
            mode = "mlp" if len(y) >= self.mlp_from else "lut" if len(y) >= self.lut_from else "none"
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

    def _mix(self, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        """Weights and bias of ``y ~ b + z w`` (``z``: reference log latencies): the mean of
        a ridge fit on features standardised over a fixed sample of the space and a
        non-negative least-squares fit."""
        design = self._features(design_archs(self.space, self.design_size, self.seed))
        mu, sd = design.mean(0), design.std(0) + 1e-9
        w_ridge, b_ridge, self.mix_alpha, _ = ridge_loo((z - mu) / sd, y, MIX_ALPHAS)
        coef, _ = nnls(np.concatenate([z, np.ones((len(y), 1)), -np.ones((len(y), 1))], 1), y)
        w_nnls, b_nnls = coef[:-2], coef[-2] - coef[-1]
        return 0.5 * (w_ridge / sd + w_nnls), float(0.5 * (b_ridge - (mu / sd) @ w_ridge + b_nnls))

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
