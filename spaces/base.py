"""The ``Space`` base class: everything a strategy, predictor or profiler may ask of a space.

A space is a fixed tuple of categorical :class:`~spaces.arch.Decision` s; an
architecture is one option index per decision. From that one representation a
space derives sampling, mutation, neighbours, a one-hot vector (predictor input),
a token sequence (NAO), a human string form, and a standalone ``nn.Module``.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from spaces.arch import Arch, Decision
from spaces.errors import InvalidArchitecture, InvalidOption

RngLike = "np.random.Generator | int | None"

# Sane ranges of what a network is built for: a larger input or head is a typo (an extra
# digit), and it would fail only after minutes of building, profiling or training.
MAX_INPUT_SIZE = 1024
MAX_NUM_CLASSES = 100_000
# Architectures one command may sample, measure or print. A million fbnet networks take
# days to profile; more is a typo, and sampling that many would only fill memory.
MAX_COUNT = 1_000_000


def check_int(name: str, value: object, least: int = 1, most: int | None = None) -> int:
    """``value`` as an int in ``[least, most]``; InvalidOption naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidOption(f"{name} must be a whole number, got {value!r}")
    if value < least:
        raise InvalidOption(f"{name} must be at least {least:,}, got {value:,}")
    if most is not None and value > most:
        raise InvalidOption(f"{name} must be at most {most:,}, got {value:,}")
    return int(value)


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Accept a Generator, a seed or None so callers can pass whichever they hold."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def family_of(key: str) -> str:
    """The space family of a space key: ``nb201(C=4,N=1)`` -> ``nb201``, ``fbnetv2:tiny`` ->
    ``fbnetv2`` (tables and stores name spaces by key; users name them by family)."""
    return str(key).split(":")[0].split("(")[0].strip()


@dataclass(frozen=True)
class Cost:
    """Static cost of a built network.

    ``macs`` are multiply-accumulates: torch's ``FlopCounterMode`` counts 2 FLOPs
    per multiply-add for convolutions and matmuls, so ``macs = flops // 2``.
    Ops it does not count (pooling, batch-norm, activations, additions) are
    not included, which matches the "FLOPs" that NAS papers publish.
    """

    macs: int
    params: int


class IndexStrings:
    """``to_string`` / ``from_string`` as the option indices joined by ``separator``: the
    string form a small hand-written space needs (mix in before :class:`Space`)."""

    separator = "-"

    def to_string(self, arch: Arch) -> str:
        self.validate(arch)  # type: ignore[attr-defined]
        return self.separator.join(map(str, arch.choices))

    def from_string(self, text: str) -> Arch:
        try:
            return self.arch([int(t) for t in str(text).split(self.separator)])  # type: ignore[attr-defined]
        except ValueError:
            raise InvalidArchitecture(self.name, f"malformed string {text!r}") from None  # type: ignore[attr-defined]


#: Costs already counted in this process (see :meth:`Space.cost`), at most this many.
_COUNTED_COSTS: dict[tuple[Any, ...], "Cost"] = {}
MAX_COUNTED_COSTS = 200_000


class Space(ABC):
    """Base of every search space. Subclasses set ``name`` and ``decisions`` and implement
    ``to_string``, ``from_string`` and ``_build``; rules beyond "one valid option per
    decision" go in ``_check_rules``."""

    name: str = ""
    decisions: tuple[Decision, ...] = ()
    default_input_size: int = 32
    default_num_classes: int = 10
    in_channels: int = 3

    # ---- identity -------------------------------------------------------------------
    @property
    def key(self) -> str:
        """Identifies the space *and* its parameters (preset, stem...), e.g. for the
        measurement store, where two presets of one family must not be mixed."""
        return self.name

    @classmethod
    def from_key(cls, key: str, **kwargs: Any) -> "Space":
        """The space whose :attr:`key` is ``key``: ``"nb201"`` or ``"nb201(C=8,N=1)"``;
        families with colon keys (``"fbnetv2:tiny:w0.5"``) override :meth:`key_options`."""
        return cls(**{**cls.key_options(key), **kwargs})

    @classmethod
    def key_options(cls, key: str) -> dict[str, Any]:
        """Constructor options written in a key; the default reads ``name(k=v,...)``."""
        import ast

        match = re.fullmatch(rf"{re.escape(cls.name)}(?:\((.*)\))?", key.strip())
        if match is None:
            raise InvalidArchitecture(cls.name, f"{key!r} is not a key of this space")
        options: dict[str, Any] = {}
        for part in filter(None, (match.group(1) or "").split(",")):
            name, _, value = part.partition("=")
            try:
                options[name.strip()] = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                options[name.strip()] = value.strip()
        return options

    def __repr__(self) -> str:
        return f"<Space {self.key}: {len(self.decisions)} decisions, {self.size} archs>"

    # ---- size, validation -----------------------------------------------------------
    @property
    def size(self) -> int:
        """Exact number of architectures. Override when ``_check_rules`` forbids some."""
        return math.prod(len(d) for d in self.decisions)

    def validate(self, arch: Arch) -> Arch:
        """Raise :class:`InvalidArchitecture` (naming the decision) unless ``arch`` is a
        member of this space; return it unchanged so calls can be chained."""
        if not isinstance(arch, Arch):
            raise InvalidArchitecture(self.name, f"expected an Arch, got {type(arch).__name__}")
        # An arch carries the key of the space that made it, so two presets never mix; a
        # family-level tag (``Arch("nb201", ...)`` written by hand or read from an older
        # file) is accepted by every variant of the family.
        if arch.space not in (self.key, self.name):
            raise InvalidArchitecture(self.name, f"architecture belongs to space {arch.space!r}")
        if len(arch.choices) != len(self.decisions):
            raise InvalidArchitecture(
                self.name, f"expected {len(self.decisions)} choices, got {len(arch.choices)}"
            )
        for decision, choice in zip(self.decisions, arch.choices):
            if not 0 <= choice < len(decision):
                raise InvalidArchitecture(
                    self.name,
                    f"option {choice} out of range 0..{len(decision) - 1}",
                    decision.name,
                )
        self._check_rules(arch)
        return arch

    def is_valid(self, arch: Arch) -> bool:
        try:
            self.validate(arch)
        except InvalidArchitecture:
            return False
        return True

    def _check_rules(self, arch: Arch) -> None:
        """Space-specific constraints; raise InvalidArchitecture. Default: none."""

    def arch(self, choices: "tuple[int, ...] | list[int]") -> Arch:
        """Build and validate an Arch of this space from option indices."""
        return self.validate(Arch(self.key, tuple(choices)))

    # ---- string forms ---------------------------------------------------------------
    @abstractmethod
    def to_string(self, arch: Arch) -> str:
        """Human form, e.g. NB201 ``|nor_conv_3x3~0|+|...|`` or FBNet ``7-8-1-...``."""

    @abstractmethod
    def from_string(self, text: str) -> Arch:
        """Inverse of ``to_string``; malformed text raises InvalidArchitecture."""

    def define(self, pick: "Callable[[str, tuple[str, ...]], int]") -> Arch:
        """The architecture whose option at each decision is ``pick(name, options)`` (an
        index into ``options``), asked in decision order and only for the decisions that
        apply: here all of them; a define-by-run space with conditional decisions asks only
        those its builder reaches. Why: define-by-run samplers (Optuna's ``suggest_*``)
        then see the space's real structure."""
        return self.arch([int(pick(d.name, d.options)) for d in self.decisions])

    # ---- sampling and local moves ---------------------------------------------------
    def sample(self, rng: np.random.Generator | int | None = None) -> Arch:
        """Uniform over each decision, rejecting combinations the space forbids."""
        gen = as_rng(rng)
        for _ in range(10_000):
            choices = tuple(int(gen.integers(len(d))) for d in self.decisions)
            candidate = Arch(self.key, choices)
            if self.is_valid(candidate):
                return candidate
        raise RuntimeError(f"could not sample a valid {self.name} architecture")

    def sample_many(self, n: int, rng: np.random.Generator | int | None = None,
                    unique: bool = True) -> list[Arch]:
        """``n`` samples; distinct when ``unique`` (capped by the space size)."""
        gen = as_rng(rng)
        if not unique:
            return [self.sample(gen) for _ in range(n)]
        n = min(n, self.size)
        seen: dict[Arch, None] = {}
        draws, limit = 0, self.max_draws(n)
        while len(seen) < n and draws < limit:
            seen.setdefault(self.sample(gen), None)
            draws += 1
        return list(seen)

    def max_draws(self, n: int) -> float:
        """Draws ``sample_many`` may spend on ``n`` distinct archs: unbounded where
        :attr:`size` is exact; a space whose size is only a bound sets a limit."""
        return math.inf

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        """Change exactly one decision to another valid option."""
        self.validate(arch)
        gen = as_rng(rng)
        movable = [i for i, d in enumerate(self.decisions) if len(d) > 1]
        for _ in range(10_000):
            i = int(gen.choice(movable))
            other = int(gen.integers(len(self.decisions[i]) - 1))
            other += other >= arch.choices[i]  # skip the current option
            candidate = Arch(self.key, arch.choices[:i] + (other,) + arch.choices[i + 1:])
            if self.is_valid(candidate):
                return candidate
        raise RuntimeError(f"no valid mutation of {self.to_string(arch)}")

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every valid architecture that differs from ``arch`` in exactly one decision."""
        self.validate(arch)
        return list(self._iter_neighbours(arch))

    def _iter_neighbours(self, arch: Arch) -> Iterator[Arch]:
        for i, decision in enumerate(self.decisions):
            for option in range(len(decision)):
                if option != arch.choices[i]:
                    candidate = Arch(self.key, arch.choices[:i] + (option,) + arch.choices[i + 1:])
                    if self.is_valid(candidate):
                        yield candidate

    # ---- encodings ------------------------------------------------------------------
    @property
    def option_offsets(self) -> tuple[int, ...]:
        """Start of each decision's block in the one-hot vector / token vocabulary."""
        offsets, total = [], 0
        for d in self.decisions:
            offsets.append(total)
            total += len(d)
        return tuple(offsets)

    @property
    def num_options(self) -> int:
        """Length of the one-hot vector (= token vocabulary size)."""
        return sum(len(d) for d in self.decisions)

    def one_hot(self, arch: Arch) -> np.ndarray:
        """Concatenated one-hot per decision (float32); a soft architecture puts
        per-decision probabilities in the same slots."""
        self.validate(arch)
        vec = np.zeros(self.num_options, dtype=np.float32)
        for offset, choice in zip(self.option_offsets, arch.choices):
            vec[offset + choice] = 1.0
        return vec

    def one_hot_many(self, archs: "list[Arch]") -> np.ndarray:
        return np.stack([self.one_hot(a) for a in archs]) if archs else np.zeros(
            (0, self.num_options), dtype=np.float32)

    def tokens(self, arch: Arch) -> list[int]:
        """Decision i, option j -> token ``offset_i + j`` (one global vocabulary)."""
        self.validate(arch)
        return [o + c for o, c in zip(self.option_offsets, arch.choices)]

    def from_tokens(self, tokens: "list[int]") -> Arch:
        if len(tokens) != len(self.decisions):
            raise InvalidArchitecture(self.name, f"expected {len(self.decisions)} tokens, got {len(tokens)}")
        return self.arch([t - o for t, o in zip(tokens, self.option_offsets)])

    # ---- networks -------------------------------------------------------------------
    def input_size(self, input_size: int | None = None) -> int:
        """The input resolution to build for: the space's own when None, else checked."""
        if input_size is None:
            return self.default_input_size
        return check_int("the input size", input_size, 1, MAX_INPUT_SIZE)

    def num_classes(self, num_classes: int | None = None) -> int:
        """The classifier's width: the space's own when None, else checked."""
        if num_classes is None:
            return self.default_num_classes
        return check_int("the number of classes", num_classes, 1, MAX_NUM_CLASSES)

    def input_shape(self, input_size: int | None = None) -> tuple[int, int, int]:
        size = self.input_size(input_size)
        return (self.in_channels, size, size)

    def build(self, arch: Arch, num_classes: int | None = None,
              input_size: int | None = None) -> "torch.nn.Module":  # noqa: F821
        """The standalone, deployable network of ``arch`` (never a supernet)."""
        self.validate(arch)
        return self._build(arch, self.num_classes(num_classes), self.input_size(input_size))

    @abstractmethod
    def _build(self, arch: Arch, num_classes: int, input_size: int) -> "torch.nn.Module":  # noqa: F821
        """Construct the module; ``arch`` is already validated."""

    def cost(self, arch: Arch, input_size: int | None = None,
             num_classes: int | None = None) -> Cost:
        """MACs and parameters counted on the built module (see :class:`Cost`), once per
        architecture and shape: building and tracing a network costs ~40 ms, and budgets,
        repairs and predictors ask about the same architectures again and again."""
        from spaces.flops import count_cost

        # the key names the space and its parameters (the measurement store relies on it
        # too); a builder space adds its spec (two files may define one name)
        key = (type(self), self.key, getattr(self, "spec", None), arch, self.input_size(input_size),
               self.num_classes(num_classes))
        if key not in _COUNTED_COSTS:
            module = self.build(arch, num_classes, input_size)
            if len(_COUNTED_COSTS) >= MAX_COUNTED_COSTS:
                _COUNTED_COSTS.clear()
            _COUNTED_COSTS[key] = count_cost(module, self.input_shape(input_size))
        return _COUNTED_COSTS[key]
