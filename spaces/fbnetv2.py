"""The ``fbnetv2`` space: FBNetV2-style macro space searched over resolution, width and blocks.

Decisions (the one fixed tuple every strategy sees): ``resolution`` first, then for
each stage its ``width`` followed by its blocks:

1. ``resolution`` - the input resolution the network works at;
2. ``stageN.width`` - the stage's channel count, one of several
   widths that are all *prefixes* of the stage's widest width, so a channel-masking
   supernet (FBNetV2 / DMaskingNAS) can run one convolution at the widest width and
   mask the first ``c_k`` channels;
3. ``stageN.blockM`` - kernel {3,5} x expansion {1,3,6}, plus ``skip``
   on every block but a stage's first (the first may change stride and width, so it
   can never be an identity). Skip is how depth is searched. ``kernels=`` and
   ``expansions=`` widen (or narrow) these sets, e.g. to measure how a supernet's
   cost grows with the number of block options.

Every option of every decision is always legal, so ``size`` is the plain product.

The first block of a stage never has a residual; the others always do (they have
stride 1 and the stage's width by construction). Fixing this by position, not by
comparing chosen widths, keeps the standalone net and the supernet the same graph.
A block's hidden width is its chosen input width times its expansion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spaces.arch import Arch, Decision
from spaces.base import Space
from spaces.errors import InvalidArchitecture, UnknownName

SKIP = "skip"


@dataclass(frozen=True)
class BlockChoice:
    """One inverted-residual option: depthwise kernel size and expansion ratio."""

    kernel: int
    expansion: int

    @property
    def name(self) -> str:
        return f"k{self.kernel}e{self.expansion}"


#: The default kernel sizes and expansion ratios of a block.
KERNELS: tuple[int, ...] = (3, 5)
EXPANSIONS: tuple[int, ...] = (1, 3, 6)


def block_options(kernels: tuple[int, ...] = KERNELS,
                  expansions: tuple[int, ...] = EXPANSIONS) -> tuple[BlockChoice, ...]:
    """The non-skip block options, kernel-major, in decision order."""
    return tuple(BlockChoice(k, e) for k in kernels for e in expansions)


#: The non-skip block options, in decision order (skip, where allowed, comes last).
BLOCK_CHOICES: tuple[BlockChoice, ...] = block_options()


@dataclass(frozen=True)
class StageSpec:
    """A preset's stage before the width multiplier: stride, channel options, depth."""

    stride: int
    widths: tuple[int, ...]
    blocks: int


@dataclass(frozen=True)
class Preset:
    """Everything that fixes a family member of the space except width_mult / in_channels."""

    input_size: int
    num_classes: int
    resolutions: tuple[int, ...]
    stem_width: int
    stem_stride: int
    stages: tuple[StageSpec, ...]
    head_width: int


PRESETS: dict[str, Preset] = {
    # CPU-trainable on digits (8x8) and CIFAR: a 16x16 input, so r8 is digits' native
    # size; stem at stride 1, two stride-2 stages, then a stride-1 stage at 4x4 (2x2 at
    # r8) so kernel choices still matter there. Measured here (1 thread, batch 64):
    # an epoch of 1,400 images takes ~1 s for the median sample and ~5 s for the widest
    # (a 32x32 input costs ~3.5x that); ORT latency widest/cheapest ~5-6x.
    # Larger inputs (CIFAR at 32) work too: pass input_size and the net resizes first.
    "tiny": Preset(
        input_size=16, num_classes=10, resolutions=(8, 12, 16),
        stem_width=16, stem_stride=1,
        stages=(
            StageSpec(stride=2, widths=(8, 12, 16, 24), blocks=2),
            StageSpec(stride=2, widths=(16, 24, 32, 40), blocks=2),
            StageSpec(stride=1, widths=(24, 32, 48, 64), blocks=2),
        ),
        head_width=128,
    ),
    # ImageNet-scale, widths and depths after the FBNetV2 macro space (MobileNetV2
    # layout, stem stride 2, 1984-wide head).
    "mobile": Preset(
        input_size=224, num_classes=1000, resolutions=(128, 160, 192, 224),
        stem_width=16, stem_stride=2,
        stages=(
            StageSpec(stride=1, widths=(8, 12, 16), blocks=1),
            StageSpec(stride=2, widths=(16, 24, 32, 40), blocks=3),
            StageSpec(stride=2, widths=(24, 32, 40, 48), blocks=4),
            StageSpec(stride=2, widths=(48, 64, 80, 96), blocks=4),
            StageSpec(stride=1, widths=(72, 96, 120, 144), blocks=4),
            StageSpec(stride=2, widths=(112, 152, 184, 224), blocks=4),
        ),
        head_width=1984,
    ),
}


def _option_set(space: str, name: str, values: tuple[int, ...], odd: bool) -> tuple[int, ...]:
    """``values`` as an ascending tuple of distinct positive ints (odd ones for kernels, so
    a smaller kernel is the centre of a larger one), else InvalidArchitecture."""
    try:
        items = tuple(values)
    except TypeError:
        items = ()
    ok = bool(items) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                             and (v % 2 == 1 or not odd) for v in items)
    if not ok or len(set(items)) != len(items):
        what = "distinct odd positive integers" if odd else "distinct positive integers"
        raise InvalidArchitecture(space, f"{name} must be {what}, got {values!r}")
    return tuple(sorted(items))


def scale_width(width: int, mult: float, divisor: int = 4) -> int:
    """MobileNet rounding: nearest multiple of ``divisor``, at least ``divisor``, and
    never more than 10% below the exact scaled width."""
    exact = width * mult
    rounded = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * exact:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class StageLayout:
    """What the supernet needs to know about one stage (widths after width_mult).

    ``widths`` ascend and each is a prefix of ``max_width``: option k of
    ``width_decision`` keeps the first ``widths[k]`` channels. ``in_max_width`` is
    the widest input the stage can receive (previous stage's or the stem's).
    ``block_decisions[0]`` has no skip option; the others end with ``skip``.
    """

    index: int
    name: str
    stride: int
    widths: tuple[int, ...]
    in_max_width: int
    num_blocks: int
    width_decision: int
    block_decisions: tuple[int, ...]

    @property
    def max_width(self) -> int:
        return self.widths[-1]


@dataclass(frozen=True)
class ArchConfig:
    """An architecture resolved to numbers: what ``build`` constructs.

    ``blocks[s][b]`` is the :class:`BlockChoice` of block b of stage s, or None for skip.
    """

    resolution: int
    widths: tuple[int, ...]
    blocks: tuple[tuple[BlockChoice | None, ...], ...]


class FBNetV2Space(Space):
    """FBNetV2-style space; see the module docstring for the decisions.

    The built network takes the space's ``default_input_size`` for every architecture
    and bilinearly resizes (align_corners=False) to the chosen resolution first: a
    documented equivalent of FBNetV2's spatial subsampling that keeps one input shape
    (one ONNX signature, one profiler call) across the whole space.
    """

    name = "fbnetv2"

    def __init__(self, preset: str = "tiny", width_mult: float = 1.0, in_channels: int = 3,
                 kernels: tuple[int, ...] = KERNELS, expansions: tuple[int, ...] = EXPANSIONS) -> None:
        if preset not in PRESETS:
            raise UnknownName("preset", preset, sorted(PRESETS))
        if not (isinstance(width_mult, (int, float)) and math.isfinite(width_mult) and width_mult > 0):
            raise InvalidArchitecture(self.name, f"width_mult must be a positive number, got {width_mult!r}")
        if not (isinstance(in_channels, int) and in_channels > 0):
            raise InvalidArchitecture(self.name, f"in_channels must be a positive integer, got {in_channels!r}")
        self.kernels = _option_set(self.name, "kernels", kernels, odd=True)
        self.expansions = _option_set(self.name, "expansions", expansions, odd=False)
        self._blocks = block_options(self.kernels, self.expansions)
        self._block_by_name = {b.name: b for b in self._blocks}
        self.preset = preset
        self.width_mult = float(width_mult)
        self.in_channels = in_channels
        spec = PRESETS[preset]
        self._preset = spec
        self.default_input_size = spec.input_size
        self.default_num_classes = spec.num_classes
        self.stem_width = scale_width(spec.stem_width, self.width_mult)
        self.head_width = scale_width(spec.head_width, self.width_mult)
        self.resolutions = spec.resolutions
        self._layout = self._make_layout(spec)
        self.decisions = self._make_decisions()

    # ---- structure --------------------------------------------------------------------
    def _make_layout(self, spec: Preset) -> tuple[StageLayout, ...]:
        stages, next_decision, in_width = [], 1, self.stem_width
        for i, st in enumerate(spec.stages):
            # Scaling may merge neighbouring widths; duplicates would be two names for
            # one network, so keep each width once.
            widths = tuple(sorted({scale_width(w, self.width_mult) for w in st.widths}))
            blocks = tuple(range(next_decision + 1, next_decision + 1 + st.blocks))
            stages.append(StageLayout(i, f"stage{i + 1}", st.stride, widths, in_width,
                                      st.blocks, next_decision, blocks))
            next_decision += 1 + st.blocks
            in_width = widths[-1]
        return tuple(stages)

    def _make_decisions(self) -> tuple[Decision, ...]:
        decisions = [Decision("resolution", tuple(str(r) for r in self.resolutions))]
        names = tuple(b.name for b in self._blocks)
        for st in self._layout:
            decisions.append(Decision(f"{st.name}.width", tuple(str(w) for w in st.widths)))
            for b in range(st.num_blocks):
                options = names if b == 0 else names + (SKIP,)
                decisions.append(Decision(f"{st.name}.block{b + 1}", options))
        return tuple(decisions)

    @property
    def key(self) -> str:
        key = f"{self.name}:{self.preset}"
        if self.width_mult != 1.0:
            key += f":w{self.width_mult:g}"
        if self.in_channels != 3:
            key += f":c{self.in_channels}"
        if self.kernels != KERNELS:
            key += ":k" + "-".join(map(str, self.kernels))
        if self.expansions != EXPANSIONS:
            key += ":e" + "-".join(map(str, self.expansions))
        return key

    @classmethod
    def key_options(cls, key: str) -> dict[str, Any]:
        """``fbnetv2:tiny:w0.5:c1:k3-5:e1-6`` -> preset, width_mult, in_channels, kernels,
        expansions (the inverse of :attr:`key`)."""
        family, *parts = key.strip().split(":")
        if family != cls.name or not parts:
            raise InvalidArchitecture(cls.name, f"{key!r} is not a key of this space "
                                                f"(expected {cls.name}:PRESET[:w..][:c..][:k..][:e..])")
        options: dict[str, Any] = {"preset": parts[0]}
        readers = {"w": ("width_mult", float), "c": ("in_channels", int),
                   "k": ("kernels", lambda v: tuple(int(x) for x in v.split("-"))),
                   "e": ("expansions", lambda v: tuple(int(x) for x in v.split("-")))}
        for part in parts[1:]:
            name, read = readers.get(part[:1], (None, None))
            try:
                options[name] = read(part[1:])  # type: ignore[misc]
            except (TypeError, ValueError):
                raise InvalidArchitecture(cls.name, f"cannot read {part!r} in key {key!r}") from None
        return options

    def stage_layout(self) -> tuple[StageLayout, ...]:
        """Per stage: stride, nested channel options, depth and its decision indices."""
        return self._layout

    @property
    def resolution_decision(self) -> int:
        """Index of the resolution decision (always the first)."""
        return 0

    def block_choices(self, decision: int) -> tuple[BlockChoice | None, ...]:
        """Option index -> :class:`BlockChoice` (kernel, expansion) or None for skip,
        for the block decision at ``decision``."""
        if not 0 <= decision < len(self.decisions) or ".block" not in self.decisions[decision].name:
            raise InvalidArchitecture(self.name, f"decision {decision} is not a block decision")
        return tuple(self._block_by_name.get(o) for o in self.decisions[decision].options)

    def resolve(self, arch: Arch) -> ArchConfig:
        """The numbers an architecture stands for (resolution, stage widths, blocks)."""
        self.validate(arch)
        c = arch.choices
        widths, blocks = [], []
        for st in self._layout:
            widths.append(st.widths[c[st.width_decision]])
            blocks.append(tuple(self.block_choices(d)[c[d]] for d in st.block_decisions))
        return ArchConfig(self.resolutions[c[0]], tuple(widths), tuple(blocks))

    # ---- strings ----------------------------------------------------------------------
    def to_string(self, arch: Arch) -> str:
        """``r<res>|c<w1>-<w2>-...|<block>-<block>-...`` with blocks in network order,
        e.g. ``r24|c12-32-48|k3e6-skip-k5e3-k3e1-k5e6-skip``."""
        self.validate(arch)
        opts = [d.options[i] for d, i in zip(self.decisions, arch.choices)]
        widths = [opts[st.width_decision] for st in self._layout]
        blocks = [opts[d] for st in self._layout for d in st.block_decisions]
        return f"r{opts[0]}|c{'-'.join(widths)}|{'-'.join(blocks)}"

    def from_string(self, text: str) -> Arch:
        """Parse the canonical form; also accepts raw option indices ``2-0-1-...``."""
        if not isinstance(text, str):
            raise InvalidArchitecture(self.name, f"expected a string, got {type(text).__name__}")
        text = text.strip()
        if "|" not in text:
            return self._from_indices(text)
        parts = text.split("|")
        if len(parts) != 3:
            raise InvalidArchitecture(
                self.name, f"expected 3 '|'-separated parts (r..|c..|blocks), got {len(parts)} in {text!r}")
        res, widths, blocks = parts
        if not res.startswith("r"):
            raise InvalidArchitecture(self.name, f"resolution part {res!r} must start with 'r'", "resolution")
        if not widths.startswith("c"):
            raise InvalidArchitecture(self.name, f"width part {widths!r} must start with 'c'")
        width_tokens = widths[1:].split("-")
        block_tokens = blocks.split("-")
        if len(width_tokens) != len(self._layout):
            raise InvalidArchitecture(
                self.name, f"expected {len(self._layout)} stage widths, got {len(width_tokens)}")
        n_blocks = sum(st.num_blocks for st in self._layout)
        if len(block_tokens) != n_blocks:
            raise InvalidArchitecture(self.name, f"expected {n_blocks} blocks, got {len(block_tokens)}")
        tokens: dict[int, str] = {0: res[1:]}
        for st, w in zip(self._layout, width_tokens):
            tokens[st.width_decision] = w
        block_ids = [d for st in self._layout for d in st.block_decisions]
        tokens.update(zip(block_ids, block_tokens))
        choices = []
        for i, decision in enumerate(self.decisions):
            if tokens[i] not in decision.options:
                raise InvalidArchitecture(
                    self.name, f"{tokens[i]!r} is not one of {', '.join(decision.options)}", decision.name)
            choices.append(decision.options.index(tokens[i]))
        return self.arch(choices)

    def _from_indices(self, text: str) -> Arch:
        tokens = text.split("-")
        if not all(t.isdigit() for t in tokens):
            raise InvalidArchitecture(
                self.name, f"malformed string {text!r}: expected 'r..|c..|blocks' or option indices 'i-j-...'")
        return self.arch([int(t) for t in tokens])

    # ---- network ----------------------------------------------------------------------
    def _build(self, arch: Arch, num_classes: int, input_size: int) -> "torch.nn.Module":  # noqa: F821
        from torch import nn

        from spaces.fbnetv2_blocks import ConvBNReLU, FBNetV2Net, InvertedResidual, Resize

        cfg = self.resolve(arch)
        resize = nn.Identity() if cfg.resolution == input_size else Resize(cfg.resolution)
        stem = ConvBNReLU(self.in_channels, self.stem_width, 3, self._preset.stem_stride)
        stages, cin = [], self.stem_width
        for st, width, blocks in zip(self._layout, cfg.widths, cfg.blocks):
            for b, block in enumerate(blocks):
                if block is None:  # skip: identity, legal because b > 0
                    continue
                stages.append(InvertedResidual(cin, width, block.kernel, block.expansion,
                                               st.stride if b == 0 else 1, residual=b > 0))
                cin = width
        head = ConvBNReLU(cin, self.head_width, 1)
        return FBNetV2Net(resize, stem, nn.Sequential(*stages), head, nn.Linear(self.head_width, num_classes))
