"""The torch side of the NAO space: the five cell operations, the cell and the stacked network.

Kept apart from :mod:`spaces.nao` so that encoding, parsing and sampling NAO
architectures never imports torch; only ``NAOSpace.build`` does. Layers follow
NAO_pytorch's standalone (non-weight-sharing) CIFAR network, minus training-only
parts (drop-path, auxiliary head, dropout), so the built module is what one deploys.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# A node as the network needs it: (x input index, x op name, y input index, y op name).
NodeSpec = tuple[int, str, int, str]


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv (no bias, BN follows) -> BN: NASNet's pre-activation unit."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, padding: int = 0):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class SepConv(nn.Sequential):
    """Two stacked (ReLU, depthwise kxk, pointwise 1x1, BN) units, the stride on the first,
    as in NASNet/ENAS/NAO: one unit is too weak for a cell's only conv op."""

    def __init__(self, channels: int, kernel: int, stride: int):
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, kernel, stride=stride, padding=pad, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, kernel, padding=pad, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two stride-2 1x1 convs, the second on the input shifted by
    one pixel, so that no pixel is simply dropped (a lone strided 1x1 conv sees only a quarter).

    Output is ``ceil(H/2) x ceil(W/2)``, the same as a padded stride-2 3x3 op, for odd sizes too.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        half = c_out // 2
        self.conv_a = nn.Conv2d(c_in, half, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - half, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def make_op(name: str, channels: int, stride: int) -> nn.Module:
    """One branch operation; ``stride`` is 2 only on a reduction cell's inputs."""
    if name == "sep_conv_3x3":
        return SepConv(channels, 3, stride)
    if name == "sep_conv_5x5":
        return SepConv(channels, 5, stride)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "identity":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    raise ValueError(f"unknown NAO op {name!r}")


class Node(nn.Module):
    """``x_op(states[x_input]) + y_op(states[y_input])``: the node's two branches, summed."""

    def __init__(self, spec: NodeSpec, channels: int, reduction: bool):
        super().__init__()
        self.x_input, x_name, self.y_input, y_name = spec
        # In a reduction cell only branches reading the cell inputs (0, 1) change resolution.
        self.x_op = make_op(x_name, channels, 2 if reduction and self.x_input < 2 else 1)
        self.y_op = make_op(y_name, channels, 2 if reduction and self.y_input < 2 else 1)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        return self.x_op(states[self.x_input]) + self.y_op(states[self.y_input])


def loose_ends(spec: Sequence[NodeSpec]) -> list[int]:
    """States that no node reads (cell inputs included): they form the cell output."""
    used = {s[0] for s in spec} | {s[2] for s in spec}
    return [i for i in range(len(spec) + 2) if i not in used]


class Cell(nn.Module):
    """One NAO cell: preprocess the two inputs to ``channels``, run the B nodes, concatenate
    the loose ends and mix them back to ``channels`` with a 1x1 conv (so every cell outputs
    ``channels``, whatever the number of loose ends)."""

    def __init__(self, spec: Sequence[NodeSpec], c_prev_prev: int, c_prev: int, channels: int,
                 reduction: bool, prev_reduction: bool):
        super().__init__()
        self.reduction = reduction
        # s0 comes from two cells back: after a reduction it is twice as large as s1.
        if prev_reduction:
            self.pre0: nn.Module = nn.Sequential(nn.ReLU(inplace=False), FactorizedReduce(c_prev_prev, channels))
        elif c_prev_prev != channels:
            self.pre0 = ReLUConvBN(c_prev_prev, channels)
        else:
            self.pre0 = nn.Identity()
        self.pre1: nn.Module = ReLUConvBN(c_prev, channels) if c_prev != channels else nn.Identity()
        self.nodes = nn.ModuleList(Node(s, channels, reduction) for s in spec)
        self.concat = loose_ends(spec)
        # An unused cell input of a reduction cell is still at full resolution.
        self.gather = nn.ModuleList(
            FactorizedReduce(channels, channels) if reduction and i < 2 else nn.Identity()
            for i in self.concat
        )
        self.combine = ReLUConvBN(channels * len(self.concat), channels)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node in self.nodes:
            states.append(node(states))
        out = torch.cat([g(states[i]) for g, i in zip(self.gather, self.concat)], dim=1)
        return self.combine(out)


class NAONetwork(nn.Module):
    """CIFAR-style NAO network: stem, then N normal cells, a reduction cell (stride 2,
    channels x2), N normal, a reduction, N normal; global average pool, linear."""

    def __init__(self, normal: Sequence[NodeSpec], reduce: Sequence[NodeSpec], channels: int,
                 cells_per_stage: int, in_channels: int, num_classes: int, stem_multiplier: int = 3):
        super().__init__()
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        layout = ([False] * cells_per_stage + [True]) * 2 + [False] * cells_per_stage
        c_pp, c_p, c, prev_red = c_stem, c_stem, channels, False
        cells = []
        for reduction in layout:
            if reduction:
                c *= 2
            cells.append(Cell(reduce if reduction else normal, c_pp, c_p, c, reduction, prev_red))
            c_pp, c_p, prev_red = c_p, c, reduction
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(self.pool(s1), 1))
