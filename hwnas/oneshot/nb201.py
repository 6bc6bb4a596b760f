"""The one-shot supernet of the NAS-Bench-201 cell space.

One-shot weight sharing (Bender et al. 2018, "Understanding and Simplifying One-Shot
Architecture Search"; SPOS, Guo et al. 2019): every cell edge holds one module per
op, shared by every architecture that picks that op there; an architecture is a
path through them. ``set_active`` runs one op per edge (SPOS); ``set_active_paths``
runs several ops of an edge at once and sums them (Bender et al.'s path dropout);
``set_mixture(w)`` weights every op of every edge by a ``[6, 5]`` tensor (DARTS' mixed op,
Liu et al. 2019; GDAS's one-hot, Dong & Yang 2019), the relaxation protocol that
:mod:`hwnas.oneshot.differentiable` searches with (``mixture_shapes``, ``mixture_ops``,
``mixture_of``, ``derive``, ``decision_probs``).

Kept from the standalone network (``spaces.nb201_ops``), layer for layer: the stem,
the reduction blocks, the head and the classifier are the standalone's (shared by
every architecture), each op owns its BN (so train-mode statistics are per op, as in
the built network), ``none`` contributes nothing, and a node with no kept edge is a
zero tensor. That last rule is what the builder does for degenerate cells, so ops
fed by such a node still run (on zeros) here as there. Simplified: none of the
NAS-Bench-201 supernet tricks (e.g. BN without affine weights) -- the supernet's BN
layers are the deployable network's own.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch import nn

from hwnas.oneshot.base import NoSupernet, OneShotSupernet, check_keep
from spaces import Arch
from spaces.core.errors import InvalidOption
from spaces.nb201 import EDGES, OP_NAMES, NB201Space
from spaces.nb201_ops import NB201Cell, make_op

log = logging.getLogger(__name__)

NONE = OP_NAMES.index("none")
Keep = Sequence[Sequence[int]]


class SuperCell(nn.Module):
    """Every op of every edge of one cell position; ``forward`` sums the kept ones."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # "none" has no module (make_op gives None): it adds nothing to a node's sum.
        self.edges = nn.ModuleList(
            nn.ModuleDict({name: make_op(name, channels) for name in OP_NAMES if name != "none"})
            for _ in EDGES)

    def op(self, edge: int, choice: int) -> nn.Module | None:
        return None if choice == NONE else self.edges[edge][OP_NAMES[choice]]

    def forward(self, x: torch.Tensor, keep: Keep,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        """Node ``t`` sums ``op(node_src)`` over its edges and the ops in ``keep[edge]``;
        with ``weights`` (a ``[6, 5]`` mixture) each term is scaled by ``weights[edge, op]``."""
        nodes = [x]
        for target in range(1, 4):
            total: torch.Tensor | None = None
            for edge, (tgt, src) in enumerate(EDGES):  # the builder's edge order
                if tgt != target:
                    continue
                for choice in keep[edge]:
                    op = self.op(edge, choice)
                    if op is not None:
                        y = op(nodes[src])
                        if weights is not None:
                            y = weights[edge, choice] * y
                        total = y if total is None else total + y
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[-1]

    @torch.no_grad()
    def copy_into(self, cell: nn.Module, choices: Sequence[int]) -> None:
        """Load the chosen ops into a standalone ``NB201Cell`` (its kept ops, in edge order)."""
        kept = [iter(ops) for ops in cell.edges]
        for edge, ((target, _), choice) in enumerate(zip(EDGES, choices)):
            op = self.op(edge, choice)
            if op is not None:
                next(kept[target - 1]).load_state_dict(op.state_dict())


class NB201Supernet(OneShotSupernet):
    """Every NAS-Bench-201 cell in one module (see the module docstring)."""

    supports_paths = True

    def __init__(self, space: NB201Space, num_classes: int | None = None,
                 input_size: int | None = None) -> None:
        if not isinstance(space, NB201Space):
            raise NoSupernet(f"the nb201 supernet needs an nb201 space, not {space.key!r}")
        num_classes, input_size = space.num_classes(num_classes), space.input_size(input_size)
        super().__init__(space, num_classes, input_size)
        # The all-"none" network is the skeleton without any cell op: take its shared layers
        # as they are, and put a super cell where each of its cells is.
        skeleton = space.build(space.arch([NONE] * len(EDGES)), num_classes, input_size)
        self.stem, self.head = skeleton.stem, skeleton.head
        self.pool, self.classifier = skeleton.pool, skeleton.classifier
        layers, width = [], space.C
        for layer in skeleton.cells:
            if isinstance(layer, NB201Cell):
                layers.append(SuperCell(width))
            else:  # a reduction block: doubles the width
                width = layer.conv_b[1].out_channels
                layers.append(layer)
        self.layers = nn.ModuleList(layers)
        self._keep: tuple[tuple[int, ...], ...] | None = None
        self._mixture: torch.Tensor | None = None  # set_mixture's weights, while in that mode
        log.debug("nb201 supernet %s: %d parameters", space.key,
                  sum(p.numel() for p in self.parameters()))

    def _on_active(self, arch: Arch) -> None:
        self._keep = tuple((c,) for c in arch.choices)
        self._mixture = None

    def set_active_paths(self, keep: Keep) -> None:
        """Run every op in ``keep[e]`` on edge ``e``, summed; an empty list drops the edge
        (as ``none``). All single ops make that architecture active."""
        self._keep = check_keep(self.space, keep, allow_empty=True)
        self._mixture = None
        single = all(len(k) == 1 for k in self._keep)
        self._active = self.space.arch([k[0] for k in self._keep]) if single else None

    # -- continuous relaxation (hwnas.oneshot.differentiable) ---------------------------------
    def mixture_shapes(self) -> tuple[tuple[int, int], ...]:
        """One ``[edges, ops]`` mixture tensor: every cell shares it (as in DARTS)."""
        return ((len(EDGES), len(OP_NAMES)),)

    def mixture_ops(self) -> tuple[str, ...]:
        """The mixture's columns: the space's ops, ``none`` included."""
        return OP_NAMES

    def set_mixture(self, weights: torch.Tensor) -> None:
        """Run the mixed op from now on: every edge outputs ``sum_o w[e, o] * op_o(x)`` (``w``
        a float ``[6, 5]`` tensor, columns :data:`OP_NAMES`), ``none`` adding nothing.

        ``w`` is used as given, so the loss's gradient reaches it; call again every step.
        Entries exactly ``0.0`` skip their op (a GDAS one-hot runs one op per edge), and a node
        whose every term is skipped is zeros. Reads which entries are zero once (one device
        sync). ``set_active`` / ``set_active_paths`` leave this mode; while in it no single
        architecture is active."""
        shape = self.mixture_shapes()[0]
        if not (isinstance(weights, torch.Tensor) and weights.is_floating_point()
                and tuple(weights.shape) == shape):
            got = (type(weights).__name__ if not isinstance(weights, torch.Tensor)
                   else f"{weights.dtype} tensor of shape {list(weights.shape)}")
            raise InvalidOption(f"the nb201 mixture must be a float tensor of shape {list(shape)} "
                                f"(edges x ops), got a {got}")
        live = (weights != 0).tolist()
        self._keep = tuple(tuple(o for o in range(len(OP_NAMES)) if row[o]) for row in live)
        self._mixture = weights
        self._active = None

    def mixture_of(self, arch: Arch) -> tuple[torch.Tensor]:
        """The one-hot ``[6, 5]`` mixture of ``arch`` (on the supernet's device and dtype):
        ``set_mixture(*mixture_of(arch))`` runs exactly ``set_active(arch)``."""
        arch = self.space.validate(arch)
        param = next(self.parameters())
        w = torch.zeros(self.mixture_shapes()[0], dtype=param.dtype)
        w[torch.arange(len(EDGES)), torch.tensor(arch.choices)] = 1.0
        return (w.to(param.device),)

    def derive(self, alphas: Sequence[torch.Tensor]) -> Arch:
        """The architecture of the mixture logits ``alphas`` (one ``[6, 5]`` tensor): the
        argmax of every edge over all five ops. ``none`` stays possible, as in NAS-Bench-201's
        own DARTS derivation, since here it is an op of the space."""
        (w,) = self._check_alphas(alphas)
        return self.space.arch([int(i) for i in torch.softmax(w.detach(), dim=-1).argmax(dim=-1)])

    def decision_probs(self, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-decision option probabilities, flat in the space's decision order (what
        ``predictor.predict_soft`` reads): the mixture's rows themselves, one decision per
        edge (``weights`` is e.g. ``softmax(alphas)``; differentiable)."""
        (w,) = self._check_alphas(weights)
        return w.reshape(-1)

    def _check_alphas(self, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor]:
        shapes = self.mixture_shapes()
        if (isinstance(tensors, torch.Tensor) or len(tensors) != len(shapes)
                or any(tuple(t.shape) != s for t, s in zip(tensors, shapes))):
            raise InvalidOption(f"the nb201 supernet takes one [{len(EDGES)}, {len(OP_NAMES)}] "
                                f"tensor (edges x ops) in a sequence")
        return (tensors[0],)

    # -- running and extracting ---------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._keep is None:
            _ = self.active  # raises InvalidOption: nothing is active yet
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, self._keep, self._mixture) if isinstance(layer, SuperCell) else layer(x)
        x = self.head(x)
        return self.classifier(torch.flatten(self.pool(x), 1))

    @torch.no_grad()
    def extract(self, arch: Arch) -> nn.Module:
        arch = self.space.validate(arch)
        net = self.space.build(arch, self.num_classes, self.input_size)
        for name in ("stem", "head", "classifier"):
            getattr(net, name).load_state_dict(getattr(self, name).state_dict())
        for mine, theirs in zip(self.layers, net.cells):
            if isinstance(mine, SuperCell):
                mine.copy_into(theirs, arch.choices)
            else:
                theirs.load_state_dict(mine.state_dict())
        return self._deliver(net)
