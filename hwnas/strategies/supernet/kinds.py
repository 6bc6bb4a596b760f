"""Supernet kinds by name: ``"singlepath"`` (one masked block per decision) or
``"multipath"`` (every block option a branch), so a config can say which to build."""

from __future__ import annotations

from hwnas.strategies.supernet.singlepath import SinglePathSupernet
from hwnas.strategies.supernet.supernet import FBNetV2Supernet, SupernetBase
from spaces.errors import UnknownName
from spaces.fbnetv2 import FBNetV2Space

SUPERNETS: dict[str, type[SupernetBase]] = {
    "singlepath": SinglePathSupernet,
    "multipath": FBNetV2Supernet,
}


def make_supernet(kind: str, space: FBNetV2Space, num_classes: int | None = None,
                  input_size: int | None = None) -> SupernetBase:
    """The supernet of ``kind`` over ``space``."""
    if kind not in SUPERNETS:
        raise UnknownName("supernet", kind, list(SUPERNETS))
    return SUPERNETS[kind](space, num_classes, input_size)
