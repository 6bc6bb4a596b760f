"""Small conversions between the store's rows and the rest of hwnas: shape keys, device ids,
measurement dicts, timestamps."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Sequence

from latency.store.errors import StoreError
from spaces.core import fingerprint_id


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def shape_key(input_shape: "str | Sequence[int]") -> str:
    """``(3, 32, 32)`` or ``"3x32x32"`` -> ``"3x32x32"`` (the stored form)."""
    if isinstance(input_shape, str):
        parts = input_shape.lower().replace(",", "x").split("x")
        try:
            return "x".join(str(int(p)) for p in parts)
        except ValueError:
            raise StoreError(f"input shape {input_shape!r} is not of the form 3x32x32") from None
    return "x".join(str(int(d)) for d in input_shape)


def device_id_of(fingerprint: dict[str, Any]) -> str:
    """``fingerprint["id"]`` if present, else the id ``devices`` computes (one function,
    :func:`spaces.core.fingerprint_id`)."""
    if fingerprint.get("id"):
        return str(fingerprint["id"])
    return fingerprint_id(fingerprint)


def _as_dict(measurement: Any) -> dict[str, Any]:
    if hasattr(measurement, "to_dict"):
        return dict(measurement.to_dict())
    if isinstance(measurement, dict):
        return dict(measurement)
    raise StoreError(f"a measurement must be a dict or have to_dict(), got {type(measurement).__name__}")


def _finite(value: Any) -> Any:
    """NaN/inf become NULL so SQL aggregates and pandas agree on 'missing'."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
