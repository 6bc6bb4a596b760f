"""TopoNAS on the DARTS space: explicit topology variables, decoupled from op selection.

What the abstract (the seed "TopoNAS", read from its abstract only; the paper itself was not
available) states:

* differentiable NAS couples operations and topology during search and derives the topology
  by a hand-crafted rule (DARTS: the two strongest edges of a node);
* TopoNAS introduces "a set of topological variables and a combinatorial probabilistic
  distribution to explicitly indicate the target topology", decoupling operation selection
  from topology;
* "a passive-aggressive regularization to suppress invalid topology within supernet";
* the topology variables are learnt jointly with the op variables and the supernet weights
  and apply to DARTS variants (DARTS, GDAS, ...);
* CIFAR-10: +0.16% over DARTS with 40% fewer parameters, or +0.35% at similar size.

What is implemented here:

* **Topology variables.** Per cell type (normal, reduce) and per node ``j`` of the DARTS
  cell, a logit vector ``beta_j`` over the node's candidate topologies, i.e. the subsets of
  its ``j + 2`` predecessors; ``softmax(beta_j)`` is the combinatorial distribution.
  ``mode="fixed"`` (default): the subsets of exactly ``k`` predecessors (DARTS' ``k = 2``,
  so ``C(j + 2, 2)`` = 1, 3, 6, 10 topologies for nodes 0..3). ``mode="free"``: every
  subset, the empty one and those above ``max_in`` included -- these are the *invalid*
  topologies the supernet can represent and the regulariser suppresses.
* **Decoupling.** The op logits stay DARTS' alphas (``[14 edges, 8 ops]`` per cell type).
  Edge ``(j, i)`` gets the mixture weight ``P(i in S_j) * softmax(alpha_e[ops])_o``: the
  marginal of the topology distribution times the op distribution. The op softmax runs over
  the 7 non-``none`` ops only (the alphas' ``none`` column is unused): whether an edge
  exists is the topology's business, so ``none`` would be a second, coupled encoding of it.
  The ``none`` column of the mixture holds ``1 - P(i in S_j)``, so every row sums to 1 (the
  forward ignores ``none``; ``decision_probs`` reads ``1 - w[e, none]`` as the edge's
  strength, i.e. the marginal, for the latency term).
* **GDAS on top.** One topology per node (Gumbel straight-through over the subsets) and one
  op per edge (over the 7 ops): the edges outside the sampled subset get exactly 0.0 in
  every op column, so exactly ``|S_j|`` edges of node ``j`` run (``k`` in fixed mode), each
  one op; the gradient reaches ``beta`` through the straight-through one-hot.
* **Passive-aggressive regularisation** (my reading). Per node, the hinge loss
  ``l_j = relu(q_j - margin)``, ``q_j`` the probability of the node's invalid topologies,
  computed with the *valid* topologies' logits detached; the penalty is
  ``reg_weight * sum_j tau_j * l_j`` with ``tau_j = min(C, l_j / ||grad_beta l_j||^2)``
  held constant (``||grad||^2 = (1 - q_j)^2 sum_{s invalid} p_s^2`` in closed form). This is
  Crammer et al.'s passive-aggressive update (PA-I, ``C = aggressiveness``) carried over to a
  loss term: its gradient ``tau_j * grad l_j`` is, for an SGD step of 1, the smallest change
  of ``beta_j`` that zeroes the linearised violation.
  *Passive*: while ``q_j <= margin`` the term and its gradient are exactly zero, and the
  valid topologies' logits never get a gradient from it -- it does not take sides among
  valid topologies, which stay the validation loss's call. *Aggressive*: once violated, every
  invalid logit is pushed down (``d/d beta_s = tau_j p_s (1 - q_j) > 0``) with a step scaled
  to remove the violation, so the push does not fade as the invalid mass or the softmax's
  gradient shrinks (a plain hinge's gradient is ``p_s (1 - q_j)``, vanishing with ``p_s``).
  In fixed mode every topology is valid and the term is identically 0. The abstract gives
  only the name and the purpose ("suppress invalid topology within supernet"); the
  paper's actual form may differ.
* **Derivation.** Per node the most probable topology and, for each of its inputs, the
  best non-``none`` op; the two edges are listed strongest op first (ties: lower input),
  as DARTS does. That is a valid ``spaces.darts`` architecture (two distinct, earlier
  inputs per node) in fixed mode with ``k = 2``. The DARTS space cannot express an in-degree
  other than 2, so in free mode (or fixed ``k != 2``) :meth:`TopoNAS.derive` returns the best
  2-input topology (the most probable subset of size 2; with ``k != 2`` in fixed mode, where
  there is none, the two inputs with the largest marginals), and
  :meth:`TopoNAS.derive_cells` the free-topology cells themselves (the most probable *valid*
  subset per node, genotype-like lists) for reporting. A space whose nodes take any number
  of inputs is a later step.

Guessed or simplified: the regulariser's exact form (above) and its settings
(``reg_weight=1``, ``margin=0``, ``aggressiveness=100``: nothing tuned); the ``none`` column
dropped from the op distribution; the topology logits' initialisation (``1e-3 * randn``,
as DARTS' alphas: near-uniform over subsets) and optimiser (the alphas' Adam, same learning
rate and weight decay); the size-2 fallback of free-mode derivation; DARTS space only (the
nb201 supernet sums all edges of a node, so its topology would need its own candidates).
Not reproduced: the paper's CIFAR-10 and ImageNet results; the tests check the mechanics
(distributions, mixtures, regulariser, derivations, which edges GDAS runs) on a tiny
supernet, not that the searched cells are better.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from hwnas.oneshot.base import NoSupernet
from hwnas.oneshot.darts import NONE, NUM_EDGES, DartsSupernet, edge_index
from hwnas.oneshot.differentiable import gumbel_straight_through
from spaces import Arch
from spaces.core.errors import InvalidOption
from spaces.darts import CELLS, NUM_NODES, OPS, PRIMITIVES

MODES = ("fixed", "free")
assert NONE == 0 and PRIMITIVES[1:] == OPS  # the mixture's columns: none, then the ops

Subset = tuple[int, ...]
#: A derived cell with free topology: per node, its (op name, input) edges.
Cell = list[list[tuple[str, int]]]


@dataclass(frozen=True)
class TopologyConfig:
    """TopoNAS' topology variables: ``mode="fixed"`` (subsets of exactly ``k`` inputs; all
    valid) or ``"free"`` (every subset; valid: ``1 <= size <= max_in``, ``max_in`` None = all
    predecessors); the passive-aggressive regulariser ``reg_weight * sum tau * relu(q -
    margin)``, ``tau = min(aggressiveness, l / ||grad l||^2)`` (module docstring)."""

    mode: str = "fixed"
    k: int = 2
    max_in: int | None = None
    reg_weight: float = 1.0
    margin: float = 0.0
    aggressiveness: float = 100.0  # PA-I's C: the cap on the step scale tau

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidOption(f"unknown topology mode {self.mode!r}; known: {', '.join(MODES)}")
        for name in ("k", "max_in"):
            value = getattr(self, name)
            if value is None and name == "max_in":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOption(f"the topology's {name} must be a whole number of at least "
                                    f"1, got {value!r}")
        if self.mode == "fixed" and self.max_in is not None:
            raise InvalidOption("max_in applies to the free topology (mode='free'); a fixed one "
                                "has exactly k inputs per node")
        if not (isinstance(self.reg_weight, (int, float)) and not isinstance(self.reg_weight, bool)
                and math.isfinite(self.reg_weight) and self.reg_weight >= 0):
            raise InvalidOption(f"the topology regulariser's weight must be a number of at least "
                                f"0, got {self.reg_weight!r}")
        if not (isinstance(self.aggressiveness, (int, float))
                and not isinstance(self.aggressiveness, bool) and self.aggressiveness > 0):
            raise InvalidOption(f"the topology regulariser's aggressiveness must be a positive "
                                f"number, got {self.aggressiveness!r}")
        if not (isinstance(self.margin, (int, float)) and not isinstance(self.margin, bool)
                and 0 <= self.margin < 1):
            raise InvalidOption(f"the topology regulariser's margin must be in [0, 1), "
                                f"got {self.margin!r}")

    def topologies(self, num_inputs: int) -> tuple[Subset, ...]:
        """The candidate topologies of a node with ``num_inputs`` predecessors: subsets of
        input indices, by size, each size in lexicographic order."""
        if self.mode == "fixed":
            return tuple(itertools.combinations(range(num_inputs), min(self.k, num_inputs)))
        return tuple(s for size in range(num_inputs + 1)
                     for s in itertools.combinations(range(num_inputs), size))

    def valid(self, subset: Sequence[int], num_inputs: int) -> bool:
        """Whether a node may have ``subset`` as its inputs (fixed mode: every candidate)."""
        if self.mode == "fixed":
            return len(subset) == min(self.k, num_inputs)
        top = num_inputs if self.max_in is None else min(self.max_in, num_inputs)
        return 1 <= len(subset) <= top


def _first_argmax(values: Sequence[float]) -> int:
    """Index of the largest value, the first of tied maxima."""
    best = max(values)
    return next(i for i, v in enumerate(values) if v == best)


class TopoNAS:
    """Topology logits for a :class:`~hwnas.oneshot.darts.DartsSupernet` and the mixtures,
    samples, regulariser and derivations built from them and DARTS' alphas (see the module
    docstring). ``logits`` is flat, cell type major: ``logits[c * NUM_NODES + j]`` is node
    ``j`` of cell type ``c`` (normal, reduce), over ``subsets[j]``. Methods taking ``logits``
    use these unless given others (a list of the same shapes)."""

    def __init__(self, supernet: nn.Module, config: TopologyConfig | None = None, *,
                 init_scale: float = 1e-3, generator: torch.Generator | None = None) -> None:
        if not isinstance(supernet, DartsSupernet):
            name = getattr(getattr(supernet, "space", None), "name", type(supernet).__name__)
            raise NoSupernet(f"TopoNAS's topology variables choose among a DARTS cell node's "
                             f"(node, input) edges; the {name} supernet has none (use the darts "
                             f"space)")
        config = config if config is not None else TopologyConfig()
        self.supernet, self.config = supernet, config
        param = next(supernet.parameters())
        device, dtype = param.device, param.dtype
        self.subsets: list[tuple[Subset, ...]] = [config.topologies(node + 2)
                                                  for node in range(NUM_NODES)]
        self.membership = [torch.tensor([[float(i in s) for i in range(node + 2)] for s in subs],
                                        dtype=dtype, device=device)
                           for node, subs in enumerate(self.subsets)]
        self.invalid = [torch.tensor([not config.valid(s, node + 2) for s in subs], device=device)
                        for node, subs in enumerate(self.subsets)]
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self.logits = [nn.Parameter((init_scale * torch.randn(len(subs), generator=gen,
                                                              dtype=dtype)).to(device))
                       for _ in CELLS for subs in self.subsets]

    # -- distributions ----------------------------------------------------------------------
    def _logits(self, logits: Sequence[torch.Tensor] | None) -> Sequence[torch.Tensor]:
        logits = self.logits if logits is None else logits
        shapes = [(len(s),) for _ in CELLS for s in self.subsets]
        if len(logits) != len(shapes) or any(tuple(t.shape) != s for t, s in zip(logits, shapes)):
            raise InvalidOption(f"topology logits must be {len(shapes)} vectors of lengths "
                                f"{[s[0] for s in shapes]} (cell type major, node minor)")
        return logits

    @staticmethod
    def _alphas(alphas: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
        shape = (NUM_EDGES, len(PRIMITIVES))
        if (isinstance(alphas, torch.Tensor) or len(alphas) != len(CELLS)
                or any(tuple(a.shape) != shape for a in alphas)):
            raise InvalidOption(f"TopoNAS takes the op logits as (normal, reduce) tensors of shape "
                                f"[{NUM_EDGES}, {len(PRIMITIVES)}]")
        return alphas

    def _cells(self, logits: Sequence[torch.Tensor]) -> list[Sequence[torch.Tensor]]:
        return [logits[c * NUM_NODES:(c + 1) * NUM_NODES] for c in range(len(CELLS))]

    def distributions(self, logits: Sequence[torch.Tensor] | None = None
                      ) -> list[list[torch.Tensor]]:
        """Per cell type, per node: ``softmax(beta_j)`` over ``subsets[j]`` (differentiable)."""
        return [[torch.softmax(b, dim=-1) for b in cell]
                for cell in self._cells(self._logits(logits))]

    def marginals(self, logits: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Per cell type, ``P(i in S_j)`` for every edge ``(j, i)`` in ``EDGES`` order
        (``[NUM_EDGES]``); node ``j``'s marginals sum to its expected in-degree."""
        return [torch.cat([p @ m for p, m in zip(cell, self.membership)])
                for cell in self.distributions(logits)]

    def invalid_mass(self, logits: Sequence[torch.Tensor] | None = None
                     ) -> list[list[torch.Tensor]]:
        """Per cell type, per node: the probability of the node's invalid topologies."""
        return [[p[bad].sum() for p, bad in zip(cell, self.invalid)]
                for cell in self.distributions(logits)]

    def numpy(self) -> tuple[tuple[np.ndarray, ...], ...]:
        """The current distributions, per cell type, per node (what a search's history keeps)."""
        with torch.no_grad():
            return tuple(tuple(p.detach().cpu().numpy().copy() for p in cell)
                         for cell in self.distributions())

    # -- mixtures ---------------------------------------------------------------------------
    @staticmethod
    def _assemble(z: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        """``[NUM_EDGES, 8]``: ``1 - z`` on ``none``, ``z * ops`` on the 7 ops."""
        return torch.cat([(1.0 - z)[:, None], z[:, None] * ops], dim=1)

    def mixture(self, alphas: Sequence[torch.Tensor],
                logits: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The relaxed (DARTS) mixture: ``w[(j, i), o] = P(i in S_j) * softmax(alpha[e, 1:])_o``,
        ``w[e, none] = 1 - P(i in S_j)``; rows sum to 1. Differentiable in both."""
        return [self._assemble(z, torch.softmax(a[:, NONE + 1:], dim=-1))
                for z, a in zip(self.marginals(logits), self._alphas(alphas))]

    def sample(self, alphas: Sequence[torch.Tensor], tau: float, gen: torch.Generator,
               logits: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """GDAS on top: per node one topology, per edge one op, each a Gumbel straight-through
        one-hot at temperature ``tau``; the unsampled edges are exactly 0.0 on every op."""
        out = []
        for cell, a in zip(self._cells(self._logits(logits)), self._alphas(alphas)):
            z = torch.cat([gumbel_straight_through(b, tau, gen) @ m
                           for b, m in zip(cell, self.membership)])
            out.append(self._assemble(z, gumbel_straight_through(a[:, NONE + 1:], tau, gen)))
        return out

    # -- the passive-aggressive regulariser -------------------------------------------------
    def regulariser(self, logits: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """``reg_weight * sum_{cell, node} tau * l``, ``l = relu(q - margin)``, ``q`` the
        node's invalid mass computed with the valid topologies' logits detached, ``tau =
        min(aggressiveness, l / ||grad l||^2)`` a constant (module docstring). A 0-d tensor;
        it has no graph when no node has an invalid topology (fixed mode) or the weight is 0."""
        c = self.config
        logits = self._logits(logits)
        total = torch.zeros((), dtype=logits[0].dtype, device=logits[0].device)
        if c.reg_weight == 0:
            return total
        for cell in self._cells(logits):
            for b, bad in zip(cell, self.invalid):
                if not bool(bad.any()):
                    continue
                p = torch.softmax(torch.where(bad, b, b.detach()), dim=-1)
                q = p[bad].sum()
                hinge = torch.relu(q - c.margin)
                with torch.no_grad():  # PA's step: l / ||grad l||^2, at most C
                    norm2 = (1 - q) ** 2 * (p[bad] ** 2).sum()
                    tau = (hinge / norm2.clamp_min(torch.finfo(q.dtype).tiny)
                           ).clamp_max(c.aggressiveness)
                total = total + tau * hinge
        return c.reg_weight * total

    # -- derivation -------------------------------------------------------------------------
    def _edges(self, node: int, inputs: Sequence[int], strength: torch.Tensor,
               best: torch.Tensor) -> list[tuple[int, int]]:
        """(input, OPS index) of ``inputs``, strongest op first (ties: lower input first)."""
        rows = {i: edge_index(node, i) for i in inputs}
        order = sorted(inputs, key=lambda i: (-float(strength[rows[i]]), i))
        return [(i, int(best[rows[i]])) for i in order]

    def _ops(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ops = torch.softmax(a.detach().to(torch.float64).cpu()[:, NONE + 1:], dim=-1)
        return ops.max(dim=-1)  # (strength, best OPS index); max takes the first of ties

    def derive(self, alphas: Sequence[torch.Tensor],
               logits: Sequence[torch.Tensor] | None = None) -> Arch:
        """The ``spaces.darts`` architecture: per node the most probable 2-input topology and
        each input's best non-``none`` op (module docstring for free mode and ``k != 2``)."""
        choices: list[int] = []
        dists = [[p.detach().to(torch.float64).cpu() for p in cell]
                 for cell in self.distributions(logits)]
        for cell, a in zip(dists, self._alphas(alphas)):
            strength, best = self._ops(a)
            for node, (p, subs) in enumerate(zip(cell, self.subsets)):
                pairs = [k for k, s in enumerate(subs) if len(s) == 2]
                if pairs:
                    pair = subs[pairs[_first_argmax([float(p[k]) for k in pairs])]]
                else:  # fixed k != 2: the two inputs most often in the topology
                    marg = (p @ self.membership[node].to(p)).tolist()
                    pair = tuple(sorted(range(node + 2), key=lambda i: -marg[i])[:2])
                for i, op in self._edges(node, pair, strength, best):
                    choices += [i, op]
        return self.supernet.space.arch(choices)

    def derive_cells(self, alphas: Sequence[torch.Tensor],
                     logits: Sequence[torch.Tensor] | None = None) -> tuple[Cell, ...]:
        """(normal, reduce) cells with the searched topology itself: per node the most
        probable *valid* topology (any in-degree free mode allows) and its inputs' best ops,
        as (op name, input) lists. In fixed mode with ``k = 2`` the genotype of :meth:`derive`."""
        cells = []
        dists = [[p.detach().to(torch.float64).cpu() for p in cell]
                 for cell in self.distributions(logits)]
        for cell, a in zip(dists, self._alphas(alphas)):
            strength, best = self._ops(a)
            nodes: Cell = []
            for node, (p, subs, bad) in enumerate(zip(cell, self.subsets, self.invalid)):
                allowed = [k for k in range(len(subs)) if not bool(bad[k])]
                subset = subs[allowed[_first_argmax([float(p[k]) for k in allowed])]]
                nodes.append([(OPS[op], i) for i, op in self._edges(node, subset, strength, best)])
            cells.append(nodes)
        return tuple(cells)


def valid_cell(cell: Cell, *, min_in: int = 1, max_in: int | None = None) -> bool:
    """Whether a derived cell is a valid DAG: every node has ``min_in..max_in`` distinct
    inputs, each a cell input or an *earlier* node (so there is no cycle), ops not ``none``."""
    for node, edges in enumerate(cell):
        inputs = [i for _, i in edges]
        if not (min_in <= len(inputs) and (max_in is None or len(inputs) <= max_in)):
            return False
        if len(set(inputs)) != len(inputs) or any(not 0 <= i < node + 2 for i in inputs):
            return False
        if any(op not in OPS for op, _ in edges):
            return False
    return True


__all__ = ["MODES", "TopoNAS", "TopologyConfig", "valid_cell"]
