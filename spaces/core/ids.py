"""Stable ids of JSON-like records: one function, so a device's id is the same wherever
it is computed (a profiler's fingerprint, a store row written by another process)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the canonical JSON of every field but ``id`` and
    ``label``: the same hardware, libraries and settings always give the same id."""
    body = {k: v for k, v in fingerprint.items() if k not in ("id", "label")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
