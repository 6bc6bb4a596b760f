"""The one registry helper every pluggable kind uses (spaces, devices, predictors,
strategies, evaluators, executors), as timm finds models by name.

A :class:`Registry` maps a name to a class or factory -- or to a ``"module:attr"``
import path, resolved on first use, so listing names never imports torch or
onnxruntime. ``register`` works as a decorator and sets the class's ``name``;
``get`` returns the class, ``create`` an instance (dropping ``None`` keyword
arguments, as timm's ``create_model`` does, so a CLI can pass its unset options
through). An unknown name is :class:`UnknownName`, listing the known ones.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterable, TypeVar

from spaces.core.errors import UnknownName

T = TypeVar("T")


def resolve(entry: Any) -> Any:
    """A ``"module:attr"`` path imported, anything else as it is."""
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        return getattr(importlib.import_module(module), attr)
    return entry


class Registry(Generic[T]):
    """Name -> class/factory (or its import path) for one kind of pluggable thing."""

    def __init__(self, kind: str, entries: dict[str, Any] | None = None,
                 aliases: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = dict(entries or {})
        self.aliases: dict[str, str] = dict(aliases or {})
        self._resolvers: list[Callable[[str], Any | None]] = []

    def register(self, name: str | None = None, entry: Any = None) -> Any:
        """``@registry.register("name")`` on a class (sets ``cls.name``), or
        ``registry.register("name", cls_or_path)``."""
        if entry is not None:
            self._entries[str(name)] = entry
            return entry

        def decorate(obj: Any) -> Any:
            key = name or getattr(obj, "name", None) or obj.__name__
            if isinstance(obj, type) and name:
                obj.name = key
            self._entries[str(key)] = obj
            return obj

        return decorate

    def add_resolver(self, resolver: Callable[[str], Any | None]) -> None:
        """A fallback for names not registered one by one (e.g. ``optuna:tpe`` or a
        builder file ``myspace.py:build``): it returns the entry, or None."""
        self._resolvers.append(resolver)

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a test's stand-in, a plugin being reloaded)."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def in_order(self) -> list[str]:
        """Names in the order they were registered (e.g. torch, ort, tensorrt)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) in self._entries

    def canonical(self, name: str) -> str:
        return self.aliases.get(name, name)

    def get(self, name: str) -> T:
        """The class (or factory) registered as ``name``; UnknownName otherwise."""
        key = self.canonical(str(name))
        if key in self._entries:
            entry = self._entries[key] = resolve(self._entries[key])
            return entry
        for resolver in self._resolvers:
            found = resolver(key)
            if found is not None:
                return found
        raise UnknownName(self.kind, str(name), self.names())

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """An instance of ``name``; keyword arguments that are None are left out."""
        return self.get(name)(*args, **{k: v for k, v in kwargs.items() if v is not None})

    def items(self) -> Iterable[tuple[str, Any]]:
        return ((name, self._entries[name]) for name in self.names())
