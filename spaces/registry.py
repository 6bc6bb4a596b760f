"""Spaces found by name, as timm finds models: ``spaces.get("nb201")``.

Entries are import paths so that listing names does not import torch-heavy modules.
Besides the registered names, ``get`` resolves the spaces installed packages
declare under the ``hwnas.spaces`` entry-point group, and specs of a user's
builder function, ``myspace.py:build`` or ``package.module:build``
(:mod:`spaces.builder`).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from spaces.base import Space
from spaces.errors import BuilderError, UnknownName

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
    """Registered names and installed packages' entry points (specs are not listed)."""
    from spaces import loader

    return sorted(set(_REGISTRY) | set(loader.entry_points()))


def _resolve(entry: "str | Callable[..., Space]") -> Callable[..., Space]:
    if callable(entry):
        return entry
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def get(name: str, **kwargs: Any) -> Space:
    """Instantiate the space registered as ``name`` (kwargs: e.g. ``preset="tiny"``), an
    installed package's ``hwnas.spaces`` entry point, or a ``FILE.py:FUNCTION`` /
    ``MODULE:FUNCTION`` spec of a builder function."""
    if name in _REGISTRY:
        return _resolve(_REGISTRY[name])(**kwargs)
    from spaces import builder, loader

    found = loader.entry_points()
    if name in found:
        try:
            obj = found[name].load()
        except Exception as error:  # noqa: BLE001 - a broken package may raise anything
            raise BuilderError(f"space {name!r} (entry point {found[name].value}) cannot be "
                               f"loaded: {type(error).__name__}: {error}") from None
        return builder.from_object(obj, found[name].value, name=name, **kwargs)
    if loader.looks_like_spec(name):
        spec = loader.parse(name)
        return builder.from_object(loader.load(spec), spec.text, **kwargs)
    raise UnknownName("space", name, names() + ["FILE.py:FUNCTION", "MODULE:FUNCTION"])
