"""NAS-Bench-201 (the NATS-Bench topology space): 6 cell edges x 5 ops = 15,625 cells.

Decisions are the edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2 in the order of the
official string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; options are ``none,
skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``. ``index``/``from_index``
give the benchmark's own numbering (a bundled table, see
``spaces/data/make_nb201_index.py``) so external tables join on it.

Cost convention. ``cost`` counts MACs with ``FlopCounterMode`` (convolutions and the
linear layer; not pooling, BN, ReLU or additions) and all parameters including BN's
affine weights. NAS-Bench-201 published "FLOPs" the same way: its counter
(``get_model_infos`` in D-X-Y/AutoDL-Projects, ``lib/utils/flop_benchmark.py``, 2019)
sums the multiply-adds of Conv2d and Linear only -- pooling modules are hooked but
left out of the total -- and reports params / 1e6 including BN. The one difference:
it also counts the classifier's bias additions, so published FLOPs = our MACs +
``num_classes`` (10 at CIFAR-10, 1e-4 % of the smallest network). Had pooling been
counted (9 additions per output element of a 3x3 average), an all-``avg_pool_3x3``
cell would read about 15.5M instead of 7.78M -- the same as all-``none`` -- so the
convention matters for pooling-heavy cells. At 32x32 with 10 classes (C=16, N=5) the
space spans 7,783,040 MACs / 73,306 params (no conv in the cell) to 220,119,680 MACs /
1,531,546 params (all ``nor_conv_3x3``), exactly the benchmark's published range
7.78305M-220.11969M FLOPs and 0.073306M-1.531546M params.

The built network keeps the benchmark's dead computation: an op whose result only
feeds ``none`` edges still runs in torch (and is counted), although an exporter that
prunes unused values may drop it. Cells with no path of non-``none`` edges from input
to output (``is_disconnected``) output zeros; they have chance accuracy in the
benchmark and near-zero latency on some devices.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Sequence

import numpy as np

from spaces.arch import Arch, Decision
from spaces.base import Space
from spaces.errors import InvalidArchitecture

OP_NAMES: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_OPS = len(OP_NAMES)
SIZE = NUM_OPS ** len(EDGES)
_TOKEN = re.compile(r"^([A-Za-z0-9_]+)~(\d+)$")


def encode(choices: Sequence[int]) -> int:
    """Base-5 code of a cell, first decision most significant (the bundled table's unit)."""
    code = 0
    for choice in choices:
        code = code * NUM_OPS + int(choice)
    return code


def decode(code: int) -> tuple[int, ...]:
    """Inverse of :func:`encode`."""
    digits = []
    for _ in EDGES:
        code, digit = divmod(code, NUM_OPS)
        digits.append(digit)
    return tuple(reversed(digits))


@cache
def _index_table() -> tuple[np.ndarray, np.ndarray]:
    """(code of each official index, official index of each code), loaded once per process
    from package data (see ``spaces/data/make_nb201_index.py``)."""
    with resources.files("spaces").joinpath("data/nb201_index.npy").open("rb") as handle:
        table = np.load(handle, allow_pickle=False)
    if table.shape != (SIZE,):
        raise RuntimeError(f"spaces/data/nb201_index.npy has shape {table.shape}, expected ({SIZE},)")
    codes = table.astype(np.int64)
    index_of_code = np.full(SIZE, -1, dtype=np.int64)
    index_of_code[codes] = np.arange(SIZE)
    if (index_of_code < 0).any():
        raise RuntimeError("spaces/data/nb201_index.npy does not list every cell exactly once")
    return codes, index_of_code


class NB201Space(Space):
    """NAS-Bench-201 cell space; ``C``/``N``/``in_channels`` scale the built network
    (defaults are the benchmark's), never the cell, so indices stay the official ones."""

    name = "nb201"
    decisions = tuple(Decision(f"edge_{t}<-{s}", OP_NAMES) for t, s in EDGES)

    def __init__(self, C: int = 16, N: int = 5, in_channels: int = 3) -> None:
        for label, value in (("C", C), ("N", N), ("in_channels", in_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArchitecture(self.name, f"{label} must be a positive integer, got {value!r}")
        self.C, self.N, self.in_channels = C, N, in_channels

    @property
    def key(self) -> str:
        if (self.C, self.N, self.in_channels) == (16, 5, 3):
            return self.name
        return f"{self.name}(C={self.C},N={self.N},in_channels={self.in_channels})"

    # ---- string form ------------------------------------------------------------
    def ops(self, arch: Arch) -> tuple[str, ...]:
        """Op name of each edge, in decision order."""
        self.validate(arch)
        return tuple(OP_NAMES[c] for c in arch.choices)

    def to_string(self, arch: Arch) -> str:
        names = iter(self.ops(arch))
        nodes = ["|" + "|".join(f"{next(names)}~{src}" for src in range(target)) + "|"
                 for target in range(1, 4)]
        return "+".join(nodes)

    def from_string(self, text: str) -> Arch:
        if not isinstance(text, str):
            raise InvalidArchitecture(self.name, f"expected a cell string, got {type(text).__name__}")
        groups = text.strip().split("+")
        if len(groups) != 3:
            raise InvalidArchitecture(
                self.name, f"expected 3 nodes joined by '+', got {len(groups)} in {text!r}")
        choices: list[int] = []
        for target, group in enumerate(groups, start=1):
            if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
                raise InvalidArchitecture(
                    self.name, f"node {target} must be written as |op~i|...|, got {group!r}")
            tokens = group[1:-1].split("|")
            if len(tokens) != target:
                raise InvalidArchitecture(
                    self.name, f"node {target} must have {target} incoming edge(s), got {len(tokens)} in {group!r}")
            for source, token in enumerate(tokens):
                choices.append(self._parse_edge(token, target, source))
        return self.arch(choices)

    def _parse_edge(self, token: str, target: int, source: int) -> int:
        match = _TOKEN.match(token)
        if match is None:
            raise InvalidArchitecture(self.name, f"edge {token!r} of node {target} is not of the form op~i")
        op, src = match.group(1), int(match.group(2))
        if op not in OP_NAMES:
            raise InvalidArchitecture(
                self.name, f"unknown op {op!r} on edge {target}<-{source}; known: {', '.join(OP_NAMES)}")
        if src != source:
            raise InvalidArchitecture(
                self.name, f"input {source + 1} of node {target} must come from node {source} "
                           f"('~{source}'), got {token!r}")
        return OP_NAMES.index(op)

    # ---- official index -----------------------------------------------------------
    def index(self, arch: Arch) -> int:
        """The cell's NAS-Bench-201 / NATS-Bench (tss) index, 0..15624."""
        self.validate(arch)
        return int(_index_table()[1][encode(arch.choices)])

    def from_index(self, index: int) -> Arch:
        """The cell the benchmark numbers ``index``."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < SIZE:
            raise InvalidArchitecture(self.name, f"index must be an integer in 0..{SIZE - 1}, got {index!r}")
        return Arch(self.key, decode(int(_index_table()[0][int(index)])))

    # ---- graph properties -----------------------------------------------------------
    def is_disconnected(self, arch: Arch) -> bool:
        """True when no path of non-``none`` edges joins the input to the output, so
        the cell outputs zeros whatever its input (chance accuracy, ~0 ms on devices
        whose compilers fold the constant network)."""
        reached = {0}
        for (target, source), choice in zip(EDGES, self.validate(arch).choices):
            if choice != 0 and source in reached:  # EDGES is topologically ordered
                reached.add(target)
        return 3 not in reached

    # ---- network --------------------------------------------------------------------
    def _build(self, arch: Arch, num_classes: int, input_size: int) -> "torch.nn.Module":  # noqa: F821
        from spaces.nb201_ops import NB201Network

        if input_size < 4:
            raise InvalidArchitecture(
                self.name, f"input_size must be at least 4 (two stride-2 reductions), got {input_size}")
        return NB201Network(self.ops(arch), C=self.C, N=self.N, num_classes=num_classes,
                            in_channels=self.in_channels)
