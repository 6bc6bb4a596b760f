"""The torch network of an FBNet-space architecture (kept apart from :mod:`spaces.fbnet`
so that listing, sampling and parsing the space never import torch)."""

from __future__ import annotations

import torch
from torch import nn

from spaces.fbnet import STEM_CHANNELS, BlockSpec, LayerSlot, StemConfig
from spaces.mobile_blocks import ConvBNReLU, InvertedResidual, Skip


class FBNet(nn.Module):
    """A standalone FBNet-space network (stem, 22 chosen blocks, header, classifier)."""

    def __init__(self, stem: StemConfig, slots: tuple[LayerSlot, ...], blocks: list[BlockSpec],
                 num_classes: int, in_channels: int = 3):
        super().__init__()
        self.stem = ConvBNReLU(in_channels, STEM_CHANNELS, kernel=3, stride=stem.stem_stride)
        self.layers = nn.Sequential(*(_make_block(slot, spec) for slot, spec in zip(slots, blocks)))
        self.header = ConvBNReLU(slots[-1].c_out, stem.header_channels, kernel=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(stem.header_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # HW-NAS-Bench's init: He (fan-out) convs, unit BN, a near-zero classifier.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.header(self.layers(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


def _make_block(slot: LayerSlot, spec: BlockSpec) -> nn.Module:
    if spec.is_skip:
        return Skip(slot.c_in, slot.c_out, slot.stride)
    return InvertedResidual(slot.c_in, slot.c_out, kernel=spec.kernel, expansion=spec.expansion,
                            stride=slot.stride, groups=spec.groups)


