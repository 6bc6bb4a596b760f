"""The one representation of an architecture: a fixed list of categorical decisions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Decision:
    """One categorical choice of a space, e.g. the op on one NB201 edge."""

    name: str
    options: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if len(self.options) < 1:
            raise ValueError(f"decision {self.name!r} needs at least one option")

    def __len__(self) -> int:
        return len(self.options)


@dataclass(frozen=True)
class Arch:
    """An architecture: one option index per decision of the named space.

    Frozen and hashable so it can key caches and sets; plain ints so it is
    JSON-friendly. Membership (length, ranges, space rules) is checked by
    ``Space.validate``, not here, so an Arch can be built from untrusted input
    and then validated with a clear error.
    """

    space: str
    choices: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(int(c) for c in self.choices))

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "choices": list(self.choices)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> "Arch":
        if isinstance(data, str):
            data = json.loads(data)
        return cls(space=str(data["space"]), choices=tuple(data["choices"]))
