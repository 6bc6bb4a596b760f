"""Mobile building blocks of the FBNet family (inverted residual, skip, shuffle).

They follow HW-NAS-Bench's FBNet inference model (``hw_nas_bench_api/fbnet_models/
model_infer.py``) so that a built network has the same layers, and so the same
cost, as the networks behind its latency and energy tables. All of them are plain
``nn.Module`` s with static shapes, which keeps them exportable to ONNX.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` groups (ShuffleNet).

    Without it a grouped 1x1 conv followed by another grouped 1x1 conv would keep
    the groups as separate networks; FBNet's ``_g2`` blocks shuffle after the
    first one.
    """

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [N, C, H, W] -> [N, g, C/g, H, W] -> [N, C/g, g, H, W] -> [N, C, H, W]
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ConvBNReLU(nn.Sequential):
    """Conv (no bias, "same" padding) -> BatchNorm -> ReLU: the stem, header and
    projecting-skip layer."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )


class InvertedResidual(nn.Module):
    """FBNet block: 1x1 expand (grouped) -> BN -> ReLU -> [shuffle] -> kxk depthwise
    (carries the stride) -> BN -> ReLU -> 1x1 project (grouped) -> BN, plus the
    input when the stride is 1 and the width is unchanged.

    The expansion conv is kept even for expansion 1, as HW-NAS-Bench (and FBNet's
    original Caffe2 blocks) do; the projection has no activation (linear
    bottleneck, MobileNetV2).
    """

    def __init__(self, c_in: int, c_out: int, *, kernel: int, expansion: int,
                 stride: int = 1, groups: int = 1):
        super().__init__()
        mid = c_in * expansion
        if c_in % groups or c_out % groups:
            raise ValueError(f"widths {c_in}->{c_out} are not divisible by groups={groups}")
        self.expand = ConvBNReLU(c_in, mid, kernel=1, groups=groups)
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = ConvBNReLU(mid, mid, kernel=kernel, stride=stride, groups=mid)
        self.project = nn.Sequential(
            nn.Conv2d(mid, c_out, 1, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.shuffle(self.expand(x))))
        return out + x if self.use_residual else out


class Skip(nn.Module):
    """The ``skip`` choice: identity when shapes allow, otherwise the cheapest layer
    that fixes them, a 1x1 conv (with the stride) -> BN -> ReLU.

    This is what HW-NAS-Bench's ``Skip`` does (and FBNet's ``Identity`` op), so a
    "skipped" layer that changes width or resolution still costs
    ``H_out * W_out * c_in * c_out`` MACs.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.project = (ConvBNReLU(c_in, c_out, kernel=1, stride=stride)
                        if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.project is None else self.project(x)
