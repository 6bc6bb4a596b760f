"""Find a user's object from a spec: ``myspace.py:build`` (a file) or ``package.module:build``.

Why a spec string rather than an object: a space travels to other processes (Ray,
profiling workers) and into files (config.json, predictors) by name, so the name
must be enough to find the function again. A file spec is made absolute, so the
same string works from any working folder and on any worker that sees the file.

Also lists the spaces that installed packages register under the ``hwnas.spaces``
entry-point group (as pytest finds its plugins): ``mynet = "mypkg.spaces:build"``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaces.errors import BuilderError

ENTRY_POINT_GROUP = "hwnas.spaces"


@dataclass(frozen=True)
class Spec:
    """A parsed spec: ``source`` is an absolute file path or a dotted module name."""

    source: str
    attr: str
    is_file: bool

    @property
    def text(self) -> str:
        return f"{self.source}:{self.attr}"

    @property
    def where(self) -> str:
        """How error messages name it: ``build in /path/myspace.py``."""
        return f"{self.attr} in {self.source}"


def looks_like_spec(name: str) -> bool:
    """``a:b`` with a non-empty object name (registry names never contain a colon)."""
    source, sep, attr = str(name).rpartition(":")
    return bool(sep and source and attr and all(p.isidentifier() for p in attr.split(".")))


def parse(text: str) -> Spec:
    """``file.py:fn`` or ``pkg.mod:fn``; the file part is made absolute (not checked here)."""
    source, sep, attr = str(text).strip().rpartition(":")
    if not sep or not source or not attr:
        raise BuilderError(f"space spec {text!r} is not FILE.py:FUNCTION or MODULE:FUNCTION")
    is_file = source.endswith(".py") or os.sep in source or "/" in source
    if is_file:
        source = str(Path(source).expanduser().resolve())
    return Spec(source, attr, is_file)


def _module_name(path: str) -> str:
    """A stable module name per file, so one file is imported once per process and
    objects defined in it pickle by reference within the process."""
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:12]
    return f"_hwnas_user_{Path(path).stem.replace('-', '_')}_{digest}"


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _import_file(spec: Spec) -> Any:
    path = Path(spec.source)
    if not path.is_file():
        raise BuilderError(f"space file {path} does not exist")
    name = _module_name(spec.source)
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__hwnas_mtime__", None) == path.stat().st_mtime_ns:
        return module
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise BuilderError(f"cannot import {path} as Python")
    module = importlib.util.module_from_spec(loader_spec)
    folder = str(path.parent)
    if folder not in sys.path:  # its sibling modules import as they would for a script
        sys.path.append(folder)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - the user's code may raise anything
        sys.modules.pop(name, None)
        raise BuilderError(f"importing {path} failed: {_one_line(error)}") from None
    module.__hwnas_mtime__ = path.stat().st_mtime_ns
    return module


def _import_module(spec: Spec) -> Any:
    try:
        return importlib.import_module(spec.source)
    except ModuleNotFoundError as error:
        if error.name and spec.source.startswith(error.name):
            raise BuilderError(f"no module {spec.source!r} (from {spec.text!r}); give an "
                               f"importable module or a FILE.py path") from None
        raise BuilderError(f"importing {spec.source} failed: {_one_line(error)}") from None
    except Exception as error:  # noqa: BLE001
        raise BuilderError(f"importing {spec.source} failed: {_one_line(error)}") from None


def load(spec: Spec) -> Any:
    """The object a spec names; :class:`BuilderError` (one sentence) when it cannot be found."""
    module = _import_file(spec) if spec.is_file else _import_module(spec)
    target: Any = module
    for part in spec.attr.split("."):
        if not hasattr(target, part):
            raise BuilderError(f"{spec.source} has no {spec.attr!r}")
        target = getattr(target, part)
    return target


def entry_points() -> dict[str, Any]:
    """Installed packages' spaces: entry-point name -> its EntryPoint (loaded lazily)."""
    from importlib.metadata import entry_points as found

    return {ep.name: ep for ep in found(group=ENTRY_POINT_GROUP)}


# ---- builder spaces, once per process ------------------------------------------------
_SPACES: dict[tuple, Any] = {}


def cached(spec: str, name: str | None = None, **kwargs: Any) -> Any:
    """The :class:`spaces.builder.BuilderSpace` of ``spec``, discovered once per (spec,
    options, file version) and process: the CLI asks for the same space several times,
    and discovery builds the network dozens of times."""
    from spaces.builder import OPTIONS, BuilderSpace, OptionError

    unknown = sorted(set(kwargs) - set(OPTIONS))
    if unknown:
        raise OptionError(f"space {name or spec} takes no option {', '.join(map(repr, unknown))} "
                          f"(a builder space takes {', '.join(OPTIONS)})")
    parsed = parse(spec)
    stamp = None
    if parsed.is_file:
        try:
            stat = Path(parsed.source).stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
    key = (parsed.text, name, tuple(sorted(kwargs.items())), stamp)
    if key not in _SPACES:
        _SPACES[key] = BuilderSpace(spec, name=name, **kwargs)
    return _SPACES[key]


def restore(spec: str, name: str, kwargs: dict[str, Any]) -> Any:
    """Unpickling a builder space: import the function again, discover again (deterministic)."""
    return cached(spec, name=name, **kwargs)


def from_object(obj: Any, spec: str, name: str | None = None, **kwargs: Any) -> Any:
    """What a spec or an entry point names, as a space: a Space subclass is instantiated
    with the options, a function becomes a builder space."""
    import inspect

    from spaces.base import Space

    if inspect.isclass(obj) and issubclass(obj, Space):
        return obj(**kwargs)  # a TypeError for unknown options, as for registered spaces
    if isinstance(obj, Space):
        return obj
    return cached(spec, name=name, **kwargs)
