"""Spaces found by name, as timm finds models: ``spaces.get("nb201")``.

Entries are import paths so that listing names does not import torch-heavy modules.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from spaces.base import Space
from spaces.errors import UnknownName

_REGISTRY: dict[str, str | Callable[..., Space]] = {
    "nb201": "spaces.nb201:NB201Space",
    "fbnet": "spaces.fbnet:FBNetSpace",
    "fbnetv2": "spaces.fbnetv2:FBNetV2Space",
    "nao": "spaces.nao:NAOSpace",
}


def register(name: str, factory: "str | Callable[..., Space]") -> None:
    """Add a space (a class/factory or a ``module:attr`` path) under ``name``."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(_REGISTRY)


def _resolve(entry: "str | Callable[..., Space]") -> Callable[..., Space]:
    if callable(entry):
        return entry
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def get(name: str, **kwargs: Any) -> Space:
    """Instantiate the space registered as ``name`` (kwargs: e.g. ``preset="tiny"``)."""
    if name not in _REGISTRY:
        raise UnknownName("space", name, names())
    return _resolve(_REGISTRY[name])(**kwargs)
