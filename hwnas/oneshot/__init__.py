"""One-shot supernets, one per space, found by the space's name: ``make_supernet(space)``.

Entries are import paths, so listing them imports no network code. A space without
a supernet -- a builder-function space above all -- is refused with
:class:`NoSupernet` saying why and what to use instead.
"""

from __future__ import annotations

from hwnas.oneshot.base import NoSupernet, OneShotSupernet
from spaces import Space
from spaces.core.registry import Registry

SUPERNETS: Registry[type[OneShotSupernet]] = Registry("supernet", {
    "nb201": "hwnas.oneshot.nb201:NB201Supernet",
    "fbnet": "hwnas.oneshot.fbnet:FBNetSupernet",
    "nao": "hwnas.oneshot.nao:NAOSupernet",
    "fbnetv2": "hwnas.oneshot.fbnetv2:FBNetV2OneShot",
    "darts": "hwnas.oneshot.darts:DartsSupernet",
})


def make_supernet(space: Space, num_classes: int | None = None,
                  input_size: int | None = None) -> OneShotSupernet:
    """The one-shot supernet of ``space`` (its family picked by ``space.name``) for
    ``num_classes`` outputs at ``input_size`` (the space's defaults when None)."""
    from spaces.builder import BuilderSpace

    if isinstance(space, BuilderSpace):
        raise NoSupernet(f"the space {space.name} is a builder function, which builds a fresh "
                         f"module per architecture, so its candidates share no layers to inherit "
                         f"weights from; search it with --strategy nao, which trains each "
                         f"candidate on its own")
    if space.name not in SUPERNETS:
        raise NoSupernet(f"the space {space.name} has no one-shot supernet (there is one for "
                         f"{', '.join(SUPERNETS.names())}); search it with --strategy nao, which "
                         f"trains each candidate on its own")
    return SUPERNETS.get(space.name)(space, num_classes, input_size)


__all__ = ["SUPERNETS", "NoSupernet", "OneShotSupernet", "make_supernet"]
