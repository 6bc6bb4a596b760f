"""The NAO/ENAS micro cell space (Luo et al. 2018, "Neural Architecture Optimization").

An architecture is a normal cell and a reduction cell. Each cell has B nodes; node i
sums two branches, and each branch picks an input and an op:

- input: 0 = the output of the cell before the previous one, 1 = the previous cell's
  output, 2 + j = node j of this cell (j < i), so node i has i + 2 options;
- op, in NAO_pytorch's weight-sharing / ENAS order: 0 sep_conv_3x3, 1 sep_conv_5x5,
  2 avg_pool_3x3, 3 max_pool_3x3, 4 identity.

Decisions, in order: for cell in (normal, reduce), node i in 0..B-1, branch in (x, y):
input, then op -- 4B per cell, 8B in all. That order *is* NAO's flat integer list
``[x_in, x_op, y_in, y_op] * B`` (normal then reduce), so ``arch.choices`` equals
NAO_pytorch's arch list and the string form is NAO's own (``"0 2 1 0 ..."``), the one
its ``NASNetworkCIFAR(arch=...)`` parses.

NAO's token sequence (``utils.parse_arch_to_seq``): token 0 is reserved for the
controller's SOS/EOS; an input index k becomes k + 1 (1..B+1) and an op j becomes
j + B + 2 (B+2..B+6), so inputs and ops share one vocabulary of B + 7 tokens. At B = 5
this is NAO's exact mapping (op offset 7, vocabulary 12, sequence length 40); NAO
hard-codes the 7, which would collide with input tokens for B > 5, hence B + 2.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple, Sequence

import numpy as np

from spaces.arch import Arch, Decision
from spaces.base import Space, as_rng
from spaces.errors import InvalidArchitecture

OPS: tuple[str, ...] = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
CELLS: tuple[str, ...] = ("normal", "reduce")
BRANCHES: tuple[str, ...] = ("x", "y")
# Short op names for ``describe``; the machine form stays NAO's integers.
_SHORT = {"sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "avg_pool_3x3": "avg3",
          "max_pool_3x3": "max3", "identity": "id"}


class Node(NamedTuple):
    """One node of a cell, in NAO's order: (x input, x op, y input, y op), op as an index."""

    x_input: int
    x_op: int
    y_input: int
    y_op: int


def _input_names(node: int) -> tuple[str, ...]:
    """Option names for node ``node``'s inputs: the two cell inputs, then earlier nodes."""
    return ("c_{k-2}", "c_{k-1}") + tuple(f"node{j}" for j in range(node))


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArchitecture("nao", f"space parameter {name} must be a positive integer, got {value!r}")
    return int(value)


class NAOSpace(Space):
    """NAO/ENAS micro cell: B nodes x 2 branches x (input, op), normal + reduction cell.

    ``N`` is the number of normal cells per stage (3 stages, 2 reduction cells between
    them); ``C`` the first stage's channels. Small defaults keep a CPU forward quick.
    """

    name = "nao"
    default_input_size = 32
    default_num_classes = 10
    stem_multiplier = 3  # stem conv outputs 3C, as in NAO/DARTS CIFAR networks

    def __init__(self, B: int = 5, C: int = 16, N: int = 1, in_channels: int = 3):
        self.B = _positive("B", B)
        self.C = _positive("C", C)
        self.N = _positive("N", N)
        self.in_channels = _positive("in_channels", in_channels)
        self.decisions = tuple(
            Decision(f"{cell}.node{i}.{branch}.{part}", _input_names(i) if part == "input" else OPS)
            for cell in CELLS for i in range(self.B) for branch in BRANCHES for part in ("input", "op")
        )

    @property
    def key(self) -> str:
        """``"nao"`` for the defaults, else ``"nao:B5:C16:N1"`` (``":in1"`` added when the
        input has other than 3 channels), so the store never mixes two configurations."""
        if (self.B, self.C, self.N, self.in_channels) == (5, 16, 1, 3):
            return self.name
        key = f"{self.name}:B{self.B}:C{self.C}:N{self.N}"
        return key if self.in_channels == 3 else f"{key}:in{self.in_channels}"

    @classmethod
    def key_options(cls, key: str) -> dict[str, Any]:
        """``nao:B5:C16:N1[:in1]`` -> B, C, N, in_channels (the inverse of :attr:`key`)."""
        family, *parts = key.strip().split(":")
        names = {"B": "B", "C": "C", "N": "N", "in": "in_channels"}
        options: dict[str, Any] = {}
        for part in parts:
            label = part.rstrip("0123456789")
            if family != cls.name or label not in names or label == part:
                raise InvalidArchitecture(cls.name, f"{key!r} is not a key of this space")
            options[names[label]] = int(part[len(label):])
        return options

    # ---- structure ------------------------------------------------------------------
    def cells(self, arch: Arch) -> tuple[tuple[Node, ...], tuple[Node, ...]]:
        """(normal, reduce) as tuples of :class:`Node`."""
        c = self.validate(arch).choices

        def cell(start: int) -> tuple[Node, ...]:
            return tuple(Node(*c[start + 4 * i: start + 4 * i + 4]) for i in range(self.B))

        return cell(0), cell(4 * self.B)

    def from_cells(self, normal: "Sequence[Sequence[int]]", reduce: "Sequence[Sequence[int]]") -> Arch:
        """Inverse of :meth:`cells`; checks like :meth:`from_string`."""
        try:
            values = [int(v) for cell in (normal, reduce) for node in cell for v in node]
        except (TypeError, ValueError):
            raise InvalidArchitecture(self.name, "cells must hold nodes of 4 integers") from None
        return self._from_nao_ints(values, "cells")

    # ---- NAO's integer string -------------------------------------------------------
    def to_string(self, arch: Arch) -> str:
        """NAO's form: 8B space-separated integers, normal cell then reduction cell,
        each node ``x_input x_op y_input y_op``."""
        return " ".join(map(str, self.validate(arch).choices))

    def from_string(self, text: str) -> Arch:
        if not isinstance(text, str):
            raise InvalidArchitecture(self.name, f"expected a string, got {type(text).__name__}")
        values = []
        for part in text.split():
            try:
                values.append(int(part))
            except ValueError:
                raise InvalidArchitecture(self.name, f"{part!r} is not an integer in {text!r}") from None
        return self._from_nao_ints(values, "string")

    def _from_nao_ints(self, values: list[int], what: str) -> Arch:
        """Check a flat NAO integer list with a message naming cell, node and branch."""
        if len(values) != len(self.decisions):
            raise InvalidArchitecture(
                self.name, f"a {what} of B={self.B} needs {len(self.decisions)} integers "
                           f"(2 cells x {self.B} nodes x 4), got {len(values)}")
        for k, value in enumerate(values):
            cell, rest = divmod(k, 4 * self.B)
            node, slot = divmod(rest, 4)
            where = f"{CELLS[cell]} cell, node {node}, branch {BRANCHES[slot // 2]}"
            if slot % 2 == 0 and not 0 <= value < node + 2:
                raise InvalidArchitecture(
                    self.name, f"{where}: input {value} is not before the node (allowed 0..{node + 1})",
                    self.decisions[k].name)
            if slot % 2 == 1 and not 0 <= value < len(OPS):
                raise InvalidArchitecture(
                    self.name, f"{where}: unknown op {value} (ops are 0..{len(OPS) - 1}: {', '.join(OPS)})",
                    self.decisions[k].name)
        return self.arch(values)

    def describe(self, arch: Arch) -> str:
        """Readable form for logs, e.g. ``normal: [0 sep3 + 1 id] ... ; reduce: ...``;
        machine round trips use :meth:`to_string`."""
        parts = []
        for label, cell in zip(CELLS, self.cells(arch)):
            nodes = " ".join(f"[{n.x_input} {_SHORT[OPS[n.x_op]]} + {n.y_input} {_SHORT[OPS[n.y_op]]}]"
                             for n in cell)
            parts.append(f"{label}: {nodes}")
        return " ; ".join(parts)

    # ---- NAO's token sequence -------------------------------------------------------
    @property
    def op_token_offset(self) -> int:
        """First op token: after SOS/EOS (0) and the B + 1 input tokens; 7 at B = 5, as in NAO."""
        return self.B + 2

    @property
    def nao_vocab_size(self) -> int:
        """Tokens 0..B+6: 12 at B = 5, NAO's encoder/decoder vocabulary."""
        return self.op_token_offset + len(OPS)

    def to_tokens(self, arch: Arch) -> list[int]:
        """NAO's encoder sequence (``parse_arch_to_seq`` of both cells): input k -> k + 1,
        op j -> j + B + 2. Not the generic :meth:`tokens` (one block per decision)."""
        offsets = (1, self.op_token_offset)
        return [v + offsets[k % 2] for k, v in enumerate(self.validate(arch).choices)]

    to_nao_tokens = to_tokens

    def from_nao_tokens(self, tokens: "list[int]") -> Arch:
        """Inverse of :meth:`to_tokens` (NAO's ``parse_seq_to_arch``), e.g. for a decoder's
        output. Named apart from the base ``from_tokens``, which inverts the generic
        :meth:`tokens` and must keep doing so for every space."""
        values = [int(t) for t in tokens]
        if len(values) != len(self.decisions):
            raise InvalidArchitecture(self.name, f"expected {len(self.decisions)} NAO tokens, got {len(values)}")
        ops = range(self.op_token_offset, self.nao_vocab_size)
        for k, t in enumerate(values):
            if k % 2 == 0 and not 1 <= t < self.op_token_offset:
                raise InvalidArchitecture(
                    self.name, f"token {t} at position {k} should be an input token "
                               f"(1..{self.op_token_offset - 1})", self.decisions[k].name)
            if k % 2 == 1 and t not in ops:
                raise InvalidArchitecture(
                    self.name, f"token {t} at position {k} should be an op token "
                               f"({ops.start}..{ops.stop - 1})", self.decisions[k].name)
        offsets = (1, self.op_token_offset)
        return self._from_nao_ints([t - offsets[k % 2] for k, t in enumerate(values)], "token sequence")

    # ---- branch-swap symmetry -------------------------------------------------------
    def _swappable(self, arch: Arch) -> list[int]:
        """Start (in ``choices``) of every node whose two branches differ: swapping such
        a node gives another encoding of the same network; swapping the others changes nothing."""
        c = self.validate(arch).choices
        return [s for s in range(0, len(c), 4) if c[s:s + 2] != c[s + 2:s + 4]]

    @staticmethod
    def _swap(choices: tuple[int, ...], starts: "tuple[int, ...] | list[int]") -> tuple[int, ...]:
        out = list(choices)
        for s in starts:
            out[s:s + 4] = choices[s + 2:s + 4] + choices[s:s + 2]
        return tuple(out)

    def symmetric_variants(self, arch: Arch, max_swaps: int | None = None) -> list[Arch]:
        """Every *other* encoding of the same network reachable by swapping the two branches
        of up to ``max_swaps`` nodes (all of them when None: 2^s - 1 archs for s swappable
        nodes, at most 2^(2B) - 1). All are distinct; ``arch`` itself is excluded.

        NAO augments its encoder's training data with such swaps (one node per cell);
        ``max_swaps=1`` gives the single-swap ones, ``sample_symmetric`` one at random.
        """
        starts = self._swappable(arch)
        limit = len(starts) if max_swaps is None else min(max_swaps, len(starts))
        return [Arch(self.key, self._swap(arch.choices, combo))
                for r in range(1, limit + 1) for combo in itertools.combinations(starts, r)]

    def sample_symmetric(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        """NAO's augmentation: swap the branches of one random node in each cell
        (possibly a node whose branches are equal, leaving that cell unchanged)."""
        self.validate(arch)
        gen = as_rng(rng)
        starts = [cell * 4 * self.B + 4 * int(gen.integers(self.B)) for cell in range(2)]
        return Arch(self.key, self._swap(arch.choices, starts))

    def canonical(self, arch: Arch) -> Arch:
        """The one representative of ``arch``'s swap class: each node's branches ordered
        so that (x input, x op) <= (y input, y op). Use it to deduplicate architectures."""
        c = self.validate(arch).choices
        return Arch(self.key, self._swap(c, [s for s in range(0, len(c), 4) if c[s:s + 2] > c[s + 2:s + 4]]))

    # ---- network --------------------------------------------------------------------
    def _build(self, arch: Arch, num_classes: int, input_size: int) -> "torch.nn.Module":  # noqa: F821
        from spaces.nao_ops import NAONetwork

        normal, reduce = (
            [(n.x_input, OPS[n.x_op], n.y_input, OPS[n.y_op]) for n in cell] for cell in self.cells(arch)
        )
        return NAONetwork(normal, reduce, self.C, self.N, self.in_channels, num_classes, self.stem_multiplier)
