"""The DARTS cell space (Liu et al., ICLR 2019, "DARTS: Differentiable Architecture Search").

An architecture is a normal cell and a reduction cell. Each cell has two inputs,
c_{k-2} and c_{k-1} (the outputs of the two previous cells), and four intermediate
nodes; node i sums two edges, each an (input, op) pair:

- input: 0 = c_{k-2}, 1 = c_{k-1}, 2 + j = node j of this cell (j < i), so node i
  has i + 2 options for each of its two inputs;
- op, in DARTS' ``genotypes.PRIMITIVES`` order without ``none``: 0 max_pool_3x3,
  1 avg_pool_3x3, 2 skip_connect, 3 sep_conv_3x3, 4 sep_conv_5x5, 5 dil_conv_3x3,
  6 dil_conv_5x5.

The zero op ``none`` is not in the discrete space: DARTS' genotype derivation excludes
it, so no derived architecture contains it. It exists only as an op in
:mod:`spaces.darts_ops` (for a later continuous-relaxation, mixed-op supernet).

The two inputs of a node may be the same state (the node is then ``op1(x) + op2(x)``).
DARTS' derivation keeps the two strongest edges *from distinct nodes*, so a derived
genotype never does that, but the space does not forbid it: every decision stays
independent (``size`` is the plain product, ``define``-based samplers such as Optuna's
never draw an invalid trial), as in every other space here. :meth:`DartsSpace.repeats_input`
tells the architectures DARTS itself could not derive.

Decisions, in order: for cell in (normal, reduce), node i in 0..3: ``input1, op1,
input2, op2`` (e.g. ``normal.node0.input1``) -- 16 per cell, 32 in all, the order of
the genotype's (op, input) pairs. The cell output is always the concatenation of the
four nodes (``concat = [2, 3, 4, 5]``, channel multiplier 4). The two edges of a node
are ordered (DARTS lists them strongest first, e.g. ``('skip_connect', 2),
('max_pool_3x3', 1)``), so swapping them gives another architecture of the same
network. ``size`` is prod_i ((i+2) * 7)^2 = 8.3e10 cells per cell type, 6.9e21
architectures; the ~1.08e18 usually quoted for DARTS counts distinct inputs only and
unordered edges: (prod_i C(i+2, 2) * 7^2)^2.

String form: the ``repr`` of DARTS' ``genotypes.Genotype`` namedtuple, exactly,
e.g. ``Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...],
normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])``. On input the
concats may also be ``range(2, 6)`` (what DARTS' search prints); the text is read with
:mod:`ast`, never evaluated.

Network (:mod:`spaces.darts_ops`): DARTS' CIFAR evaluation network -- stem conv-BN to
3C, ``layers`` cells with reductions at ``layers // 3`` and ``2 * layers // 3``, global
average pooling, linear -- without auxiliary head or drop path; pooling ops are not
followed by BN (that BN belongs to the search supernet's mixed op). Costs count conv
and linear MACs only (see :class:`spaces.base.Cost`); at ``C=36, layers=20`` (DARTS'
CIFAR-10 setting) DARTS-V2 has 3,349,342 parameters: the paper's 3.3M (DARTS' ``train.py``
logs 3.349342 MB, auxiliary head excluded).
"""

from __future__ import annotations

import ast
from typing import Any, NamedTuple

from spaces.arch import Arch, Decision
from spaces.base import Space, check_int
from spaces.errors import InvalidArchitecture

#: DARTS' ``genotypes.PRIMITIVES``, ``none`` included (the mixed op's candidates).
PRIMITIVES: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                               "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
#: The ops of the discrete space, in PRIMITIVES order: every op but ``none``.
OPS: tuple[str, ...] = PRIMITIVES[1:]
CELLS: tuple[str, ...] = ("normal", "reduce")
NUM_NODES = 4
CONCAT: list[int] = list(range(2, 2 + NUM_NODES))
FIELDS: tuple[str, ...] = ("normal", "normal_concat", "reduce", "reduce_concat")
_EXPECTED = "Genotype(normal=[...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])"


class Genotype(NamedTuple):
    """DARTS' genotype: per cell, 8 (op, input) pairs (two per node) and the concatenated
    nodes. Field names and order are DARTS', so its ``repr`` is DARTS' string form."""

    normal: list[tuple[str, int]]
    normal_concat: list[int]
    reduce: list[tuple[str, int]]
    reduce_concat: list[int]


def _input_names(node: int) -> tuple[str, ...]:
    """Option names for node ``node``'s inputs: the two cell inputs, then earlier nodes."""
    return ("c_{k-2}", "c_{k-1}") + tuple(f"node{j}" for j in range(node))


def _short(text: str, limit: int = 60) -> str:
    """``text`` cut for an error message (a genotype string runs to ~400 characters)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


class DartsSpace(Space):
    """DARTS cell space: 4 nodes x 2 edges x (input, op), normal + reduction cell.

    ``C`` is the first cells' channel count (the stem outputs 3C), ``layers`` the number
    of cells. The small defaults (8, 5) train on a CPU; DARTS' CIFAR-10 network is
    ``C=36, layers=20``.
    """

    name = "darts"
    default_input_size = 32
    default_num_classes = 10
    stem_multiplier = 3  # stem conv outputs 3C, as DARTS' CIFAR network
    decisions = tuple(
        Decision(f"{cell}.node{i}.{part}{edge}", _input_names(i) if part == "input" else OPS)
        for cell in CELLS for i in range(NUM_NODES) for edge in (1, 2) for part in ("input", "op")
    )

    def __init__(self, C: int = 8, layers: int = 5, in_channels: int = 3) -> None:
        self.C = check_int("darts option C", C, 1, 1024)
        # Fewer than 3 cells would put a reduction first (layers // 3 == 0).
        self.layers = check_int("darts option layers", layers, 3, 100)
        self.in_channels = check_int("darts option in_channels", in_channels, 1)

    @property
    def key(self) -> str:
        if (self.C, self.layers, self.in_channels) == (8, 5, 3):
            return self.name
        return f"{self.name}(C={self.C},layers={self.layers},in_channels={self.in_channels})"

    @classmethod
    def key_options(cls, key: str) -> dict[str, Any]:
        """The base ``darts(k=v,...)`` reading, refusing names the constructor lacks (they
        would otherwise surface as a TypeError)."""
        options = super().key_options(key)
        if not set(options) <= {"C", "layers", "in_channels"}:
            raise InvalidArchitecture(cls.name, f"{key!r} is not a key of this space")
        return options

    @property
    def reduction_layers(self) -> tuple[int, int]:
        """Indices of the two reduction cells, where DARTS puts them."""
        return self.layers // 3, 2 * self.layers // 3

    def repeats_input(self, arch: Arch) -> bool:
        """True when some node reads the same state through both its edges: legal here,
        but never the outcome of DARTS' derivation (it keeps edges from distinct nodes)."""
        c = self.validate(arch).choices
        return any(c[k] == c[k + 2] for k in range(0, len(c), 4))

    # ---- genotype -----------------------------------------------------------------------
    def genotype(self, arch: Arch) -> Genotype:
        """The architecture as DARTS' ``Genotype`` (lists of (op name, input index))."""
        c = self.validate(arch).choices
        half = len(c) // 2

        def cell(start: int) -> list[tuple[str, int]]:
            return [(OPS[c[k + 1]], c[k]) for k in range(start, start + half, 2)]

        return Genotype(cell(0), list(CONCAT), cell(half), list(CONCAT))

    def from_genotype(self, genotype: Any) -> Arch:
        """Inverse of :meth:`genotype`; takes DARTS' own namedtuple too (concats may be ranges)."""
        missing = [f for f in FIELDS if not hasattr(genotype, f)]
        if missing:
            raise InvalidArchitecture(self.name, f"a genotype needs the fields {', '.join(FIELDS)}; "
                                                 f"{', '.join(missing)} missing")
        return self._from_fields({f: getattr(genotype, f) for f in FIELDS})

    def to_string(self, arch: Arch) -> str:
        """DARTS' form: the ``repr`` of its ``Genotype`` namedtuple."""
        return repr(self.genotype(arch))

    def from_string(self, text: str) -> Arch:
        if not isinstance(text, str):
            raise InvalidArchitecture(self.name, f"expected a genotype string, got {type(text).__name__}")
        return self._from_fields(self._parse(text))

    def _parse(self, text: str) -> dict[str, object]:
        """``Genotype(...)`` -> its four fields as Python values, read from the syntax tree
        (literals and ``range(...)`` only, so nothing in the text runs)."""
        malformed = InvalidArchitecture(self.name, f"expected {_EXPECTED}, got {_short(text.strip())!r}")
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            raise malformed from None
        func = getattr(tree, "func", None)
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if not isinstance(tree, ast.Call) or called != "Genotype" or len(tree.args) > len(FIELDS):
            raise malformed
        nodes = dict(zip(FIELDS, tree.args))
        for keyword in tree.keywords:
            if keyword.arg is None:  # Genotype(**fields)
                raise malformed
            if keyword.arg not in FIELDS:
                raise InvalidArchitecture(self.name, f"unknown genotype field {keyword.arg!r}; "
                                                     f"the fields are {', '.join(FIELDS)}")
            if keyword.arg in nodes:
                raise InvalidArchitecture(self.name, f"genotype field {keyword.arg!r} is given twice")
            nodes[keyword.arg] = keyword.value
        missing = [f for f in FIELDS if f not in nodes]
        if missing:
            raise InvalidArchitecture(self.name, f"genotype field(s) {', '.join(missing)} missing in "
                                                 f"{_short(text.strip())!r}")
        return {f: self._literal(f, nodes[f]) for f in FIELDS}

    def _literal(self, field: str, node: ast.expr) -> object:
        """One field's value: a literal, or ``range(a, b)`` for a concat."""
        try:
            if (field.endswith("_concat") and isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "range" and not node.keywords):
                return range(*(ast.literal_eval(a) for a in node.args))
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise InvalidArchitecture(self.name, f"genotype field {field} is not a literal: "
                                                 f"{_short(ast.unparse(node))!r}") from None

    def _from_fields(self, fields: dict[str, object]) -> Arch:
        """Check the four genotype fields with messages naming cell, node and edge."""
        choices: list[int] = []
        for cell in CELLS:
            choices += self._cell_choices(cell, fields[cell])
            concat = fields[f"{cell}_concat"]
            # Compare a range as a range: list() of range(10**18) would fill memory.
            if not (concat == range(2, 2 + NUM_NODES)
                    or (isinstance(concat, (list, tuple)) and list(concat) == CONCAT)):
                raise InvalidArchitecture(self.name, f"{cell}_concat must be {CONCAT} (a cell outputs all "
                                                     f"{NUM_NODES} nodes), got {_short(repr(concat))}")
        return self.arch(choices)

    def _cell_choices(self, cell: str, pairs: object) -> list[int]:
        """One cell's 8 (op, input) pairs -> its 16 choices (input, op per edge)."""
        if not isinstance(pairs, (list, tuple)) or len(pairs) != 2 * NUM_NODES:
            got = f"{len(pairs)} pairs" if isinstance(pairs, (list, tuple)) else type(pairs).__name__
            raise InvalidArchitecture(self.name, f"{cell} must be a list of {2 * NUM_NODES} (op, input) "
                                                 f"pairs, two per node, got {got}")
        choices: list[int] = []
        for k, pair in enumerate(pairs):
            node, edge = divmod(k, 2)
            where = f"{cell} cell, node {node}, edge {edge + 1}"
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)
                    and isinstance(pair[1], int) and not isinstance(pair[1], bool)):
                raise InvalidArchitecture(self.name, f"{where}: expected an (op, input) pair such as "
                                                     f"('sep_conv_3x3', 0), got {_short(repr(pair))}")
            op, source = pair
            if op == "none":
                raise InvalidArchitecture(self.name, f"{where}: the zero op 'none' is not in this space "
                                                     f"(DARTS' derivation never picks it)",
                                          f"{cell}.node{node}.op{edge + 1}")
            if op not in OPS:
                raise InvalidArchitecture(self.name, f"{where}: unknown op {_short(op)!r}; known: "
                                                     f"{', '.join(OPS)}", f"{cell}.node{node}.op{edge + 1}")
            if not 0 <= source < node + 2:
                raise InvalidArchitecture(self.name, f"{where}: input {source} is not before the node "
                                                     f"(allowed 0..{node + 1})",
                                          f"{cell}.node{node}.input{edge + 1}")
            choices += [source, OPS.index(op)]
        return choices

    # ---- network --------------------------------------------------------------------
    def _build(self, arch: Arch, num_classes: int, input_size: int) -> "torch.nn.Module":  # noqa: F821
        from spaces.darts_ops import DartsNetwork

        genotype = self.genotype(arch)
        return DartsNetwork(genotype.normal, genotype.reduce, self.C, self.layers, self.in_channels,
                            num_classes, self.stem_multiplier)
