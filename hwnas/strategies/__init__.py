"""Search strategies, found by name: ``strategies.get("evolution")(seed=0, ...)``.

Entries are import paths so listing names stays cheap; later strategies (NAO,
the FBNetV2 supernet) register here with :func:`register`. Names with the
``optuna:`` prefix (``optuna:tpe``, ``optuna:nsga2``, ``optuna:gp``, any sampler
Optuna exposes) are Optuna's samplers driving the same loop
(:mod:`hwnas.strategies.optuna_sampler`).
"""

from __future__ import annotations

from typing import Any

from hwnas.strategies.base import SearchContext, SearchResult, Strategy
from spaces.core.registry import Registry

STRATEGIES: Registry[type[Strategy]] = Registry("strategy", {
    "random": "hwnas.strategies.random_search:RandomSearch",
    "evolution": "hwnas.strategies.evolution:RegularizedEvolution",
    "dpp": "hwnas.strategies.dpp:DPPSearch",
    "nao": "hwnas.strategies.nao:NAOStrategy",
    "supernet": "hwnas.strategies.supernet:SupernetStrategy",
    "darts": "hwnas.strategies.cell_search:DartsStrategy",
    "gdas": "hwnas.strategies.cell_search:GdasStrategy",
    "toponas": "hwnas.strategies.cell_search:TopoNASStrategy",
    "entrannas": "hwnas.strategies.cell_search:EnTranNASStrategy",
    "rl": "hwnas.strategies.rl:RLStrategy",
    "enas": "hwnas.strategies.enas:EnasStrategy",
    "rsps": "hwnas.strategies.rsps:RSPSStrategy",
    "parsec": "hwnas.strategies.parsec:PARSECStrategy",
})


def _optuna(name: str) -> type[Strategy] | None:
    """``optuna:<sampler>``: one of Optuna's samplers driving the same loop."""
    if not name.startswith("optuna:"):
        return None
    from hwnas.strategies import optuna_sampler

    return optuna_sampler.strategy_class(name[len("optuna:"):])


STRATEGIES.add_resolver(_optuna)


def register(name: str, strategy: "str | type[Strategy]") -> None:
    """Add a strategy class (or a ``module:Class`` path) under ``name``."""
    STRATEGIES.register(name, strategy)


def names() -> list[str]:
    from hwnas.strategies import optuna_sampler

    return STRATEGIES.names() + optuna_sampler.names()


def get(name: str) -> type[Strategy]:
    """The strategy class registered as ``name`` or an ``optuna:<sampler>`` one;
    :class:`UnknownName` (listing the Optuna samplers too) otherwise."""
    from spaces.errors import UnknownName

    try:
        return STRATEGIES.get(name)
    except UnknownName as error:
        if str(name).startswith("optuna:"):
            raise
        raise UnknownName("strategy", name, names()) from error


def create(name: str, **options: Any) -> Strategy:
    """Instantiate a strategy with its options (seed, batch_size, population...)."""
    return get(name)(**options)


__all__ = ["STRATEGIES", "SearchContext", "SearchResult", "Strategy", "create", "get", "names",
           "register"]
