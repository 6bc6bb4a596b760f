"""The one-shot supernet of the ``fbnetv2`` space: the search's single-path masked supernet,
driven by one-hot weights.

One-shot weight sharing (Bender et al. 2018; SPOS, Guo et al. 2019) over a space
whose options nest: a stage's widths are prefixes of its widest, a block's smaller
kernel is the centre of its largest and its expansions prefixes of the widest
hidden layer (FBNetV2 / DMaskingNAS channel masks, Single-Path NAS kernels). So
one masked block per decision already holds every option's weights:
:class:`hwnas.strategies.supernet.SinglePathSupernet`. Here it runs with the
one-hot weights of the active architecture, skipping every zero-weight branch,
which computes exactly the standalone network; ``extract`` is its ``standalone``
copy (the chosen channels and kernel centres).

Kept: the masked supernet as the search trains it, so weights trained by either
serve the other. Simplified: one path at a time -- the options of a decision share
weights (nested), so summing them as path dropout does would not mean running
separate candidates.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from hwnas.oneshot.base import NoSupernet, OneShotSupernet
from hwnas.strategies.supernet import SinglePathSupernet, one_hot_weights
from spaces import Arch
from spaces.fbnetv2 import FBNetV2Space

log = logging.getLogger(__name__)


class FBNetV2OneShot(OneShotSupernet):
    """Every ``fbnetv2`` architecture in one masked module (see the module docstring)."""

    def __init__(self, space: FBNetV2Space, num_classes: int | None = None,
                 input_size: int | None = None) -> None:
        if not isinstance(space, FBNetV2Space):
            raise NoSupernet(f"the fbnetv2 supernet needs an fbnetv2 space, not {space.key!r}")
        num_classes, input_size = space.num_classes(num_classes), space.input_size(input_size)
        super().__init__(space, num_classes, input_size)
        self.masked = SinglePathSupernet(space, num_classes, input_size)
        self._weights: list[torch.Tensor] = []
        log.debug("fbnetv2 supernet %s: %d parameters", space.key,
                  sum(p.numel() for p in self.parameters()))

    def _on_active(self, arch: Arch) -> None:
        self._weights = one_hot_weights(self.space, arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._weights:
            _ = self.active  # raises InvalidOption: nothing is active yet
        if self._weights[0].device != x.device:
            self._weights = [w.to(x.device) for w in self._weights]
        # sparse: zero-weight branches are skipped, so only the active path runs.
        return self.masked(x, self._weights, sparse=True)

    @torch.no_grad()
    def extract(self, arch: Arch) -> nn.Module:
        return self._deliver(self.masked.standalone(self.space.validate(arch)))
