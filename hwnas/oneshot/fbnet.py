"""The one-shot supernet of the FBNet space (HW-NAS-Bench: 22 layers x 9 blocks).

One-shot weight sharing (Bender et al. 2018; SPOS, Guo et al. 2019): each of the 22
layers holds all 9 candidate blocks as separate modules, shared by every
architecture that picks that block there. ``set_active`` runs one block per layer
(SPOS's single path); ``set_active_paths`` runs several blocks of a layer on the
same input and sums their outputs (Bender et al.'s path dropout). Every block of a
layer has the layer's output shape -- ``skip`` on a layer that changes width or
stride is the space's 1x1 projection, not an identity -- so any set of blocks can
be summed.

Kept: the blocks *are* the standalone network's (``spaces.fbnet_net``), built and
initialised by ``space.build`` (HW-NAS-Bench's He / unit-BN init), each with its own
BN; the stem, header and classifier are shared by every architecture, as they are
one layer in every built network. Simplified: no block-level tricks from the
papers (e.g. FBNet's Gumbel mixture or channel masking); this is the plain
union of the candidates.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch import nn

from hwnas.oneshot.base import NoSupernet, OneShotSupernet, check_keep
from spaces import Arch
from spaces.fbnet import BLOCKS, FBNetSpace

log = logging.getLogger(__name__)


class FBNetSupernet(OneShotSupernet):
    """Every FBNet-space architecture in one module (see the module docstring)."""

    supports_paths = True

    def __init__(self, space: FBNetSpace, num_classes: int | None = None,
                 input_size: int | None = None) -> None:
        if not isinstance(space, FBNetSpace):
            raise NoSupernet(f"the fbnet supernet needs an fbnet space, not {space.key!r}")
        num_classes, input_size = space.num_classes(num_classes), space.input_size(input_size)
        super().__init__(space, num_classes, input_size)
        depth = len(space.decisions)
        # One standalone network per block option (that block on every layer): their
        # layers are the candidates, the first one's stem and head the shared layers.
        nets = [space.build(space.arch([option] * depth), num_classes, input_size)
                for option in range(len(BLOCKS))]
        self.stem, self.header = nets[0].stem, nets[0].header
        self.pool, self.classifier = nets[0].pool, nets[0].classifier
        self.layers = nn.ModuleList(nn.ModuleList(net.layers[i] for net in nets)
                                    for i in range(depth))
        self._keep: tuple[tuple[int, ...], ...] | None = None
        log.debug("fbnet supernet %s: %d parameters", space.key,
                  sum(p.numel() for p in self.parameters()))

    def _on_active(self, arch: Arch) -> None:
        self._keep = tuple((c,) for c in arch.choices)

    def set_active_paths(self, keep: Sequence[Sequence[int]]) -> None:
        """Run every block in ``keep[i]`` on layer ``i`` (at least one), outputs summed;
        all single blocks make that architecture active."""
        self._keep = check_keep(self.space, keep)
        single = all(len(k) == 1 for k in self._keep)
        self._active = self.space.arch([k[0] for k in self._keep]) if single else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._keep is None:
            _ = self.active  # raises InvalidOption: nothing is active yet
        x = self.stem(x)
        for blocks, kept in zip(self.layers, self._keep):
            outputs = [blocks[k](x) for k in kept]
            x = outputs[0]
            for y in outputs[1:]:
                x = x + y
        x = self.header(x)
        return self.classifier(torch.flatten(self.pool(x), 1))

    @torch.no_grad()
    def extract(self, arch: Arch) -> nn.Module:
        arch = self.space.validate(arch)
        net = self.space.build(arch, self.num_classes, self.input_size)
        for name in ("stem", "header", "classifier"):
            getattr(net, name).load_state_dict(getattr(self, name).state_dict())
        for layer, blocks, choice in zip(net.layers, self.layers, arch.choices):
            layer.load_state_dict(blocks[choice].state_dict())
        return self._deliver(net)
