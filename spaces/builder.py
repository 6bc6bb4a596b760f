"""Define-by-run spaces: a plain function that builds a network, asking ``choice`` for each decision.

::

    def build(choice, num_classes):
        width = choice("width", [16, 32, 64])
        depth = choice("depth", [1, 2, 3])
        ...                       # any torch code
        return model              # an nn.Module

Why: users have a model family of their own; writing a ``Space`` subclass (string
forms, validation, registration) is a barrier, while a builder function is code
they already have. hwnas finds the decisions by calling the function with a
recording ``choice`` (on torch's ``meta`` device, so no weights are allocated),
and from then on the space is like any other: a fixed tuple of decisions, an
architecture is one option index per decision, the string form is
``width=32,depth=2``.

Conditional decisions (asked only for some earlier choices, e.g. a per-layer
kernel that exists only when ``depth`` is large enough) get one more option,
``-`` ("unused"), which an architecture holds exactly where the builder does not
ask for that decision. Discovery tries every option of every decision in each
context where a new decision appeared (plus a few seeded random builds), so a
decision that appears only for a *combination* of two choices none of which
reveals it alone may be missed; building such an architecture then says so.

Optional keyword parameters of the builder: ``input_size`` and ``in_channels``
(passed when it declares them; their defaults, and that of ``num_classes``,
become the space's defaults: 32, 3 and 10 otherwise).
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from spaces import loader
from spaces.arch import Arch, Decision
from spaces.base import Space, as_rng
from spaces.errors import BuilderError, InvalidArchitecture

log = logging.getLogger(__name__)

UNUSED = "-"
DEFAULT_INPUT_SIZE = 32
DEFAULT_IN_CHANNELS = 3
DEFAULT_NUM_CLASSES = 10
RANDOM_PROBES = 16          # seeded random builds after the systematic discovery
MAX_DISCOVERY_BUILDS = 5000
MAX_COUNT_BUILDS = 512      # exact size of a conditional space by enumeration, up to this
_CACHE_LIMIT = 8192

Pick = Callable[[str, tuple[str, ...]], int]


class OptionError(BuilderError, TypeError):
    """A builder space was given a constructor option it does not take (a TypeError too,
    so callers that try a space's alternative option names keep working)."""


OPTIONS = ("in_channels",)


class _Abort(BaseException):
    """Stops a builder mid-way (BaseException: a builder's ``except Exception`` cannot eat it)."""

    def __init__(self, reason: str, decision: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.decision = reason, decision


def _label(value: Any) -> str:
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
class _Options:
    labels: tuple[str, ...]
    values: tuple[Any, ...]

    def __eq__(self, other: object) -> bool:  # options are compared by their names
        return isinstance(other, _Options) and self.labels == other.labels

    def __hash__(self) -> int:
        return hash(self.labels)


class _Chooser:
    """The ``choice`` function one call of the builder receives: checks each call,
    records the decisions in call order and answers with ``pick``'s option."""

    def __init__(self, where: str, pick: Pick) -> None:
        self.where, self.pick = where, pick
        self.order: list[str] = []
        self.options: dict[str, _Options] = {}
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
        labels = tuple(_label(v) for v in values)
        for label in labels:
            if not label or any(c in label for c in ",=\n") or label == UNUSED:
                raise BuilderError(f"{self.where}: option {label!r} of decision {name!r} cannot be "
                                   f"written in an architecture string (no ',', '=' or a lone "
                                   f"'{UNUSED}'); use numbers or plain names")
        if len(set(labels)) != len(labels):
            raise BuilderError(f"{self.where}: decision {name!r} has options with the same name "
                               f"({', '.join(labels)}); make them distinct")
        opts = _Options(labels, values)
        index = self.pick(name, labels)
        self.order.append(name)
        self.options[name] = opts
        self.picked[name] = index
        return values[index]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


class BuilderSpace(Space):
    """A space whose decisions and networks come from a builder function (see module doc)."""

    def __init__(self, spec: str, in_channels: int | None = None, *, name: str | None = None,
                 function: Callable[..., Any] | None = None) -> None:
        self._spec = loader.parse(spec)
        self.name = name or self._spec.text
        self._where = self._spec.where
        fn = function if function is not None else loader.load(self._spec)
        if inspect.isclass(fn):
            raise BuilderError(f"{self._where} is a class; give a function build(choice, "
                               f"num_classes) or register a Space subclass by name")
        if not callable(fn):
            raise BuilderError(f"{self._where} is not a function")
        self._fn = fn
        self._params = self._check_signature(fn)
        defaults = {n: p.default for n, p in self._params.items()
                    if p.default is not inspect.Parameter.empty}
        self.default_input_size = int(defaults.get("input_size", DEFAULT_INPUT_SIZE))
        self.default_num_classes = int(defaults.get("num_classes", DEFAULT_NUM_CLASSES))
        chosen = in_channels if in_channels is not None else defaults.get("in_channels",
                                                                           DEFAULT_IN_CHANNELS)
        if not isinstance(chosen, int) or isinstance(chosen, bool) or chosen < 1:
            raise InvalidArchitecture(self.name, f"in_channels must be a positive integer, "
                                                 f"got {chosen!r}")
        self.in_channels = chosen
        self._kwargs = {"in_channels": in_channels} if in_channels is not None else {}
        self._valid: dict[tuple[int, ...], tuple[str, str | None] | None] = {}
        self._discover()

    # ---- identity and pickling -------------------------------------------------------
    @property
    def key(self) -> str:
        if not self._kwargs:
            return self.name
        return f"{self.name}({','.join(f'{k}={v}' for k, v in self._kwargs.items())})"

    @property
    def spec(self) -> str:
        return self._spec.text

    def __reduce__(self) -> tuple:
        # By value: the spec string and options; the receiving process imports the
        # function again and repeats the (deterministic) discovery.
        return (_restore, (self._spec.text, self.name, dict(self._kwargs)))

    # ---- calling the builder ---------------------------------------------------------
    def _check_signature(self, fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            return {}
        try:
            signature.bind(lambda name, options: None, DEFAULT_NUM_CLASSES)
        except TypeError:
            raise BuilderError(f"{self._where} must take (choice, num_classes), it takes "
                               f"{signature}") from None
        return dict(signature.parameters)

    def _call(self, pick: Pick, num_classes: int | None = None, input_size: int | None = None,
              meta: bool = False) -> tuple[_Chooser, Any]:
        """One call of the builder; on the meta device first when ``meta`` (no weights),
        again on the CPU if the builder needs real tensors."""
        import torch

        kwargs: dict[str, Any] = {}
        if "input_size" in self._params:
            kwargs["input_size"] = int(input_size or self.default_input_size)
        if "in_channels" in self._params:
            kwargs["in_channels"] = self.in_channels
        classes = int(num_classes or self.default_num_classes)
        for on_meta in ((True, False) if meta else (False,)):
            chooser = _Chooser(self._where, pick)
            try:
                if on_meta:
                    with torch.device("meta"):
                        module = self._fn(chooser, classes, **kwargs)
                else:
                    module = self._fn(chooser, classes, **kwargs)
            except (_Abort, BuilderError):
                raise
            except Exception as error:  # noqa: BLE001 - the user's code may raise anything
                if on_meta:
                    continue
                raise BuilderError(f"{self._where} raised {_one_line(error)}") from None
            if not isinstance(module, torch.nn.Module):
                raise BuilderError(f"{self._where} returned {type(module).__name__}, not a "
                                   f"torch.nn.Module")
            return chooser, module
        raise AssertionError("unreachable")

    # ---- discovery -------------------------------------------------------------------
    def _discover(self) -> None:
        known: dict[str, _Options] = {}
        order: list[str] = []
        traces: list[set[str]] = []
        builds = 0

        def merge(chooser: _Chooser) -> None:
            for k, name in enumerate(chooser.order):
                options = chooser.options[name]
                if name in known:
                    if known[name] != options:
                        raise BuilderError(
                            f"{self._where} gave decision {name!r} different options in different "
                            f"builds ({', '.join(known[name].labels)} / {', '.join(options.labels)});"
                            f" a decision's options must not depend on other choices")
                    continue
                known[name] = options
                before = [n for n in chooser.order[:k] if n in known and n in order]
                order.insert(order.index(before[-1]) + 1 if before else 0, name)

        def run(pick: Pick) -> _Chooser:
            nonlocal builds
            builds += 1
            if builds > MAX_DISCOVERY_BUILDS:
                raise BuilderError(f"{self._where} needs more than {MAX_DISCOVERY_BUILDS} builds to "
                                   f"discover its decisions; make fewer decisions conditional")
            chooser, _ = self._call(pick, meta=True)
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
            raise BuilderError(f"{self._where} never calls choice; there is nothing to search")
        self._conditional = frozenset(n for n in order if any(n not in t for t in traces))
        self._options = {n: known[n] for n in order}
        self._index = {n: k for k, n in enumerate(order)}
        self.decisions = tuple(
            Decision(n, known[n].labels + ((UNUSED,) if n in self._conditional else ()))
            for n in order)
        self._size = self._count()
        log.debug("%s: %d decisions (%d conditional) found in %d builds", self.name,
                  len(order), len(self._conditional), builds)

    def _count(self) -> int:
        """Exact number of architectures: the product for plain spaces; for conditional
        ones the leaves of the choice tree, enumerated up to a limit (else the product,
        an upper bound)."""
        if not self._conditional:
            return math.prod(len(o.labels) for o in self._options.values())
        builds = 0

        def leaves(assigned: dict[str, int]) -> int:
            nonlocal builds
            builds += 1
            if builds > MAX_COUNT_BUILDS:
                raise _Abort("too many")
            chooser, _ = self._call(lambda name, labels: assigned.get(name, 0), meta=True)
            nxt = next((n for n in chooser.order if n not in assigned), None)
            if nxt is None:
                return 1
            return sum(leaves({**assigned, nxt: j}) for j in range(len(chooser.options[nxt].labels)))

        try:
            return leaves({})
        except _Abort:
            bound = math.prod(len(d) for d in self.decisions)
            log.info("%s: size not enumerated (over %d builds); using the bound %d",
                     self.name, MAX_COUNT_BUILDS, bound)
            return bound

    @property
    def size(self) -> int:
        return self._size

    @property
    def conditional(self) -> frozenset[str]:
        """Names of the decisions that apply only for some earlier choices."""
        return self._conditional

    def unused_option(self, i: int) -> int | None:
        """Option index of "unused" for decision i, None when it always applies."""
        decision = self.decisions[i]
        return len(decision) - 1 if decision.name in self._conditional else None

    def _real(self, i: int) -> int:
        return len(self._options[self.decisions[i].name].labels)

    # ---- tracing architectures -------------------------------------------------------
    def _follow(self, choices: tuple[int, ...]) -> Pick:
        def pick(name: str, labels: tuple[str, ...]) -> int:
            if name not in self._index:
                raise _Abort(f"the builder asks for decision {name!r}, which discovery did not "
                             f"find (it appears only for a combination of choices); make it "
                             f"depend on one earlier choice or ask for it always", name)
            i = self._index[name]
            if choices[i] == self.unused_option(i):
                raise _Abort(f"the decision applies here but is '{UNUSED}'", name)
            return choices[i]
        return pick

    def _violation(self, choices: tuple[int, ...]) -> tuple[str, str | None] | None:
        """Why ``choices`` is not an architecture of this conditional space (reason,
        decision), or None; memoised, each check being one meta-device build."""
        if choices in self._valid:
            return self._valid[choices]
        try:
            chooser, _ = self._call(self._follow(choices), meta=True)
            asked = set(chooser.order)
            wrong = next((d.name for i, d in enumerate(self.decisions)
                          if d.name not in asked and d.name in self._conditional
                          and choices[i] != self.unused_option(i)), None)
            result = None if wrong is None else (
                f"the decision does not apply to this architecture; it must be '{UNUSED}'", wrong)
        except _Abort as abort:
            result = (abort.reason, abort.decision)
        self._remember(choices, result)
        return result

    def _remember(self, choices: tuple[int, ...], result: tuple[str, str | None] | None) -> None:
        if len(self._valid) >= _CACHE_LIMIT:
            self._valid.clear()
        self._valid[choices] = result

    def _check_rules(self, arch: Arch) -> None:
        if not self._conditional:
            return
        problem = self._violation(arch.choices)
        if problem is not None:
            raise InvalidArchitecture(self.name, problem[0], problem[1])

    # ---- define-by-run ---------------------------------------------------------------
    def define(self, pick: Pick) -> Arch:
        if not self._conditional:
            return super().define(pick)
        asked: dict[str, int] = {}

        def checked(name: str, labels: tuple[str, ...]) -> int:
            if name not in self._index:
                raise _Abort("unknown decision", name)
            index = int(pick(name, labels))
            if not 0 <= index < len(labels):
                raise InvalidArchitecture(self.name, f"option {index} out of range 0..{len(labels) - 1}",
                                          name)
            asked[name] = index
            return index

        try:
            self._call(checked, meta=True)
        except _Abort as abort:
            raise BuilderError(f"{self._where}: {self._follow_reason(abort)}") from None
        choices = tuple(asked.get(d.name, self.unused_option(i)) if d.name in self._conditional
                        else asked.get(d.name, 0) for i, d in enumerate(self.decisions))
        self._remember(choices, None)
        return self.arch(choices)

    def _follow_reason(self, abort: _Abort) -> str:
        if abort.reason == "unknown decision":
            return (f"the builder asks for decision {abort.decision!r}, which discovery did not "
                    f"find (it appears only for a combination of choices); make it depend on one "
                    f"earlier choice or ask for it always")
        return abort.reason

    # ---- sampling and local moves (conditional spaces follow the builder) ------------
    def sample(self, rng: np.random.Generator | int | None = None) -> Arch:
        if not self._conditional:
            return super().sample(rng)
        gen = as_rng(rng)
        return self.define(lambda name, labels: int(gen.integers(len(labels))))

    def sample_many(self, n: int, rng: np.random.Generator | int | None = None,
                    unique: bool = True) -> list[Arch]:
        gen = as_rng(rng)
        if not unique:
            return [self.sample(gen) for _ in range(n)]
        n = min(n, self.size)
        seen: dict[Arch, None] = {}
        for _ in range(50 * n + 1000):  # the size of a large conditional space is a bound
            if len(seen) >= n:
                break
            seen.setdefault(self.sample(gen), None)
        return list(seen)

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        if not self._conditional:
            return super().mutate(arch, rng)
        self.validate(arch)
        gen = as_rng(rng)
        movable = [i for i in range(len(self.decisions))
                   if arch.choices[i] != self.unused_option(i) and self._real(i) > 1]
        if not movable:
            raise RuntimeError(f"no valid mutation of {self.to_string(arch)}")
        i = int(gen.choice(movable))
        other = int(gen.integers(self._real(i) - 1))
        other += other >= arch.choices[i]
        return self._moved(arch, i, other, lambda labels: int(gen.integers(len(labels))))

    def _moved(self, arch: Arch, i: int, option: int,
               fill: Callable[[tuple[str, ...]], int]) -> Arch:
        """``arch`` with decision i set to ``option``; decisions that start to apply get
        ``fill``'s option, those that stop applying become unused."""
        target = self.decisions[i].name

        def pick(name: str, labels: tuple[str, ...]) -> int:
            if name == target:
                return option
            k = self._index.get(name)
            if k is not None and arch.choices[k] != self.unused_option(k):
                return arch.choices[k]
            return fill(labels)

        return self.define(pick)

    def _iter_neighbours(self, arch: Arch) -> Iterable[Arch]:
        if not self._conditional:
            yield from super()._iter_neighbours(arch)
            return
        seen: set[Arch] = {arch}
        for i in range(len(self.decisions)):
            if arch.choices[i] == self.unused_option(i):
                continue
            for option in range(self._real(i)):
                if option != arch.choices[i]:
                    candidate = self._moved(arch, i, option, lambda labels: 0)
                    if candidate not in seen:
                        seen.add(candidate)
                        yield candidate

    # ---- string form -----------------------------------------------------------------
    def to_string(self, arch: Arch) -> str:
        self.validate(arch)
        return ",".join(f"{d.name}={d.options[c]}" for i, (d, c) in
                        enumerate(zip(self.decisions, arch.choices)) if c != self.unused_option(i))

    def from_string(self, text: str) -> Arch:
        if not isinstance(text, str) or not text.strip():
            raise InvalidArchitecture(self.name, f"expected NAME=OPTION,... such as "
                                                 f"{self._example()}, got {text!r}")
        given: dict[str, str] = {}
        for part in text.split(","):
            name, sep, label = (s.strip() for s in part.partition("="))
            if not sep or not name:
                raise InvalidArchitecture(self.name, f"{part.strip()!r} is not NAME=OPTION "
                                                     f"(e.g. {self._example()})")
            if name not in self._index:
                raise InvalidArchitecture(self.name, f"unknown decision {name!r}; known: "
                                                     f"{', '.join(self._index)}")
            if name in given:
                raise InvalidArchitecture(self.name, "given twice", name)
            given[name] = label
        choices = []
        for i, d in enumerate(self.decisions):
            if d.name not in given:
                if self.unused_option(i) is None:
                    raise InvalidArchitecture(self.name, "missing (it always applies)", d.name)
                choices.append(self.unused_option(i))
                continue
            if given[d.name] not in d.options:
                raise InvalidArchitecture(self.name, f"unknown option {given[d.name]!r}; options: "
                                                     f"{', '.join(d.options)}", d.name)
            choices.append(d.options.index(given[d.name]))
        return self.arch(choices)

    def _example(self) -> str:
        return ",".join(f"{d.name}={d.options[0]}" for d in self.decisions[:3]
                        if d.name not in self._conditional) or f"{self.decisions[0].name}=..."

    # ---- networks --------------------------------------------------------------------
    def _build(self, arch: Arch, num_classes: int, input_size: int) -> Any:
        try:
            _, module = self._call(self._follow(arch.choices), num_classes, input_size)
        except _Abort as abort:
            raise InvalidArchitecture(self.name, abort.reason, abort.decision) from None
        return module


def _restore(spec: str, name: str, kwargs: dict[str, Any]) -> BuilderSpace:
    return cached(spec, name=name, **kwargs)


_SPACES: dict[tuple, BuilderSpace] = {}


def cached(spec: str, name: str | None = None, **kwargs: Any) -> BuilderSpace:
    """One discovery per (spec, options, file version) and process: the CLI asks for the
    same space several times, and discovery builds the network dozens of times."""
    unknown = sorted(set(kwargs) - set(OPTIONS))
    if unknown:
        raise OptionError(f"space {name or spec} takes no option {', '.join(map(repr, unknown))} "
                          f"(a builder space takes {', '.join(OPTIONS)})")
    parsed = loader.parse(spec)
    stamp = None
    if parsed.is_file:
        try:
            from pathlib import Path

            stat = Path(parsed.source).stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
    key = (parsed.text, name, tuple(sorted(kwargs.items())), stamp)
    space = _SPACES.get(key)
    if space is None:
        space = BuilderSpace(spec, name=name, **kwargs)
        _SPACES[key] = space
    return space


def from_object(obj: Any, spec: str, name: str | None = None, **kwargs: Any) -> Space:
    """What a spec or an entry point names, as a space: a Space subclass is instantiated
    with the options, a function becomes a :class:`BuilderSpace`."""
    if inspect.isclass(obj) and issubclass(obj, Space):
        return obj(**kwargs)  # a TypeError for unknown options, as for registered spaces
    if isinstance(obj, Space):
        return obj
    return cached(spec, name=name, **kwargs)
