"""How a builder space's decisions are found: a recording ``choice`` and the builds that probe it.

Why a module of its own: discovery is the one delicate algorithm of builder spaces
(which decisions exist, in which order, which apply only for some earlier choices,
how many architectures that makes); :mod:`spaces.builder` uses its result and never
looks inside. A ``call(pick)`` runs the user's builder once (on torch's meta device)
with a :class:`Chooser` answering by ``pick`` and returns that chooser.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from spaces.errors import BuilderError

log = logging.getLogger(__name__)

UNUSED = "-"
RANDOM_PROBES = 16          # seeded random builds after the systematic discovery
MAX_DISCOVERY_BUILDS = 5000
MAX_COUNT_BUILDS = 512      # exact size of a conditional space by enumeration, up to this

Pick = Callable[[str, tuple[str, ...]], int]




class Abort(BaseException):
    """Stops a builder mid-way (BaseException: a builder's ``except Exception`` cannot eat it)."""

    def __init__(self, reason: str, decision: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.decision = reason, decision


def option_label(value: Any) -> str:
    """The option's name in strings and tables: numbers and strings as written, a tuple
    of numbers as ``3x3``, a class or function by its ``__name__``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return str(value)
    if isinstance(value, (tuple, list)) and value and all(
            isinstance(v, (bool, int, float, str)) for v in value):
        return "x".join(str(v) for v in value)
    name = getattr(value, "__name__", None)
    return name if isinstance(name, str) else str(value)


@dataclass(frozen=True)
class Options:
    labels: tuple[str, ...]
    values: tuple[Any, ...]

    def __eq__(self, other: object) -> bool:  # options are compared by their names
        return isinstance(other, Options) and self.labels == other.labels

    def __hash__(self) -> int:
        return hash(self.labels)


class Chooser:
    """The ``choice`` function one call of the builder receives: checks each call,
    records the decisions in call order and answers with ``pick``'s option."""

    def __init__(self, where: str, pick: Pick) -> None:
        self.where, self.pick = where, pick
        self.order: list[str] = []
        self.options: dict[str, Options] = {}
        self.picked: dict[str, int] = {}

    def __call__(self, name: str, options: Any) -> Any:
        if not isinstance(name, str) or not name.strip() or any(c in name for c in ",=\n"):
            raise BuilderError(f"{self.where} called choice with name {name!r}; a decision name "
                               f"is a non-empty string without ',' or '='")
        if isinstance(options, (str, bytes)) or not isinstance(options, (list, tuple, range)):
            raise BuilderError(f"{self.where} called choice({name!r}, ...) with a "
                               f"{type(options).__name__}; give a list of options")
        values = tuple(options)
        if not values:
            raise BuilderError(f"{self.where} called choice({name!r}, ...) with no options")
        if name in self.options:
            raise BuilderError(f"{self.where} called choice({name!r}, ...) twice in one build; "
                               f"give each decision its own name")
        labels = tuple(option_label(v) for v in values)
        for label in labels:
            if not label or any(c in label for c in ",=\n") or label == UNUSED:
                raise BuilderError(f"{self.where}: option {label!r} of decision {name!r} cannot be "
                                   f"written in an architecture string (no ',', '=' or a lone "
                                   f"'{UNUSED}'); use numbers or plain names")
        if len(set(labels)) != len(labels):
            raise BuilderError(f"{self.where}: decision {name!r} has options with the same name "
                               f"({', '.join(labels)}); make them distinct")
        opts = Options(labels, values)
        index = self.pick(name, labels)
        self.order.append(name)
        self.options[name] = opts
        self.picked[name] = index
        return values[index]


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


@dataclass(frozen=True)
class Discovered:
    """Decisions in build order, each one's options, the conditional ones and the cost."""

    order: tuple[str, ...]
    options: dict[str, Options]
    conditional: frozenset[str]
    builds: int


def discover(call: Callable[[Pick], Chooser], where: str) -> Discovered:
    """Every decision the builder asks for: each option of each decision is tried in every
    context where a new decision appeared, then a few seeded random builds."""
    known: dict[str, Options] = {}
    order: list[str] = []
    traces: list[set[str]] = []
    builds = 0

    def merge(chooser: Chooser) -> None:
        for k, name in enumerate(chooser.order):
            options = chooser.options[name]
            if name in known:
                if known[name] != options:
                    raise BuilderError(
                        f"{where} gave decision {name!r} different options in different "
                        f"builds ({', '.join(known[name].labels)} / {', '.join(options.labels)});"
                        f" a decision's options must not depend on other choices")
                continue
            known[name] = options
            before = [n for n in chooser.order[:k] if n in known and n in order]
            order.insert(order.index(before[-1]) + 1 if before else 0, name)

    def run(pick: Pick) -> Chooser:
        nonlocal builds
        builds += 1
        if builds > MAX_DISCOVERY_BUILDS:
            raise BuilderError(f"{where} needs more than {MAX_DISCOVERY_BUILDS} builds to "
                               f"discover its decisions; make fewer decisions conditional")
        chooser = call(pick)
        merge(chooser)
        traces.append(set(chooser.order))
        return chooser

    contexts: list[dict[str, int]] = [{}]
    i = 0
    while i < len(contexts):
        context = contexts[i]
        i += 1
        base = run(lambda name, labels, c=context: c.get(name, 0))
        for name in base.order:
            if name in context:
                continue
            for j in range(1, len(known[name].labels)):
                trial = {**context, name: j}
                count = len(known)
                run(lambda n, labels, c=trial: c.get(n, 0))
                if len(known) > count:  # new decisions appear under this choice
                    contexts.append(trial)
    rng = np.random.default_rng(0)
    for _ in range(RANDOM_PROBES):
        run(lambda name, labels: int(rng.integers(len(labels))))
    if not order:
        raise BuilderError(f"{where} never calls choice; there is nothing to search")
    conditional = frozenset(n for n in order if any(n not in t for t in traces))
    return Discovered(tuple(order), {n: known[n] for n in order}, conditional, builds)


def count(call: Callable[[Pick], Chooser], found: Discovered, name: str) -> int:
    """Exact number of architectures: the product for plain spaces; for conditional
    ones the leaves of the choice tree, enumerated up to a limit (else the product
    with "unused" options, an upper bound)."""
    if not found.conditional:
        return math.prod(len(o.labels) for o in found.options.values())
    builds = 0

    def leaves(assigned: dict[str, int]) -> int:
        nonlocal builds
        builds += 1
        if builds > MAX_COUNT_BUILDS:
            raise Abort("too many")
        chooser = call(lambda n, labels: assigned.get(n, 0))
        nxt = next((n for n in chooser.order if n not in assigned), None)
        if nxt is None:
            return 1
        return sum(leaves({**assigned, nxt: j}) for j in range(len(chooser.options[nxt].labels)))

    try:
        return leaves({})
    except Abort:
        bound = math.prod(len(o.labels) + (n in found.conditional)
                          for n, o in found.options.items())
        log.info("%s: size not enumerated (over %d builds); using the bound %d",
                 name, MAX_COUNT_BUILDS, bound)
        return bound
