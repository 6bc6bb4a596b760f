"""The NAS-Bench-201 network as plain ``nn.Module`` s: cell ops, the cell, the macro skeleton.

Kept apart from ``spaces.nb201`` (strings, index table) so that the space can be
listed and indexed without building anything. Layer for layer this is the network
NAS-Bench-201 trained and costed (Dong & Yang, ICLR 2020): ReLU-Conv-BN convs
without bias, BN with affine weights, average pooling that ignores padding, ResNet
basic blocks (stride 2) between the three stages. Every structural choice is made
at construction, so ``forward`` has no control flow on tensor values and traces /
exports to ONNX as one static graph.
"""

from __future__ import annotations

import torch
from torch import nn

from spaces.nb201 import EDGES

NUM_NODES = 4


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias: BN follows) -> BN, the benchmark's ``nor_conv`` op."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


def make_op(name: str, channels: int) -> nn.Module | None:
    """One cell edge; ``None`` for ``none`` (the zero op contributes nothing to a sum,
    so the cell leaves it out instead of computing ``x * 0``)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        # count_include_pad=False as in the benchmark: border pixels average fewer terms.
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 op {name!r}")


class NB201Cell(nn.Module):
    """The searched cell: node j = sum over i < j of op_ij(node i); node 3 is the output.

    ``ops`` are the six op names in :data:`EDGES` order. A node whose incoming edges
    are all ``none`` is a zero tensor, exactly what the benchmark's ``Zero`` op yields.
    Ops whose result never reaches the output are still built and run, as in the
    benchmark, so that counted FLOPs/params match its published numbers.
    """

    def __init__(self, ops: tuple[str, ...] | list[str], channels: int) -> None:
        super().__init__()
        if len(ops) != len(EDGES):
            raise ValueError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(ops)} ops")
        self.edges = nn.ModuleList()
        self.sources: list[tuple[int, ...]] = []  # per target node: source of each kept edge
        for target in range(1, NUM_NODES):
            kept, sources = nn.ModuleList(), []
            for (tgt, src), name in zip(EDGES, ops):
                op = make_op(name, channels) if tgt == target else None
                if op is not None:
                    kept.append(op)
                    sources.append(src)
            self.edges.append(kept)
            self.sources.append(tuple(sources))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for ops, sources in zip(self.edges, self.sources):
            if not sources:
                nodes.append(torch.zeros_like(x))
                continue
            total = ops[0](nodes[sources[0]])
            for op, src in zip(ops[1:], sources[1:]):
                total = total + op(nodes[src])
            nodes.append(total)
        return nodes[-1]


class ResNetReduction(nn.Module):
    """Stride-2 ResNet basic block between stages (halves resolution, changes width).
    Its shortcut is 2x2 average pooling then a 1x1 conv, with no BN."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """Stem conv3x3+BN, three stages of ``N`` cells (widths C, 2C, 4C) joined by
    reduction blocks, then BN-ReLU, global average pooling and a linear classifier.
    Returns logits only (the benchmark's module also returned the pooled features)."""

    def __init__(self, ops: tuple[str, ...] | list[str], C: int = 16, N: int = 5,
                 num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        width = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetReduction(width, width * 2))
                width *= 2
            layers.extend(NB201Cell(ops, width) for _ in range(N))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))
