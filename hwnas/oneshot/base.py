"""The one abstraction every weight-sharing method stands on: a one-shot supernet.

A :class:`OneShotSupernet` is one ``nn.Module`` that holds the weights of every
architecture of one space (at one ``num_classes`` and ``input_size``):

* ``set_active(arch)`` chooses the single path the next ``forward`` runs;
* ``set_active_paths(keep)`` (optional) runs several options of each decision at
  once, their outputs summed -- what path dropout (Bender et al. 2018) trains;
* ``sample(rng)`` draws an architecture uniformly (the space's own sampler), so a
  sampler never needs to know a space's rules;
* ``extract(arch)`` returns ``space.build(arch, num_classes, input_size)`` with the
  supernet's weights copied in: the standalone network that ships, whose outputs
  equal the supernet's at that architecture (train and eval mode, to 1e-5).

Why these and no more: samplers and controllers (SPOS, One-Shot, BigNAS,
AttentiveNAS, ENAS, ...) only choose *which* architecture a step trains or a
search evaluates; evaluators only need a forward pass at an architecture and a
way to recalibrate BN; the pipeline only needs the deployable module. A supernet
knows its space and nothing about devices, latency or data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
import torch
from torch import nn

from spaces import Arch, Space
from spaces.core.errors import Incompatible, InvalidOption

#: A space has no one-shot supernet (builder spaces whose choices cannot share weights).
NoSupernet = Incompatible


def check_keep(space: Space, keep: Sequence[Sequence[int]], allow_empty: bool = False
               ) -> tuple[tuple[int, ...], ...]:
    """``keep`` of :meth:`OneShotSupernet.set_active_paths` checked against ``space``: one list
    of distinct option indices per decision (sorted, so sums run in one order); an empty list
    only where ``allow_empty`` (a decision whose options may all be dropped)."""
    if isinstance(keep, (str, bytes)) or len(keep) != len(space.decisions):
        raise InvalidOption(f"keep must hold one list of option indices per decision "
                            f"({len(space.decisions)} for {space.name})")
    checked = []
    for decision, options in zip(space.decisions, keep):
        indices = tuple(sorted(int(o) for o in options))
        if len(set(indices)) != len(indices) or any(not 0 <= o < len(decision) for o in indices):
            raise InvalidOption(f"keep for decision {decision.name!r} must be distinct option "
                                f"indices in 0..{len(decision) - 1}, got {list(options)}")
        if not indices and not allow_empty:
            raise InvalidOption(f"keep for decision {decision.name!r} is empty: the {space.name} "
                                f"supernet needs at least one option per decision")
        checked.append(indices)
    return tuple(checked)


class OneShotSupernet(nn.Module, ABC):
    """Every architecture of ``space`` in one module; ``forward`` runs the active one."""

    #: the supports multi-path activation (``set_active_paths``), needed by path dropout
    supports_paths: bool = False

    def __init__(self, space: Space, num_classes: int, input_size: int) -> None:
        super().__init__()
        self.space = space
        self.num_classes = int(num_classes)
        self.input_size = int(input_size)
        self._active: Arch | None = None

    # -- which architecture runs ------------------------------------------------------------
    @property
    def active(self) -> Arch:
        if self._active is None:
            raise InvalidOption("no architecture is active in the supernet: call set_active(arch) "
                                "or sample(rng) first")
        return self._active

    def set_active(self, arch: Arch) -> Arch:
        """Run ``arch`` from now on (validated against the space); returns it."""
        arch = self.space.validate(arch)
        self._active = arch
        self._on_active(arch)
        return arch

    def sample(self, rng: np.random.Generator | int | None = None) -> Arch:
        """Draw an architecture uniformly from the space and make it active."""
        return self.set_active(self.space.sample(rng))

    def set_active_paths(self, keep: Sequence[Sequence[int]]) -> None:
        """Activate, per decision, the option indices in ``keep[i]`` at once (outputs summed).
        Supernets whose decisions cannot be run side by side refuse with one sentence."""
        raise NoSupernet(f"the {self.space.name} supernet runs one path at a time; path dropout "
                         f"needs a supernet whose options can run side by side")

    def _on_active(self, arch: Arch) -> None:
        """Hook: a subclass switches its layers to ``arch`` here."""

    def _deliver(self, net: nn.Module) -> nn.Module:
        """``net`` (a freshly built standalone network) on this supernet's device and dtype
        and in its train/eval mode, so an extracted network runs where the supernet runs."""
        param = next(self.parameters(), None)
        if param is not None:
            net = net.to(device=param.device, dtype=param.dtype)
        return net.train(self.training)

    # -- the network that ships -------------------------------------------------------------
    @abstractmethod
    def extract(self, arch: Arch) -> nn.Module:
        """``space.build(arch, num_classes, input_size)`` with this supernet's weights (and BN
        running statistics) copied in; independent of the supernet afterwards."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the active architecture (or active paths)."""
