"""The torch side of the DARTS space: the eight DARTS operations, the cell and the CIFAR network.

Kept apart from :mod:`spaces.darts` so that parsing, sampling and encoding DARTS
genotypes never imports torch; only ``DartsSpace.build`` does. Layer for layer this is
the evaluation network of DARTS (Liu et al., ICLR 2019; quark0/darts ``cnn/model.py``
and ``operations.py``) minus what only training uses -- no auxiliary head, no drop
path -- so the built module is what one deploys:

* every BN is affine (the evaluation network's; the search supernet's are not);
* pooling ops are bare pooling, *without* the BN that DARTS' search-time mixed op puts
  after them (that BN belongs to the continuous relaxation, not to a derived network);
* ``skip_connect`` with stride 2 is a :class:`FactorizedReduce`;
* ``none`` (:class:`Zero`) is here only for a later mixed-op supernet: the discrete
  space never picks it, so no standalone network contains one.

Every structural choice is made at construction, so ``forward`` has no control flow
on tensor values and traces / exports to ONNX as one static graph.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# A cell as the network needs it: 8 (op name, input index) pairs, two per node, in
# DARTS' genotype order; input 0 = c_{k-2}, 1 = c_{k-1}, 2 + j = node j.
CellSpec = Sequence[tuple[str, int]]
NUM_NODES = 4


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv (no bias: BN follows) -> BN; 1x1, it preprocesses a cell's inputs."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, padding: int = 0) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


def _unit(c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int) -> list[nn.Module]:
    """One ReLU -> depthwise (dilated) kxk -> pointwise 1x1 -> BN unit, the brick of both
    DARTS convolutions (a list so the two sep_conv units sit flat in one Sequential)."""
    return [
        nn.ReLU(inplace=False),
        nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation,
                  groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
    ]


class DilConv(nn.Sequential):
    """``dil_conv_kxk``: one unit with dilation 2 (a 3x3 sees 5x5, a 5x5 sees 9x9)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
        super().__init__(*_unit(c_in, c_out, kernel, stride, padding, dilation))


class SepConv(nn.Sequential):
    """``sep_conv_kxk``: two stacked units, the stride on the first, as DARTS (after
    NASNet) defines it: one depthwise-separable unit is too weak an op."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(*_unit(c_in, c_in, kernel, stride, padding, 1),
                         *_unit(c_in, c_out, kernel, 1, padding, 1))


class Zero(nn.Module):
    """``none``: zeros of the op's output shape (strided like the other ops), for the
    mixed op of a continuous-relaxation supernet."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride] * 0.0


class FactorizedReduce(nn.Module):
    """ReLU, then two stride-2 1x1 convs of half the output channels each, the second on
    the input shifted by one pixel, concatenated and BN'd: halves the resolution without
    dropping three pixels in four (DARTS' reduction ``skip_connect`` and the
    preprocessing of c_{k-2} after a reduction).

    DARTS shifts with ``x[:, :, 1:, 1:]``, which gives mismatched halves on odd sizes; here
    the input is zero-padded by one on the bottom/right first -- the same values on even
    sizes, and ``ceil(H/2)`` like every other stride-2 op on odd ones.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        half = c_out // 2
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, half, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - half, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def make_op(name: str, channels: int, stride: int) -> nn.Module:
    """One DARTS op by its ``genotypes.PRIMITIVES`` name; ``stride`` is 2 only on a
    reduction cell's edges from the cell inputs. Paddings keep stride-1 ops size-preserving."""
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        # count_include_pad=False as in DARTS: border pixels average fewer terms.
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    if name == "sep_conv_3x3":
        return SepConv(channels, channels, 3, stride, 1)
    if name == "sep_conv_5x5":
        return SepConv(channels, channels, 5, stride, 2)
    if name == "dil_conv_3x3":
        return DilConv(channels, channels, 3, stride, 2, 2)
    if name == "dil_conv_5x5":
        return DilConv(channels, channels, 5, stride, 4, 2)
    raise ValueError(f"unknown DARTS op {name!r}")


class DartsCell(nn.Module):
    """Preprocess c_{k-2} and c_{k-1} to ``channels`` (1x1 ReLUConvBN; FactorizedReduce for
    c_{k-2} when the previous cell reduced, since it is then twice as large), run the four
    nodes (node i = op_a(state_a) + op_b(state_b)), output the four nodes concatenated
    (``4 * channels``). Nodes read by later nodes are still part of the output, as in DARTS."""

    def __init__(self, spec: CellSpec, c_prev_prev: int, c_prev: int, channels: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        if len(spec) != 2 * NUM_NODES:
            raise ValueError(f"a DARTS cell has {2 * NUM_NODES} (op, input) pairs, got {len(spec)}")
        self.reduction = reduction
        self.pre0: nn.Module = (FactorizedReduce(c_prev_prev, channels) if reduction_prev
                                else ReLUConvBN(c_prev_prev, channels))
        self.pre1 = ReLUConvBN(c_prev, channels)
        # In a reduction cell only the edges reading the cell inputs (0, 1) have stride 2.
        self.ops = nn.ModuleList(make_op(name, channels, 2 if reduction and source < 2 else 1)
                                 for name, source in spec)
        self.sources = tuple(source for _, source in spec)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(0, len(self.sources), 2):
            a, b = self.sources[i], self.sources[i + 1]
            states.append(self.ops[i](states[a]) + self.ops[i + 1](states[b]))
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nn.Module):
    """DARTS' CIFAR network: stem 3x3 conv + BN to ``3 * C``, ``layers`` cells (reduction
    cells, which double the channels, at ``layers // 3`` and ``2 * layers // 3``), global
    average pooling and a linear classifier. Returns logits only."""

    def __init__(self, normal: CellSpec, reduce: CellSpec, C: int, layers: int,
                 in_channels: int = 3, num_classes: int = 10, stem_multiplier: int = 3) -> None:
        super().__init__()
        c_stem = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        c_pp, c_p, c, reduction_prev = c_stem, c_stem, C, False
        cells = []
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
            cells.append(DartsCell(reduce if reduction else normal, c_pp, c_p, c, reduction, reduction_prev))
            c_pp, c_p, reduction_prev = c_p, NUM_NODES * c, reduction
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(self.pool(s1), 1))
