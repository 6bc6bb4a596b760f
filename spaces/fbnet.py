"""The FBNet space as HW-NAS-Bench defines it: 22 layers, 9 block choices each.

Macro-architecture (FBNet, Wu et al. 2019, Table 1; HW-NAS-Bench
``hw_nas_bench_api/fbnet_models/model_infer.py``): a 3x3 stem conv to 16
channels, seven stages of 1, 4, 4, 4, 4, 4, 1 searchable layers with widths 16,
24, 32, 64, 112, 184, 352 (the stride sits on each stage's first layer), a 1x1
header conv, global average pooling and a linear classifier.

Two stems, both taken from HW-NAS-Bench so that built networks match its tables:

* ``cifar`` (32x32, CIFAR-100): stem stride 1, stage strides 1,1,2,2,1,2,1
  (FBNet's second stage stride 2 -> 1) and a 1504-channel header. Total stride 8.
* ``imagenet`` (224x224): stem stride 2, stage strides 1,2,2,2,1,2,1 and the
  1984-channel header of FBNet. Total stride 32.

The ``skip`` choice is an identity only where input and output shapes agree. On
a stage's first layer (stride 2 and/or new width) HW-NAS-Bench's ``Skip`` module
becomes a 1x1 conv (carrying the stride) + BN + ReLU, and so does ours
(:class:`spaces.mobile_blocks.Skip`); the architecture stays valid and every
one of the 9^22 strings is a member of the space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spaces.arch import Arch, Decision
from spaces.base import Space
from spaces.errors import InvalidArchitecture


@dataclass(frozen=True)
class BlockSpec:
    """One of FBNet's candidate blocks; ``kernel == 0`` marks the skip."""

    name: str
    kernel: int = 0
    expansion: int = 0
    groups: int = 1

    @property
    def is_skip(self) -> bool:
        return self.kernel == 0


# Option order is HW-NAS-Bench's PRIMITIVES order: the index in ``op_idx_list``.
BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec("k3_e1", 3, 1, 1),
    BlockSpec("k3_e1_g2", 3, 1, 2),
    BlockSpec("k3_e3", 3, 3, 1),
    BlockSpec("k3_e6", 3, 6, 1),
    BlockSpec("k5_e1", 5, 1, 1),
    BlockSpec("k5_e1_g2", 5, 1, 2),
    BlockSpec("k5_e3", 5, 3, 1),
    BlockSpec("k5_e6", 5, 6, 1),
    BlockSpec("skip"),
)

STEM_CHANNELS = 16
STAGE_DEPTHS = (1, 4, 4, 4, 4, 4, 1)
STAGE_WIDTHS = (16, 24, 32, 64, 112, 184, 352)


@dataclass(frozen=True)
class StemConfig:
    """What the dataset changes: input size, strides, header width, classes."""

    input_size: int
    num_classes: int
    stem_stride: int
    stage_strides: tuple[int, ...]
    header_channels: int


STEMS: dict[str, StemConfig] = {
    "cifar": StemConfig(32, 100, 1, (1, 1, 2, 2, 1, 2, 1), 1504),
    "imagenet": StemConfig(224, 1000, 2, (1, 2, 2, 2, 1, 2, 1), 1984),
}


@dataclass(frozen=True)
class LayerSlot:
    """Shape of one searchable layer, fixed by the macro-architecture."""

    stage: int
    c_in: int
    c_out: int
    stride: int


class FBNetSpace(Space):
    """HW-NAS-Bench's FBNet space: 22 decisions x 9 blocks, 9^22 architectures.

    The string form is HW-NAS-Bench's / HELP's ``op_idx_list``: the 22 option
    indices joined by ``-`` (e.g. ``"7-8-1-...-5"``), so external tables join on it.
    """

    name = "fbnet"
    decisions = tuple(Decision(f"layer{i + 1}", tuple(b.name for b in BLOCKS))
                      for i in range(sum(STAGE_DEPTHS)))

    def __init__(self, stem: str = "cifar", in_channels: int = 3):
        if stem not in STEMS:
            raise InvalidArchitecture(self.name, f"unknown stem {stem!r}; expected one of {sorted(STEMS)}")
        if int(in_channels) < 1:
            raise InvalidArchitecture(self.name, f"in_channels must be at least 1, got {in_channels}")
        self.stem = stem
        self.stem_config = STEMS[stem]
        self.in_channels = int(in_channels)
        self.default_input_size = self.stem_config.input_size
        self.default_num_classes = self.stem_config.num_classes

    @property
    def key(self) -> str:
        return self.name if self.stem == "cifar" else f"{self.name}:{self.stem}"

    @classmethod
    def key_options(cls, key: str) -> dict[str, Any]:
        family, _, stem = key.strip().partition(":")
        if family != cls.name:
            raise InvalidArchitecture(cls.name, f"{key!r} is not a key of this space")
        return {"stem": stem} if stem else {}

    # ---- macro-architecture ---------------------------------------------------------
    @property
    def slots(self) -> tuple[LayerSlot, ...]:
        """Input/output width and stride of each of the 22 layers (for LUTs and checks)."""
        slots, c_in = [], STEM_CHANNELS
        for stage, (depth, width, stride) in enumerate(
                zip(STAGE_DEPTHS, STAGE_WIDTHS, self.stem_config.stage_strides)):
            for i in range(depth):
                slots.append(LayerSlot(stage, c_in, width, stride if i == 0 else 1))
                c_in = width
        return tuple(slots)

    def blocks(self, arch: Arch) -> list[BlockSpec]:
        """The chosen block of each layer."""
        self.validate(arch)
        return [BLOCKS[c] for c in arch.choices]

    # ---- string form ----------------------------------------------------------------
    def to_string(self, arch: Arch) -> str:
        self.validate(arch)
        return "-".join(str(c) for c in arch.choices)

    def from_string(self, text: str) -> Arch:
        if not isinstance(text, str):
            raise InvalidArchitecture(self.name, f"expected a string, got {type(text).__name__}")
        tokens = text.strip().split("-")
        if len(tokens) != len(self.decisions):
            raise InvalidArchitecture(
                self.name, f"expected {len(self.decisions)} '-'-separated op indices, "
                           f"got {len(tokens)} in {text!r}")
        for i, token in enumerate(tokens):
            if not (token.isascii() and token.isdigit()):
                raise InvalidArchitecture(
                    self.name, f"op index {token!r} is not a non-negative integer",
                    self.decisions[i].name)
        return self.arch([int(t) for t in tokens])

    # ---- network --------------------------------------------------------------------
    def _build(self, arch: Arch, num_classes: int, input_size: int) -> "torch.nn.Module":  # noqa: F821
        # Fully convolutional up to the global pool: input_size changes only the
        # feature-map sizes, not the module. torch is imported only here, so listing
        # and parsing the space stays fast.
        from spaces.fbnet_net import FBNet

        return FBNet(self.stem_config, self.slots, [BLOCKS[c] for c in arch.choices],
                     num_classes, self.in_channels)
