"""Latency predictors, found by name: ``create("mlp", space)``, ``load("pred.pt")``.

Kinds: ``mlp`` (ensemble, uncertainty), ``lut`` (additive table, exact soft form),
``gbdt`` (trees, no soft form), ``flops`` (MACs proxy), ``transfer`` (few-shot from
reference devices). Entries are import paths so listing names stays cheap.
"""

from __future__ import annotations

import os
from typing import Any

from latency.predictors.base import (FORMAT_VERSION, Predictor, PredictorError, PredictorMismatch,
                                     SoftNotSupported, read_file)
from spaces.base import Space
from spaces.errors import UnknownName

from spaces.core import Registry

PREDICTORS: Registry[type[Predictor]] = Registry("predictor", {
    "mlp": "latency.predictors.mlp:MLPPredictor",
    "lut": "latency.predictors.lut:LUTPredictor",
    "gbdt": "latency.predictors.gbdt:GBDTPredictor",
    "flops": "latency.predictors.flops:FlopsPredictor",
    "transfer": "latency.predictors.transfer:TransferPredictor",
})
names, register, predictor_class = PREDICTORS.names, PREDICTORS.register, PREDICTORS.get

__all__ = ["FORMAT_VERSION", "PREDICTORS", "Predictor", "PredictorError", "PredictorMismatch",
           "SoftNotSupported", "create", "from_dict", "load", "names", "predictor_class",
           "register"]


def _space(space: "Space | str") -> Space:
    if isinstance(space, Space):
        return space
    import spaces

    return spaces.get(space)


def create(kind: str, space: "Space | str", **kwargs: Any) -> Predictor:
    """A new, unfitted predictor of ``kind`` for ``space`` (a Space or a registry name)."""
    return predictor_class(kind)(_space(space), **kwargs)


def from_dict(data: dict[str, Any], space: "Space | None" = None) -> Predictor:
    """Rebuild a predictor from ``Predictor.to_dict()`` output, checking the space."""
    meta = data["meta"]
    cls = predictor_class(str(meta.get("kind")))
    if space is None:
        try:
            space = _space(str(meta.get("space_name")))
        except UnknownName:
            raise PredictorError(f"the predictor's space {meta.get('space')!r} is not known here") from None
        if space.key != meta.get("space"):
            raise PredictorError(f"the predictor is for space {meta.get('space')!r}; pass that space "
                                 f"(space=...) to load it")
    elif space.key != meta.get("space"):
        raise PredictorMismatch(f"this predictor was trained on space {meta.get('space')!r}, "
                                f"not {space.key!r}")
    if int(meta.get("num_options", space.num_options)) != space.num_options:
        raise PredictorMismatch(f"this predictor expects {meta.get('num_options')} one-hot slots, "
                                f"space {space.key} has {space.num_options}")
    try:
        return cls.from_dict(data, space)
    except (KeyError, TypeError, AttributeError, RuntimeError) as error:
        raise PredictorError(f"the {meta.get('kind')} predictor's saved state is incomplete or "
                             f"damaged ({type(error).__name__}: {str(error)[:80]})") from None


def load(path: "str | os.PathLike[str]", *, space: "Space | str | None" = None,
         device: str | None = None, allow_device_mismatch: bool = False) -> Predictor:
    """Load a saved predictor. ``space``: refuse a file trained on another space;
    ``device`` (an id or label): refuse a file trained on another device unless
    ``allow_device_mismatch``. Errors are PredictorError / PredictorMismatch."""
    data = read_file(path)
    pred = from_dict(data, _space(space) if space is not None else None)
    pred.check_device(device, allow_device_mismatch)
    return pred
