"""Spaces found by name, as timm finds models: ``spaces.get("nb201")``.

One :class:`spaces.core.Registry`; entries are import paths so that listing names
does not import torch-heavy modules. Besides the registered names, ``get`` resolves
(in this order) a space's full key as hwnas writes it everywhere (``"fbnetv2:tiny"``,
``"nao:B5:C16:N1"``, ``"nb201(C=8,N=1,in_channels=3)"``), the spaces installed
packages declare under the ``hwnas.spaces`` entry-point group, and specs of a user's
builder function, ``myspace.py:build`` or ``package.module:build`` (:mod:`spaces.builder`).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable

from spaces.base import Space
from spaces.core.registry import Registry
from spaces.errors import BuilderError, UnknownName

SPACES: Registry[Callable[..., Space]] = Registry("space", {
    "nb201": "spaces.nb201:NB201Space",
    "fbnet": "spaces.fbnet:FBNetSpace",
    "fbnetv2": "spaces.fbnetv2:FBNetV2Space",
    "nao": "spaces.nao:NAOSpace",
    "darts": "spaces.darts:DartsSpace",
})


def _from_key(key: str) -> Callable[..., Space] | None:
    """A built-in family's full key (``fbnetv2:tiny:w0.5``) -> a factory of that space."""
    family = re.split(r"[:(]", key, maxsplit=1)[0]
    if family == key or family not in SPACES.names():
        return None
    return functools.partial(SPACES.get(family).from_key, key)


def _entry_point(name: str) -> Callable[..., Space] | None:
    from spaces import loader

    found = loader.entry_points()
    if name not in found:
        return None
    try:
        obj = found[name].load()
    except Exception as error:  # noqa: BLE001 - a broken package may raise anything
        raise BuilderError(f"space {name!r} (entry point {found[name].value}) cannot be "
                           f"loaded: {type(error).__name__}: {error}") from None
    return functools.partial(loader.from_object, obj, found[name].value, name=name)


def _builder_spec(name: str) -> Callable[..., Space] | None:
    from spaces import loader

    if not loader.looks_like_spec(name):
        return None
    spec = loader.parse(name)
    return functools.partial(loader.from_object, loader.load(spec), spec.text)


for _resolver in (_from_key, _entry_point, _builder_spec):
    SPACES.add_resolver(_resolver)


def register(name: str, factory: "str | Callable[..., Space]") -> None:
    """Add a space (a class/factory or a ``module:attr`` path) under ``name``."""
    SPACES.register(name, factory)


def names() -> list[str]:
    """Registered names and installed packages' entry points (keys and specs are not listed)."""
    from spaces import loader

    return sorted(set(SPACES.names()) | set(loader.entry_points()))


def get(name: str, **kwargs: Any) -> Space:
    """Instantiate the space registered as ``name`` (kwargs: e.g. ``preset="tiny"``), a
    full space key, an installed package's ``hwnas.spaces`` entry point, or a
    ``FILE.py:FUNCTION`` / ``MODULE:FUNCTION`` spec of a builder function."""
    try:
        factory = SPACES.get(name)
    except UnknownName:
        raise UnknownName("space", name, names() + ["FILE.py:FUNCTION", "MODULE:FUNCTION"]) from None
    return factory(**kwargs)
