"""EnTranNAS on the DARTS supernet: engine cells searched, transit cells carry the derived cell.

Paper: Yang et al., "Towards Improving the Consistency, Efficiency, and Flexibility of
Differentiable Neural Architecture Search" (EnTranNAS, CVPR 2021). This module follows its
abstract (in the project's seeds); where the abstract is silent, what is written here is
*our reading*, and says so.

**Engine and transit cells.** Some cell positions (the *engines*; by default the first cell
of each type -- normal, reduction -- or any set with at least one cell of each type) run
the relaxed mixture of the architecture parameters; every other cell (a *transit* cell)
runs only the single path of the architecture derived, at that step, from the very weights
the engines run. The supernet's per-position modes do it
(``DartsSupernet.set_mixture(normal, reduce, positions=engines, arch=derived)``). So most of
the search network already is the evaluation network, and it costs one path per transit
cell instead of 14 x 7 ops.

**Derivation by differentiable sparsification (our reading).** Instead of DARTS' softmax
followed, after the search, by the hand-made top-2 rule, the weights the engines run are
made sparse *in the forward pass* by thresholds that are themselves functions of the
architecture logits, so entries below the threshold are exactly 0.0 (the supernet skips
them) and the survivors' weights stay differentiable in every logit that sets them or
their threshold. Per cell type, per node ``j`` with ``n`` incoming edges and the 7 ops
(``none`` is never run: the threshold replaces it; its column is ignored and weighs 0):

* ``q = softmax`` over *all* the node's ``n x 7`` (input, op) connections (node-level
  normalisation: connections compete at the node, whatever input they come from);
  ``s_e = sum_o q[e, o]`` is edge ``e``'s share of the node, ``p_e = softmax(alpha[e])``
  its op distribution (``q[e] = s_e * p_e``);
* ``a[e, o] = relu(p_e[o] - level * t_op(e))``, renormalised over the edge's ops;
  ``b[e] = relu(s_e - level * t_edge(j))``, renormalised over the node's edges;
  ``w[e, o] = b[e] * a[e, o]`` (the node's weights sum to 1);
* rule ``"darts"`` (what the engines run): ``t_op(e)`` is the edge's second-largest op
  probability and ``t_edge(j)`` the node's third-largest edge share (0 for node 0, whose two
  edges the space always takes), so at ``level = 1`` exactly one op per edge and exactly the
  two strongest edges per node survive -- an architecture of the DARTS space, which needs
  exactly two (input, op) edges per node from distinct inputs; it has no free topology;
* rule ``"free"`` (reported by :func:`free_topology`): ``t_op = 1/7`` and ``t_edge = 1/n``
  (a connection survives when it beats the average op of its edge and its edge beats the
  node's average edge), so a node may keep any number of inputs and ops -- the topology the
  sparsification found, for a space that could take it;
* ``level`` rises linearly from 0 (``w = q``: a dense, node-normalised DARTS mixture that
  trains every op) to 1 over the first ``sparse_warmup`` of the search's steps and stays at
  1; from then on the engines compute exactly the derived architecture.

The derived architecture is read off the weights (:func:`derive_weights`): per node the two
edges of largest weight (the survivors; at any level the ranking is the edge shares'),
strongest first, each with its largest-weight op. At ``level = 1`` the engines' non-zero
entries are exactly the derived (edge, op) pairs -- by construction, not by a rule applied
afterwards -- and the network with the engines in mixture mode differs from the derived
network only by the per-edge weight scale ``w`` of the two edges (the tests run the
engines with the survivors' weights set to 1.0 and get the derived network's output
exactly). Transit cells run :func:`derive_weights` of the engines' current weights, so
they agree with the engines at every step.

**Feature sharing (our reading).** In a cell, the op modules of the edges that leave the
same state are one module (:func:`share_features` ties them): ``sep_conv_3x3`` applied to
``c_{k-1}`` is one set of weights whether node 0, 1, 2 or 3 reads it, and the supernet runs
it once per state and forward, reusing the feature map. Less compute (an engine cell runs
5 states x 7 ops = 35 op calls instead of 14 x 7 = 98) and more balanced training: a
parametric op now learns from every edge it serves, while DARTS gives each edge's copy a
fraction of the gradient and lets the parameter-free ops (skip, pooling) win early.
``extract`` stays exact: the standalone network gets the shared weights in each of its
copies (two copies reading the same state see the same input, so outputs and BN statistics
agree).

**Search loop.** :class:`EnTranNASSearch` is :class:`~hwnas.oneshot.differentiable.
DifferentiableSearch` (DARTS' alternation, optimisers, first or second order, the per-epoch
history) with the sparsified weights for the mixture, the engine/transit forward, the
sparsification level as its per-step schedule, and the latency term read on the sparsified
weights (:class:`SparseLatencyTerm`). :func:`entrannas_search` runs one.

Simplified, against the paper (beyond what the DARTS search module already simplifies):

* the thresholds are fixed functions of the logits (order statistics, averages), not extra
  learnable parameters with their own regulariser; the warm-up from the dense mixture is
  ours (without it, the ops off the derived path would never train in the engines);
* the engines always run the ``"darts"`` rule, because the DARTS space cannot hold another
  in-degree; the ``"free"`` topology is reported, not searched or built;
* ties (equal shares or op probabilities, e.g. all-zero logits) can empty a node in the
  engines at ``level = 1`` while the derivation still picks the lower input and first op;
  with the random initial logits they do not occur;
* GDAS' sampling is not combined with it (``method`` must be ``darts``);
* the latency term's soft encoding (:func:`decision_probs`) is an approximation, as DARTS'
  is: inputs weighted by the edges' shares, ops by their weights; ``predicted_ms`` in the
  history is the predictor on the derived architecture itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.evaluators.datasets import DataSplit
from hwnas.oneshot.base import NoSupernet
from hwnas.oneshot.darts import EDGES, NONE, NUM_EDGES, DartsSupernet, edge_index
from hwnas.oneshot.differentiable import (Batch, DifferentiableConfig, DifferentiableResult,
                                          DifferentiableSearch, EpochRecord, LatencyTerm)
from spaces import Arch, Space
from spaces.core.errors import InvalidOption
from spaces.darts import CELLS, NUM_NODES, OPS, PRIMITIVES

log = logging.getLogger(__name__)

RULES = ("darts", "free")
IN_DEGREE = 2  # (input, op) edges per node in the DARTS space
#: Per cell type, per node, the surviving connections as (input, op name, weight), strongest first.
Topology = dict[str, list[list[tuple[int, str, float]]]]


# -- engine positions and feature sharing ---------------------------------------------------
def engine_positions(supernet: DartsSupernet, positions: Iterable[int] | None = None
                     ) -> frozenset[int]:
    """The engine cells: ``positions`` checked (cell indices with at least one cell of each
    type among them, or the types' alphas would never learn), or by default the first cell
    of each type."""
    cells = supernet.cells
    if positions is None:
        return frozenset(min(k for k, c in enumerate(cells) if c.reduction is r)
                         for r in (False, True))
    chosen = supernet._check_positions(positions)
    for reduction, cell in zip((False, True), CELLS):
        if not any(cells[k].reduction is reduction for k in chosen):
            of_type = [k for k, c in enumerate(cells) if c.reduction is reduction]
            raise InvalidOption(f"the engine cells {sorted(chosen)} include no {cell} cell "
                                f"(positions {of_type}), so its architecture could not learn")
    return chosen


def share_features(supernet: DartsSupernet) -> int:
    """Tie, in every cell, each op's modules on the edges that leave the same state into one
    module (the one on the edge into the earliest node), in place; returns how many op
    modules were replaced (0 when already shared). The replaced copies' weights are dropped.
    The supernet then computes each (state, op) feature once per forward."""
    tied = 0
    for cell in supernet.cells:
        owner: dict[int, int] = {}  # state -> the edge whose modules serve it
        for e, (_, source) in enumerate(EDGES):
            first = owner.setdefault(source, e)
            for name in OPS:
                if first != e and cell.edges[e][name] is not cell.edges[first][name]:
                    cell.edges[e][name] = cell.edges[first][name]
                    tied += 1
    return tied


# -- the sparsification and the derivation --------------------------------------------------
def _check(tensors: Sequence[torch.Tensor], what: str) -> tuple[torch.Tensor, ...]:
    shape = (NUM_EDGES, len(PRIMITIVES))
    if (isinstance(tensors, torch.Tensor) or len(tensors) != len(CELLS)
            or any(not isinstance(t, torch.Tensor) or tuple(t.shape) != shape for t in tensors)):
        raise InvalidOption(f"EnTranNAS takes {what} as (normal, reduce) tensors of shape "
                            f"[{NUM_EDGES}, {len(PRIMITIVES)}] (edges x DARTS primitives)")
    return tuple(tensors)


def _node_rows(node: int) -> slice:
    return slice(edge_index(node, 0), edge_index(node, node + 1) + 1)


def _sparsify_one(alpha: torch.Tensor, level: float, rule: str) -> torch.Tensor:
    tiny = torch.finfo(alpha.dtype).tiny
    ops = alpha[:, NONE + 1:]
    blocks = []
    for node in range(NUM_NODES):
        z = ops[_node_rows(node)]                                        # [n, 7]
        n, k = z.shape
        share = torch.softmax(z.reshape(-1), dim=0).reshape(n, k).sum(dim=1)  # s_e
        p = torch.softmax(z, dim=1)                                      # p_e
        if rule == "darts":
            op_floor = p.topk(2, dim=1).values[:, 1:2]
            edge_floor = (share.topk(IN_DEGREE + 1).values[IN_DEGREE] if n > IN_DEGREE
                          else share.new_zeros(()))
        else:
            op_floor = p.new_full((n, 1), 1.0 / k)
            edge_floor = share.new_full((), 1.0 / n)
        a = F.relu(p - level * op_floor)
        a = a / a.sum(dim=1, keepdim=True).clamp_min(tiny)
        b = F.relu(share - level * edge_floor)
        b = b / b.sum().clamp_min(tiny)
        blocks.append(b[:, None] * a)
    w = torch.cat(blocks, dim=0)
    return torch.cat([w.new_zeros(NUM_EDGES, NONE + 1), w], dim=1)


def sparsify(alphas: Sequence[torch.Tensor], level: float = 1.0, rule: str = "darts"
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The (normal, reduce) ``[14, 8]`` weights of the logits ``alphas`` at sparsification
    ``level`` in [0, 1] under ``rule`` (``"darts"``: at most, and at level 1 exactly, two
    edges per node and one op per edge; ``"free"``: any number); see the module docstring.
    Differentiable in ``alphas``; entries below their threshold are exactly 0.0, ``none``'s
    column is 0.0. Each node's weights sum to 1."""
    if rule not in RULES:
        raise InvalidOption(f"unknown sparsification rule {rule!r}; known: {', '.join(RULES)}")
    if isinstance(level, bool) or not 0.0 <= float(level) <= 1.0:
        raise InvalidOption(f"the sparsification level must be in [0, 1], got {level!r}")
    normal, reduce = (_sparsify_one(a, float(level), rule) for a in _check(alphas, "alphas"))
    return normal, reduce


def derive_weights(space: Space, weights: Sequence[torch.Tensor]) -> Arch:
    """The DARTS architecture of engine weights: per node the two edges of largest total
    weight (the surviving edges, which come from distinct inputs; ties: the lower input),
    strongest first, each with its largest-weight op (ties: the first in ``PRIMITIVES``);
    ``none``'s column is ignored."""
    choices: list[int] = []
    for w in _check(weights, "weights"):
        ops = w.detach().to(torch.float64).cpu()[:, NONE + 1:]
        mass, best = ops.sum(dim=1).tolist(), ops.argmax(dim=1).tolist()
        for node in range(NUM_NODES):
            rows = [edge_index(node, i) for i in range(node + 2)]
            keep = sorted(range(node + 2), key=lambda i: -mass[rows[i]])[:IN_DEGREE]
            for i in keep:
                choices += [i, best[rows[i]]]  # OPS index = PRIMITIVES index - 1
    return space.arch(choices)


def derive(space: Space, alphas: Sequence[torch.Tensor]) -> Arch:
    """The architecture the search ends with: :func:`derive_weights` of the fully sparse
    (``level=1``, rule ``darts``) weights -- exactly the engines' non-zero entries."""
    return derive_weights(space, sparsify(alphas, 1.0, "darts"))


def support(weights: Sequence[torch.Tensor]) -> tuple[frozenset[tuple[int, int]], ...]:
    """Per cell type, the (edge, PRIMITIVES index) pairs an engine runs: the non-zero,
    non-``none`` entries of ``weights``."""
    out = []
    for w in _check(weights, "weights"):
        live = (w.detach()[:, NONE + 1:] != 0).nonzero().tolist()
        out.append(frozenset((e, o + NONE + 1) for e, o in live))
    return tuple(out)


def arch_support(space: Space, arch: Arch) -> tuple[frozenset[tuple[int, int]], ...]:
    """Per cell type, the (edge, PRIMITIVES index) pairs ``arch``'s single path runs."""
    genotype = space.genotype(arch)
    return tuple(frozenset((edge_index(k // 2, source), PRIMITIVES.index(name))
                           for k, (name, source) in enumerate(spec))
                 for spec in (genotype.normal, genotype.reduce))


def engine_is_derived(space: Space, weights: Sequence[torch.Tensor], arch: Arch) -> bool:
    """True when the engines running ``weights`` compute exactly ``arch``'s edges and ops."""
    return support(weights) == arch_support(space, arch)


def free_topology(alphas: Sequence[torch.Tensor], level: float = 1.0) -> Topology:
    """The topology the sparsification found with no in-degree constraint (rule ``free``):
    per cell type, per node, every surviving (input, op name, weight), strongest first."""
    out: Topology = {}
    for cell, w in zip(CELLS, sparsify(alphas, level, "free")):
        w = w.detach().to(torch.float64).cpu()
        nodes = []
        for node in range(NUM_NODES):
            conns = [(i, PRIMITIVES[o], float(w[edge_index(node, i), o]))
                     for i in range(node + 2) for o in range(NONE + 1, len(PRIMITIVES))
                     if w[edge_index(node, i), o] != 0]
            nodes.append(sorted(conns, key=lambda c: -c[2]))
        out[cell] = nodes
    return out


def in_degrees(topology: Topology) -> dict[str, list[int]]:
    """Per cell type, per node, how many distinct inputs ``topology`` connects."""
    return {cell: [len({i for i, _, _ in conns}) for conns in nodes]
            for cell, nodes in topology.items()}


def decision_probs(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """Engine weights as the DARTS space's per-decision option probabilities (the soft
    input of ``predictor.predict_soft``), differentiable: per node, input ``i`` with the
    share of its edge's total weight, ops with their total weight over the node's edges,
    both renormalised; ``input1``/``input2`` get the input distribution, ``op1``/``op2``
    the op one. An approximation, as DARTS' expected encoding is (module docstring)."""
    parts: list[torch.Tensor] = []
    tiny = 1e-12
    for w in _check(weights, "weights"):
        for node in range(NUM_NODES):
            rows = w[_node_rows(node), NONE + 1:]
            mass = rows.sum(dim=1) + tiny
            p_input = mass / mass.sum()
            ops = rows.sum(dim=0) + tiny
            p_op = ops / ops.sum()
            parts += [p_input, p_op, p_input, p_op]
    return torch.cat(parts)


@dataclass(frozen=True)
class SparseLatencyTerm(LatencyTerm):
    """A :class:`LatencyTerm` whose expected latency reads the engines' sparsified weights
    at the search's current level (``level()``) through :func:`decision_probs`, instead of
    ``softmax(alpha)`` through the supernet's ``decision_probs``."""

    level: Callable[[], float] = field(default=lambda: 1.0, compare=False, repr=False)

    @classmethod
    def wrap(cls, term: LatencyTerm, level: Callable[[], float]) -> "SparseLatencyTerm":
        """``term``'s predictor, budget, form, weight and parameters, read sparsely."""
        return cls(**{f.name: getattr(term, f.name) for f in fields(LatencyTerm)}, level=level)

    def expected_ms(self, supernet: Any, alphas: Sequence[torch.Tensor], *,
                    probs: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The predictor's differentiable latency of ``sparsify(alphas, level())``
        (``probs``, another method's mixture, is not EnTranNAS' and is ignored)."""
        weights = sparsify(alphas, self.level(), "darts")
        return self.predictor.predict_soft(decision_probs(weights)).reshape(())


# -- the search -----------------------------------------------------------------------------
@dataclass(frozen=True)
class EnTranNASConfig(DifferentiableConfig):
    """A DARTS search's settings plus EnTranNAS': the engine positions (None: the first
    cell of each type), the fraction of steps over which the sparsification level rises from
    0 to 1 (0: sparse from the first step), and whether ops from one state share a module."""

    engines: tuple[int, ...] | None = None
    sparse_warmup: float = 0.5
    share_features: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method != "darts":
            raise InvalidOption(f"EnTranNAS sparsifies DARTS' mixture; method {self.method!r} "
                                f"(GDAS' sampling) does not combine with it")
        w = self.sparse_warmup
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
            raise InvalidOption(f"sparse_warmup must be a fraction of the search in [0, 1], "
                                f"got {w!r}")
        if not isinstance(self.share_features, bool):
            raise InvalidOption(f"share_features must be true or false, got "
                                f"{self.share_features!r}")
        if self.engines is not None:
            engines = self.engines
            if isinstance(engines, (str, bytes)) or not isinstance(engines, Iterable) or not all(
                    isinstance(k, int) and not isinstance(k, bool) for k in engines):
                raise InvalidOption(f"engines must be cell positions (whole numbers), "
                                    f"got {engines!r}")
            object.__setattr__(self, "engines", tuple(sorted(set(engines))))


@dataclass
class EnTranNASEpochRecord(EpochRecord):
    """An epoch of an EnTranNAS search; ``probs`` holds the engines' sparsified weights at
    the epoch's last level (not ``softmax(alpha)``), ``arch`` is :func:`derive`."""

    level: float = 1.0                     # sparsification level at the epoch's last step
    engine_is_derived: bool = False        # the engines ran exactly ``arch`` at that level
    free_topology: Topology | None = None  # rule "free" at level 1


@dataclass
class EnTranNASResult(DifferentiableResult):
    """A :class:`DifferentiableResult` plus what EnTranNAS adds."""

    engines: tuple[int, ...] = ()
    weights: tuple[np.ndarray, ...] = ()   # the engines' final weights (level 1, rule darts)
    free_topology: Topology | None = None  # rule "free" on the final logits
    shared_modules: int = 0                # op modules tied by feature sharing


class EnTranNASSearch(DifferentiableSearch):
    """DARTS' bi-level search with EnTranNAS' engine and transit cells, sparsified weights
    and feature sharing (module docstring), on a :class:`DartsSupernet`. Feature sharing
    ties the supernet's modules in place, before the optimisers are built."""

    config: EnTranNASConfig

    def __init__(self, supernet: nn.Module, data: DataSplit,
                 config: EnTranNASConfig | None = None, *,
                 latency: LatencyTerm | None = None) -> None:
        config = config if config is not None else EnTranNASConfig()
        if not isinstance(config, EnTranNASConfig):
            raise InvalidOption(f"an EnTranNAS search takes an EnTranNASConfig, got a "
                                f"{type(config).__name__}")
        if not isinstance(supernet, DartsSupernet):
            name = getattr(getattr(supernet, "space", None), "name", type(supernet).__name__)
            raise NoSupernet(f"EnTranNAS searches the darts cell space (engine and transit "
                             f"cells, two edges per node); the {name} supernet is not one")
        self.engines = engine_positions(supernet, config.engines)
        self.shared_modules = share_features(supernet) if config.share_features else 0
        self.level = 0.0
        if latency is not None:
            latency = SparseLatencyTerm.wrap(latency, lambda: self.level)
        super().__init__(supernet, data, config, latency=latency)
        self.level = self.sparsity_level(0)

    # -- pieces ---------------------------------------------------------------------------
    def sparsity_level(self, step: int) -> float:
        """The level at ``step``: linear from 0 to 1 over the first ``sparse_warmup`` of the
        steps (reaching 1 by the last step at the latest), then 1."""
        warmup, last = self.config.sparse_warmup, self.total_steps - 1
        if warmup == 0 or last <= 0:
            return 1.0
        return min(1.0, step / (warmup * last))

    def tau(self, step: int) -> float | None:
        """The loop's per-step schedule: sets :attr:`level` for ``step``; no temperature."""
        self.level = self.sparsity_level(step)
        return None

    def probs(self) -> list[torch.Tensor]:
        """The engines' weights: :func:`sparsify` of the alphas at the current level."""
        return list(sparsify(self.alphas, self.level, "darts"))

    def mixture(self, tau: float | None = None, grad: bool = True) -> list[torch.Tensor]:
        """The engines' weights (``tau`` is not used); detached unless ``grad``."""
        with torch.set_grad_enabled(grad):
            return [w if grad else w.detach() for w in self.probs()]

    def transit_arch(self, mixture: Sequence[torch.Tensor]) -> Arch:
        """What the transit cells run with the engines at ``mixture``: its derivation."""
        return derive_weights(self.supernet.space, mixture)

    def _loss(self, batch: Batch, mixture: Sequence[torch.Tensor]) -> torch.Tensor:
        self.supernet.set_mixture(*mixture, positions=self.engines,
                                  arch=self.transit_arch(mixture))
        x, y = batch
        return F.cross_entropy(self.supernet(x), y)

    @torch.no_grad()
    def record(self, epoch: int, train_loss: float, val_loss: float, tau: float | None,
               began: float) -> EnTranNASEpochRecord:
        space = self.supernet.space
        arch = derive(space, self.alphas)
        weights = sparsify(self.alphas, self.level, "darts")
        predicted = expected = None
        if self.latency is not None:
            ms = self.latency.predictor.predict([arch])
            predicted = float(np.asarray(ms, dtype=float).reshape(-1)[0])
            expected = float(self.latency.expected_ms(self.supernet, self.alphas))
        return EnTranNASEpochRecord(
            epoch=epoch, probs=tuple(w.detach().cpu().numpy().copy() for w in weights),
            arch=arch, predicted_ms=predicted, expected_ms=expected, train_loss=train_loss,
            val_loss=val_loss, tau=None, seconds=time.perf_counter() - began,
            level=self.level, engine_is_derived=engine_is_derived(space, weights, arch),
            free_topology=free_topology(self.alphas))

    def run(self) -> EnTranNASResult:
        """Search for ``config.epochs`` epochs (the supernet ends in eval mode with the derived
        architecture active, in every cell)."""
        log.info("EnTranNAS: engine cells %s of %d, sparsification warm-up %.0f%% of the steps, "
                 "feature sharing %s", sorted(self.engines), len(self.supernet.cells),
                 100 * self.config.sparse_warmup,
                 f"on ({self.shared_modules} modules tied)" if self.config.share_features
                 else "off")
        base = super().run()
        weights = sparsify(base.alphas, 1.0, "darts")
        return EnTranNASResult(
            **{f.name: getattr(base, f.name) for f in fields(base)},
            engines=tuple(sorted(self.engines)),
            weights=tuple(w.numpy().copy() for w in weights),
            free_topology=free_topology(base.alphas), shared_modules=self.shared_modules)


def entrannas_search(supernet: nn.Module, data: DataSplit, *, latency: LatencyTerm | None = None,
                     **settings: Any) -> EnTranNASResult:
    """Run an EnTranNAS search of the DARTS ``supernet`` on ``data``; ``settings`` are
    :class:`EnTranNASConfig` fields (DARTS' plus ``engines``, ``sparse_warmup``,
    ``share_features``)."""
    known = [f for f in EnTranNASConfig.__dataclass_fields__ if f != "method"]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise InvalidOption(f"unknown EnTranNAS search setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(known)}")
    config = EnTranNASConfig(method="darts", **settings)
    return EnTranNASSearch(supernet, data, config, latency=latency).run()


__all__ = ["IN_DEGREE", "RULES", "EnTranNASConfig", "EnTranNASEpochRecord", "EnTranNASResult",
           "EnTranNASSearch", "SparseLatencyTerm", "Topology", "arch_support", "decision_probs",
           "derive", "derive_weights", "engine_is_derived", "engine_positions", "entrannas_search",
           "free_topology", "in_degrees", "share_features", "sparsify", "support"]
