"""Layers of the deployable FBNetV2 network: conv-BN-ReLU, inverted residual, input resize.

Kept apart from ``spaces.fbnetv2`` so the space's bookkeeping (decisions, strings,
layout) stays readable and the layers can be reused by the channel-masking supernet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """Conv (no bias, BN follows) + BN + optional ReLU; padding keeps 'same' size at stride 1."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, relu: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, depthwise kxk, linear 1x1 project.

    Expansion 1 drops the expand conv (it would be a plain 1x1 of the same width,
    which MobileNetV2 and FBNet also omit). ``residual`` is decided by the space,
    not inferred from shapes, so the standalone net and the supernet agree.
    """

    def __init__(self, cin: int, cout: int, kernel: int, expansion: int,
                 stride: int, residual: bool) -> None:
        super().__init__()
        if residual and (stride != 1 or cin != cout):
            raise ValueError("a residual block needs stride 1 and equal widths")
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNReLU(cin, hidden, 1))
        layers.append(ConvBNReLU(hidden, hidden, kernel, stride, groups=hidden))
        layers.append(ConvBNReLU(hidden, cout, 1, relu=False))
        self.body = nn.Sequential(*layers)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class Resize(nn.Module):
    """Bilinear resize to a fixed square size (align_corners=False; ONNX ``Resize``).

    Stands in for FBNetV2's spatial subsampling: every architecture takes the same
    input shape, and the chosen resolution is applied inside the network.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class FBNetV2Net(nn.Module):
    """Resize -> stem -> stages -> 1x1 head conv -> global average pool -> linear."""

    def __init__(self, resize: nn.Module, stem: nn.Module, stages: nn.Sequential,
                 head: nn.Module, classifier: nn.Linear) -> None:
        super().__init__()
        self.resize = resize
        self.stem = stem
        self.stages = stages
        self.head = head
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(self.resize(x)))
        x = self.head(x).mean(dim=(2, 3))
        return self.classifier(x)
