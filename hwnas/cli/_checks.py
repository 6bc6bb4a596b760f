"""Range checks of the numeric options every verb shares (counts, sizes, seeds).

Why one place: a count or size out of range must fail in one sentence *before* the
work it sizes -- a negative ``--num-classes`` used to end in a traceback from
``nn.Linear``, ``-n 1000000000000`` on fbnet grew memory to 1.35 GB while sampling
without printing anything. The ranges of what a network is built for live with the
spaces (:data:`spaces.base.MAX_INPUT_SIZE`); this module adds the counts.
"""

from __future__ import annotations

from typing import Any, Callable

from spaces.base import MAX_COUNT, MAX_INPUT_SIZE, MAX_NUM_CLASSES, check_int
from spaces.errors import InvalidOption

MAX_SEED = 2**32 - 1


def at_least(flag: str, value: Any, least: int = 1, most: int | None = None) -> Any:
    """``value`` unchanged when None or an int in ``[least, most]``; one sentence otherwise."""
    if value is None:
        return None
    return check_int(flag, value, least, most)


def count(flag: str, value: Any) -> Any:
    """A number of architectures (or samples) any command could finish."""
    return at_least(flag, value, 1, MAX_COUNT)


def input_size(flag: str, value: Any) -> Any:
    return at_least(flag, value, 1, MAX_INPUT_SIZE)


def num_classes(flag: str, value: Any) -> Any:
    return at_least(flag, value, 1, MAX_NUM_CLASSES)


def seed(flag: str, value: Any) -> Any:
    return at_least(flag, value, 0, MAX_SEED)


def positive(flag: str, value: Any) -> Any:
    """A positive real (seconds, milliseconds), None passed through."""
    if value is None:
        return None
    if not value > 0 or value == float("inf"):
        raise InvalidOption(f"{flag} must be a positive number, got {value}")
    return value


def space_count(space: Any, flag: str, value: int, say: Callable[[str], None] = print) -> int:
    """Distinct architectures to draw from ``space``: more than the space holds is capped
    to its size (with a one-line notice); more than :data:`MAX_COUNT` of a larger space
    is refused before anything is sampled."""
    check_int(flag, value, 1)
    if value > space.size:
        say(f"hwnas: {flag} {value:,} is more than the {space.size:,} architectures of "
            f"{space.key}; taking all {space.size:,}")
        return int(space.size)
    if value > MAX_COUNT:
        raise InvalidOption(f"{flag} {value:,} is more than any run could finish (at most "
                            f"{MAX_COUNT:,} architectures of {space.key}, which has "
                            f"{space.size:.3g})")
    return value
