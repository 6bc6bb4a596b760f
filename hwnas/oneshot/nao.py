"""The one-shot supernet of the NAO/ENAS micro-cell space.

One-shot weight sharing (ENAS, Pham et al. 2018; NAO's weight-sharing variant, Luo
et al. 2018; Bender et al. 2018; SPOS, Guo et al. 2019): in every cell position,
each node's two branches hold one module per (input, op) candidate, shared by every
architecture that wires that input through that op there. ``set_active`` wires the
normal and the reduction cells; one path runs at a time (no path dropout: a
branch reads one input, so its options cannot be summed the way NB201's edges can).

Kept from the standalone network (``spaces.nao_ops``): the stem, the cell input
preprocessing and the classifier are the standalone's and shared; every op owns its
BN; a branch reading a reduction cell's input has stride 2 (so the op, and its
weights, depend on the input, as in NAO); the cell output concatenates the loose
ends. The 1x1 conv mixing them is held at full width (every state) and its input
columns sliced to the loose ends, as NAO's weight-sharing ``WSReLUConvBN`` does, so
the extracted conv has exactly the standalone's shape. Its BN is shared by all
architectures (it has one width). Simplified: no drop-path, auxiliary head or
dropout, as the built network has none.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.oneshot.base import NoSupernet, OneShotSupernet
from spaces import Arch
from spaces.nao import OPS, Node, NAOSpace
from spaces.nao_ops import FactorizedReduce, ReLUConvBN, loose_ends, make_op

log = logging.getLogger(__name__)

Wiring = tuple[Sequence[Node], list[int]]  # (nodes of the cell, its loose ends)


class SuperNode(nn.Module):
    """Node ``index`` of a cell position: ``branches[b][input][op]`` for both branches."""

    def __init__(self, index: int, channels: int, reduction: bool) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleList(make_op(op, channels, 2 if reduction and source < 2 else 1)
                              for op in OPS)
                for source in range(index + 2))
            for _ in range(2))

    def chosen(self, node: Node) -> tuple[nn.Module, nn.Module]:
        return (self.branches[0][node.x_input][node.x_op],
                self.branches[1][node.y_input][node.y_op])

    def forward(self, states: list[torch.Tensor], node: Node) -> torch.Tensor:
        x_op, y_op = self.chosen(node)
        return x_op(states[node.x_input]) + y_op(states[node.y_input])


class SuperCell(nn.Module):
    """One cell position: its input preprocessing (from ``template``, a standalone cell
    there), B super nodes, and the loose-end gather and full-width combine."""

    def __init__(self, template: nn.Module, nodes: int) -> None:
        super().__init__()
        channels = template.combine[1].out_channels
        self.channels, self.reduction = channels, template.reduction
        self.pre0, self.pre1 = template.pre0, template.pre1
        self.nodes = nn.ModuleList(SuperNode(i, channels, self.reduction) for i in range(nodes))
        # An unused cell input of a reduction cell is still at full resolution.
        self.gather = nn.ModuleList(
            FactorizedReduce(channels, channels) if self.reduction else nn.Identity()
            for _ in range(2))
        self.combine = ReLUConvBN(channels * (nodes + 2), channels)

    def _combine_weight(self, concat: list[int]) -> torch.Tensor:
        """The combine conv's input columns of the loose ends, in their order."""
        c, weight = self.channels, self.combine[1].weight
        return torch.cat([weight[:, i * c:(i + 1) * c] for i in concat], dim=1)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, wiring: Wiring) -> torch.Tensor:
        nodes, concat = wiring
        states = [self.pre0(s0), self.pre1(s1)]
        for module, node in zip(self.nodes, nodes):
            states.append(module(states, node))
        out = torch.cat([self.gather[i](states[i]) if i < 2 else states[i] for i in concat], dim=1)
        relu, _, bn = self.combine
        return bn(F.conv2d(relu(out), self._combine_weight(concat)))

    @torch.no_grad()
    def copy_into(self, cell: nn.Module, wiring: Wiring) -> None:
        """Load this position's chosen weights into a standalone ``spaces.nao_ops.Cell``."""
        nodes, concat = wiring
        cell.pre0.load_state_dict(self.pre0.state_dict())
        cell.pre1.load_state_dict(self.pre1.state_dict())
        for module, standalone, node in zip(self.nodes, cell.nodes, nodes):
            x_op, y_op = module.chosen(node)
            standalone.x_op.load_state_dict(x_op.state_dict())
            standalone.y_op.load_state_dict(y_op.state_dict())
        for gather, i in zip(cell.gather, cell.concat):
            if i < 2:
                gather.load_state_dict(self.gather[i].state_dict())
        cell.combine[1].weight.copy_(self._combine_weight(concat))
        cell.combine[2].load_state_dict(self.combine[2].state_dict())


class NAOSupernet(OneShotSupernet):
    """Every NAO micro-cell architecture in one module (see the module docstring)."""

    def __init__(self, space: NAOSpace, num_classes: int | None = None,
                 input_size: int | None = None) -> None:
        if not isinstance(space, NAOSpace):
            raise NoSupernet(f"the nao supernet needs a nao space, not {space.key!r}")
        num_classes, input_size = space.num_classes(num_classes), space.input_size(input_size)
        super().__init__(space, num_classes, input_size)
        # Any standalone network has the shared layers (stem, preprocessing, classifier);
        # wire every branch to input 0 through the cheapest op to build it.
        identity = OPS.index("identity")
        skeleton = space.build(space.arch([identity if k % 2 else 0 for k in range(len(space.decisions))]),
                               num_classes, input_size)
        self.stem, self.pool, self.classifier = skeleton.stem, skeleton.pool, skeleton.classifier
        self.cells = nn.ModuleList(SuperCell(cell, space.B) for cell in skeleton.cells)
        self._wiring: dict[bool, Wiring] = {}
        log.debug("nao supernet %s: %d parameters", space.key,
                  sum(p.numel() for p in self.parameters()))

    def _on_active(self, arch: Arch) -> None:
        self._wiring = self._wire(arch)

    def _wire(self, arch: Arch) -> dict[bool, Wiring]:
        """Per cell kind (reduction or not): its nodes and loose ends."""
        normal, reduce = self.space.cells(arch)
        return {False: (normal, loose_ends(normal)), True: (reduce, loose_ends(reduce))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._wiring:
            _ = self.active  # raises InvalidOption: nothing is active yet
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self._wiring[cell.reduction])
        return self.classifier(torch.flatten(self.pool(s1), 1))

    @torch.no_grad()
    def extract(self, arch: Arch) -> nn.Module:
        arch = self.space.validate(arch)
        wiring = self._wire(arch)
        net = self.space.build(arch, self.num_classes, self.input_size)
        net.stem.load_state_dict(self.stem.state_dict())
        net.classifier.load_state_dict(self.classifier.state_dict())
        for mine, theirs in zip(self.cells, net.cells):
            mine.copy_into(theirs, wiring[mine.reduction])
        return self._deliver(net)
