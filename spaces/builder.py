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
from typing import Any, Callable, Iterable

import numpy as np

from spaces import builder_discovery as discovery
from spaces import loader
from spaces.builder_discovery import UNUSED, Abort, Chooser, Pick, one_line
from spaces.arch import Arch, Decision
from spaces.base import Space, as_rng
from spaces.errors import BuilderError, InvalidArchitecture

log = logging.getLogger(__name__)

DEFAULT_INPUT_SIZE = 32
DEFAULT_IN_CHANNELS = 3
DEFAULT_NUM_CLASSES = 10
_CACHE_LIMIT = 8192


class OptionError(BuilderError, TypeError):
    """A builder space was given a constructor option it does not take (a TypeError too,
    so callers that try a space's alternative option names keep working)."""


OPTIONS = ("in_channels",)


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
        return (loader.restore, (self._spec.text, self.name, dict(self._kwargs)))

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
              meta: bool = False) -> tuple[Chooser, Any]:
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
            chooser = Chooser(self._where, pick)
            try:
                if on_meta:
                    with torch.device("meta"):
                        module = self._fn(chooser, classes, **kwargs)
                else:
                    module = self._fn(chooser, classes, **kwargs)
            except (Abort, BuilderError):
                raise
            except Exception as error:  # noqa: BLE001 - the user's code may raise anything
                if on_meta:
                    continue
                raise BuilderError(f"{self._where} raised {one_line(error)}") from None
            if not isinstance(module, torch.nn.Module):
                raise BuilderError(f"{self._where} returned {type(module).__name__}, not a "
                                   f"torch.nn.Module")
            return chooser, module
        raise AssertionError("unreachable")

    # ---- discovery -------------------------------------------------------------------
    def _discover(self) -> None:
        def call(pick: Pick) -> Chooser:
            return self._call(pick, meta=True)[0]

        found = discovery.discover(call, self._where)
        self._conditional = found.conditional
        self._options = dict(found.options)
        self._index = {n: k for k, n in enumerate(found.order)}
        self.decisions = tuple(
            Decision(n, found.options[n].labels + ((UNUSED,) if n in found.conditional else ()))
            for n in found.order)
        self._size = discovery.count(call, found, self.name)
        log.debug("%s: %d decisions (%d conditional) found in %d builds", self.name,
                  len(found.order), len(found.conditional), found.builds)

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
                raise Abort(f"the builder asks for decision {name!r}, which discovery did not "
                             f"find (it appears only for a combination of choices); make it "
                             f"depend on one earlier choice or ask for it always", name)
            i = self._index[name]
            if choices[i] == self.unused_option(i):
                raise Abort(f"the decision applies here but is '{UNUSED}'", name)
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
        except Abort as abort:
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
                raise Abort("unknown decision", name)
            index = int(pick(name, labels))
            if not 0 <= index < len(labels):
                raise InvalidArchitecture(self.name, f"option {index} out of range 0..{len(labels) - 1}",
                                          name)
            asked[name] = index
            return index

        try:
            self._call(checked, meta=True)
        except Abort as abort:
            raise BuilderError(f"{self._where}: {self._follow_reason(abort)}") from None
        choices = tuple(asked.get(d.name, self.unused_option(i)) if d.name in self._conditional
                        else asked.get(d.name, 0) for i, d in enumerate(self.decisions))
        self._remember(choices, None)
        return self.arch(choices)

    def _follow_reason(self, abort: Abort) -> str:
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

    def max_draws(self, n: int) -> float:
        return 50 * n + 1000  # the size of a large conditional space is only a bound

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
        except Abort as abort:
            raise InvalidArchitecture(self.name, abort.reason, abort.decision) from None
        return module
