"""Search strategies, found by name: ``strategies.get("evolution")(seed=0, ...)``.

Entries are import paths so listing names stays cheap; later strategies (NAO,
the FBNetV2 supernet) register here with :func:`register`. Names with the
``optuna:`` prefix (``optuna:tpe``, ``optuna:nsga2``, ``optuna:gp``, any sampler
Optuna exposes) are Optuna's samplers driving the same loop
(:mod:`hwnas.strategies.optuna_sampler`).
"""

from __future__ import annotations

import importlib
from typing import Any

from spaces.errors import UnknownName

from hwnas.strategies.base import SearchContext, SearchResult, Strategy

_REGISTRY: dict[str, str | type[Strategy]] = {
    "random": "hwnas.strategies.random_search:RandomSearch",
    "evolution": "hwnas.strategies.evolution:RegularizedEvolution",
    "dpp": "hwnas.strategies.dpp:DPPSearch",
    "nao": "hwnas.strategies.nao:NAOStrategy",
    "supernet": "hwnas.strategies.supernet:SupernetStrategy",
}


def register(name: str, strategy: "str | type[Strategy]") -> None:
    """Add a strategy class (or a ``module:Class`` path) under ``name``."""
    _REGISTRY[name] = strategy


def names() -> list[str]:
    from hwnas.strategies import optuna_sampler

    return sorted(_REGISTRY) + optuna_sampler.names()


def get(name: str) -> type[Strategy]:
    """The strategy class registered as ``name`` or an ``optuna:<sampler>`` one;
    :class:`UnknownName` otherwise."""
    if name not in _REGISTRY and str(name).startswith("optuna:"):
        from hwnas.strategies import optuna_sampler

        return optuna_sampler.strategy_class(name[len("optuna:"):])
    if name not in _REGISTRY:
        raise UnknownName("strategy", name, names())
    entry = _REGISTRY[name]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry


def create(name: str, **options: Any) -> Strategy:
    """Instantiate a strategy with its options (seed, batch_size, population...)."""
    return get(name)(**options)


__all__ = ["SearchContext", "SearchResult", "Strategy", "create", "get", "names", "register"]
