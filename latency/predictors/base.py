"""The one interface every latency predictor shares, and its file format.

``fit(archs, ms)`` / ``predict(archs) -> ms`` / ``predict_soft(probs) -> tensor``
(differentiable; probabilities laid out like ``space.one_hot``) / ``save(path)``.
A saved predictor carries the metadata needed to refuse misuse: the space key it
was trained on, the device (id, label, fingerprint) whose latencies it learnt, its
encoding, training-set size and format version. Loading it for another space is
always an error; using it for another device is one unless the caller says
``allow_device_mismatch=True`` -- a predictor of one machine silently applied to
another is the classic way hardware-aware NAS goes wrong.

Files are written with ``torch.save`` and read with ``torch.load(weights_only=True)``:
every state is plain tensors, numbers, strings, lists, dicts and bytes.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np
import torch

from latency.encoding import Encoder, EncodingError, as_archs, soft_batch
from spaces.arch import Arch
from spaces.base import Space
from spaces.core.errors import Incompatible, InvalidOption

FORMAT = "hwnas-predictor"
FORMAT_VERSION = 1


# Bad input to a predictor: training data, file, or a use it does not support.
PredictorError = InvalidOption


PredictorMismatch = Incompatible  # A predictor is used for a space or device it was not trained on.


# This kind of predictor cannot give a differentiable (soft) prediction.
SoftNotSupported = Incompatible


def check_training(space: Space, archs: "Sequence[Arch | str]", ms: "Sequence[float] | np.ndarray",
                   min_size: int, kind: str) -> tuple[list[Arch], np.ndarray]:
    """Validate a training set and return (archs, float64 latencies)."""
    archs = list(archs)
    try:
        values = np.asarray(ms, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise PredictorError(f"cannot fit the {kind} predictor: latencies must be numbers (ms)") from None
    if len(archs) == 0:
        raise PredictorError(f"cannot fit the {kind} predictor: the training set is empty")
    if len(archs) != len(values):
        raise PredictorError(f"cannot fit the {kind} predictor: {len(archs)} architectures but "
                             f"{len(values)} latencies")
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if bad.size:
        i = int(bad[0])
        raise PredictorError(f"cannot fit the {kind} predictor: latencies must be finite and positive, "
                             f"got {values[i]:g} at position {i} ({bad.size} such value(s))")
    if len(archs) < min_size:
        raise PredictorError(f"the {kind} predictor needs at least {min_size} measurements, "
                             f"got {len(archs)}")
    return as_archs(space, archs), values


def _device_matches(meta_device: dict[str, Any] | None, device: str) -> bool:
    if not meta_device:
        return False
    return device in {meta_device.get("id"), meta_device.get("label")}


class Predictor(ABC):
    """Base of every predictor. Subclasses implement ``_fit``, ``_predict``, ``_state``,
    ``_set_state``, and optionally ``_predict_soft`` / ``_predict_std``; they list their
    constructor's keyword arguments in ``config`` so a file can rebuild them."""

    kind: ClassVar[str] = ""
    min_train: ClassVar[int] = 2

    def __init__(self, space: Space, *, extras: Sequence[str] = (), seed: int = 0) -> None:
        if not isinstance(space, Space):
            raise PredictorError(f"a predictor needs a Space, got {type(space).__name__}")
        self.space = space
        self.encoder = Encoder(space, extras)
        self.seed = int(seed)
        self.device: dict[str, Any] | None = None
        self.train_size = 0
        self.train_archs: list[str] = []
        self.fitted = False

    # ---- configuration ------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """Constructor keyword arguments (extended by subclasses)."""
        return {"extras": list(self.encoder.extras), "seed": self.seed}

    def set_device(self, device_id: str | None, label: str | None = None,
                   fingerprint: dict[str, Any] | None = None, batch: int | None = None,
                   input_shape: str | None = None) -> "Predictor":
        """Record whose latencies these are (saved with the predictor, checked on use)."""
        import json

        # plain JSON types only: the file is read back with torch.load(weights_only=True)
        fingerprint = json.loads(json.dumps(fingerprint or {}, default=str))
        self.device = {"id": device_id, "label": label or device_id, "fingerprint": fingerprint,
                       "batch": batch, "input_shape": input_shape}
        return self

    def check_device(self, device: str | None, allow_device_mismatch: bool = False) -> None:
        """PredictorMismatch unless ``device`` (id or label) is the one trained on."""
        if device is None or allow_device_mismatch or self.device is None:
            return
        if not _device_matches(self.device, device):
            raise PredictorMismatch(
                f"this predictor was trained on device {self.device.get('label')!r} "
                f"(id {self.device.get('id')}), not {device!r}; pass allow_device_mismatch=True "
                f"(--allow-device-mismatch) to use it anyway")

    def __repr__(self) -> str:
        state = f"fitted on {self.train_size}" if self.fitted else "not fitted"
        return f"<{type(self).__name__} {self.space.key} {self.encoder.name}, {state}>"

    # ---- the interface -----------------------------------------------------------------
    def fit(self, archs: "Sequence[Arch | str]", ms: "Sequence[float] | np.ndarray") -> "Predictor":
        """Train on measured latencies (ms); archs may be Arch objects or strings."""
        archs, values = check_training(self.space, archs, ms, self.min_train, self.kind)
        self._fit(archs, values)
        self.train_size = len(archs)
        self.train_archs = [self.space.to_string(a) for a in archs]
        self.fitted = True
        return self

    def _ready(self, archs: "Iterable[Arch | str]") -> list[Arch]:
        if not self.fitted:
            raise PredictorError(f"the {self.kind} predictor is not fitted yet; call fit() or load a file")
        return as_archs(self.space, archs)

    def predict(self, archs: "Sequence[Arch | str]") -> np.ndarray:
        """Predicted latency (ms) of each architecture, float64 array."""
        archs = self._ready(archs)
        if not archs:
            return np.zeros(0)
        return np.asarray(self._predict(archs), dtype=np.float64)

    def predict_std(self, archs: "Sequence[Arch | str]") -> np.ndarray:
        """Uncertainty (ms) of each prediction; only predictors that model it have it."""
        archs = self._ready(archs)
        return np.asarray(self._predict_std(archs), dtype=np.float64)

    def predict_soft(self, probs: "torch.Tensor | np.ndarray") -> torch.Tensor:
        """Differentiable latency (ms) of soft architectures: ``(num_options,)`` gives a
        0-d tensor, ``(B, num_options)`` a ``(B,)`` tensor; equals ``predict`` on one-hots."""
        self._ready(())
        batch, single = soft_batch(self.space, probs)
        try:
            out = self._predict_soft(batch)
        except EncodingError as error:
            raise SoftNotSupported(f"the {self.kind} predictor cannot predict soft architectures: "
                                   f"{error}") from None
        return out[0] if single else out

    @abstractmethod
    def _fit(self, archs: list[Arch], ms: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, archs: list[Arch]) -> np.ndarray: ...

    def _predict_soft(self, probs: torch.Tensor) -> torch.Tensor:
        raise SoftNotSupported(f"the {self.kind} predictor has no differentiable form (predict_soft); "
                               f"use lut, mlp or transfer for gradient-based search")

    def _predict_std(self, archs: list[Arch]) -> np.ndarray:
        raise PredictorError(f"the {self.kind} predictor does not estimate its uncertainty; "
                             f"use the mlp ensemble for predict_std")

    # ---- persistence ----------------------------------------------------------------------
    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Learnt parameters as tensors / plain Python values."""

    @abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None: ...

    @property
    def meta(self) -> dict[str, Any]:
        """What a saved file records about this predictor (checked when it is loaded)."""
        return {
            "format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind,
            "space": self.space.key, "space_name": self.space.name,
            "num_options": self.space.num_options, "encoding": self.encoder.name,
            "device": self.device, "train_size": self.train_size, "train_archs": self.train_archs,
            "config": self.config, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def to_dict(self) -> dict[str, Any]:
        if not self.fitted:
            raise PredictorError(f"cannot save the {self.kind} predictor before it is fitted")
        return {"meta": self.meta, "state": self._state()}

    def save(self, path: "str | os.PathLike[str]") -> Path:
        """Write atomically: a failed save (full disk, bad path) leaves the previous file."""
        from spaces.core import OutputError, atomic_write

        import io

        target = Path(path)
        buffer = io.BytesIO()
        torch.save(self.to_dict(), buffer)  # in memory first: the disk check knows the size
        try:
            atomic_write(target, buffer.getvalue())
        except OutputError as error:
            raise PredictorError(f"cannot write predictor file: {str(error).removeprefix('cannot write ')}") from None
        return target

    @classmethod
    def from_dict(cls, data: dict[str, Any], space: Space) -> "Predictor":
        meta = data["meta"]
        pred = cls(space, **meta.get("config", {}))
        pred.device = meta.get("device")
        pred.train_size = int(meta.get("train_size", 0))
        pred.train_archs = list(meta.get("train_archs") or [])
        pred._set_state(data["state"])
        pred.fitted = True
        return pred


def read_file(path: "str | os.PathLike[str]") -> dict[str, Any]:
    """The raw ``{"meta", "state"}`` dict of a predictor file; PredictorError (one
    sentence) when it is missing, corrupt or not a predictor."""
    source = Path(path)
    if not source.is_file():
        raise PredictorError(f"predictor file {source} not found")
    try:
        data = torch.load(source, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile,
            KeyError, AttributeError, IndexError, TypeError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = reason.split(". ")[0].rstrip(".")  # torch appends advice after the first sentence
        raise PredictorError(f"{source} is corrupt or not a predictor file ({reason[:120]})") from None
    meta = data.get("meta") if isinstance(data, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "state" not in data:
        raise PredictorError(f"{source} is not an hwnas predictor file")
    if int(meta.get("version", 0)) > FORMAT_VERSION:
        raise PredictorError(f"{source} was written by a newer hwnas (predictor format "
                             f"{meta.get('version')}, this one reads {FORMAT_VERSION})")
    return data
