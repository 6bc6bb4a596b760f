"""Accuracy of an architecture with the weights it inherits from a trained supernet.

Why BN is recalibrated first: a supernet's batch-norm running statistics are an
average over every architecture trained, which fits none of them; with them an
otherwise good network can score near chance in eval mode. Re-estimating the
statistics on a few training batches for the one architecture (cumulative average,
no gradient, weights unchanged) is what SPOS, BigNAS and AttentiveNAS do before
ranking sub-networks. The supernet's own statistics are put back afterwards, so
evaluating one architecture never changes what the next one sees.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from hwnas.evaluators.base import ComposedEvaluator
from hwnas.evaluators.datasets import DataSplit
from hwnas.oneshot.base import OneShotSupernet
from spaces import Arch, Space
from spaces.core.errors import Incompatible, InvalidOption

log = logging.getLogger(__name__)

#: how an architecture's accuracy is read from the supernet: BN recalibration then the
#: supernet's own classifier, or a linear probe on frozen features (hwnas.oneshot.probe:
#: for a supernet trained without labels)
PROTOCOLS = ("recalibrate", "probe")

_BN = nn.modules.batchnorm._BatchNorm


def batchnorms(module: nn.Module) -> list[_BN]:
    return [m for m in module.modules() if isinstance(m, _BN)]


@contextlib.contextmanager
def kept_bn_stats(module: nn.Module) -> Iterator[None]:
    """Run the body, then put every BN running statistic (and counter) of ``module`` back
    as it was: forward passes in train mode inside leave no trace."""
    saved = [(bn, {k: v.clone() for k, v in bn.named_buffers(recurse=False) if v is not None},
              bn.momentum) for bn in batchnorms(module)]
    try:
        yield
    finally:
        with torch.no_grad():
            for bn, buffers, momentum in saved:
                for name, value in buffers.items():
                    getattr(bn, name).copy_(value)
                bn.momentum = momentum


@torch.no_grad()
def recalibrate_bn(module: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate every BN's running mean and variance as the exact (cumulative) average
    over ``batches``, then leave ``module`` in eval mode. Weights are not touched.
    Returns the number of batches used."""
    bns = batchnorms(module)
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: every batch weighs the same
    used = 0
    try:
        module.train()
        for x in batches:
            module(x)
            used += 1
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        module.eval()
    if bns and not used:
        raise InvalidOption("batch norm recalibration needs at least one batch")
    return used


def calibration_batches(x: torch.Tensor, calib_batches: int, batch_size: int,
                        seed: int = 0) -> list[torch.Tensor]:
    """``calib_batches`` batches of training images in a fixed, seeded order (the same for
    every architecture, so results are comparable and cacheable)."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    out = []
    for start in range(0, min(len(x), calib_batches * batch_size), batch_size):
        idx = order[start:start + batch_size]
        if len(idx) > 1:  # BN cannot take statistics of one image
            out.append(x[idx])
    return out


@torch.no_grad()
def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy (%) of ``module`` in eval mode."""
    module.eval()
    device = _device_of(module)
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = module(x[start:start + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == y[start:start + batch_size]).sum())
    return 100.0 * correct / max(1, len(y))


def _device_of(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def recalibrated_accuracy(module: nn.Module, data: DataSplit, calib_batches: int = 8,
                          batch_size: int = 64, seed: int = 0) -> float:
    """Validation accuracy (%) of ``module`` after re-estimating its BN statistics on
    ``calib_batches`` seeded training batches: the one protocol for inherited weights, so
    a file exported from the supernet carries the accuracy ``inherited_accuracy`` gave."""
    device = _device_of(module)
    batches = (b.to(device) for b in calibration_batches(data.x_train, calib_batches,
                                                          batch_size, seed))
    recalibrate_bn(module, batches)
    return accuracy(module, data.x_val, data.y_val, max(batch_size, 256))


def inherited_accuracy(supernet: OneShotSupernet, arch: Arch, data: DataSplit,
                       calib_batches: int = 8, batch_size: int = 64, seed: int = 0) -> float:
    """Validation accuracy (%) of ``arch`` with the supernet's weights, after recalibrating
    BN on ``calib_batches`` training batches. Measured on ``supernet.extract(arch)`` -- the
    same outputs as the supernet at ``arch`` (tested to 1e-5) at the cost of the
    architecture's own width rather than the supernet's masked full width (about 2x faster
    on fbnetv2) -- so the supernet itself is left exactly as it was."""
    module = supernet.extract(arch)
    return recalibrated_accuracy(module, data, calib_batches, batch_size, seed)


@contextlib.contextmanager
def scoring(supernet: OneShotSupernet) -> Iterator[None]:
    """Score architectures with the shared weights as they are and leave no trace: train
    mode (BN normalises with the minibatch's statistics) with every running statistic put
    back, and the active architecture and train/eval mode restored afterwards."""
    previous = supernet._active
    was_training = supernet.training
    try:
        with kept_bn_stats(supernet):
            supernet.train()
            yield
    finally:
        supernet.train(was_training)
        if previous is not None:
            supernet.set_active(previous)


@torch.no_grad()
def shared_weight_accuracy(supernet: OneShotSupernet, archs: Sequence[Arch], x: torch.Tensor,
                           y: torch.Tensor) -> np.ndarray:
    """Each architecture's accuracy (a fraction) on one minibatch with the shared weights
    (:func:`scoring`): the cheap estimate of ENAS's reward and of RSPS's screening --
    milliseconds, not the seconds of :func:`inherited_accuracy`'s recalibration."""
    device = _device_of(supernet)
    x, y = x.to(device), y.to(device)
    out = []
    with scoring(supernet):
        for arch in archs:
            supernet.set_active(arch)
            out.append(float((supernet(x).argmax(1) == y).float().mean()))
    return np.asarray(out, dtype=float)


class OneShotEvaluator(ComposedEvaluator):
    """Accuracy inherited from a trained supernet (BN recalibrated), latency from a latency
    source, MACs/params from the space: seconds per architecture instead of minutes of
    training each. Results are memoised per arch (the supernet is frozen while it
    serves); wrap in :class:`~hwnas.evaluators.cache.CachedEvaluator` for a file cache."""

    name = "oneshot"
    accuracy_ceiling = 100.0

    def __init__(self, space: Space, metrics: Sequence[str], supernet: OneShotSupernet,
                 data: DataSplit, calib_batches: int = 8, batch_size: int = 64, seed: int = 0,
                 latency: Any = None, input_size: int | None = None,
                 checkpoint: str | None = None, protocol: str = "recalibrate") -> None:
        if supernet.space.key != space.key:
            raise Incompatible(f"the supernet holds space {supernet.space.key}, not {space.key}")
        size = input_size or supernet.input_size
        if size != supernet.input_size:
            raise Incompatible(f"the supernet was built for {supernet.input_size}x"
                               f"{supernet.input_size} inputs, not {size}x{size}")
        if tuple(data.x_train.shape[1:]) != tuple(space.input_shape(size)):
            raise Incompatible(f"dataset images are {tuple(data.x_train.shape[1:])} but the "
                               f"supernet takes {space.input_shape(size)}")
        if data.num_classes != supernet.num_classes:
            raise Incompatible(f"the dataset has {data.num_classes} classes but the supernet's "
                               f"classifier has {supernet.num_classes}")
        if protocol not in PROTOCOLS:
            raise InvalidOption(f"unknown evaluation protocol {protocol!r}: choose "
                                f"{' or '.join(PROTOCOLS)}")
        if calib_batches < 1 or batch_size < 2:
            raise InvalidOption(f"BN recalibration needs at least 1 batch of at least 2 images, "
                                f"got {calib_batches} batches of {batch_size}")
        self.supernet, self.data = supernet, data
        self.calib_batches, self.batch_size, self.seed = calib_batches, batch_size, seed
        self.checkpoint, self.protocol = checkpoint, protocol
        self._memo: dict[Arch, float] = {}
        super().__init__(space, metrics, latency, size, data.num_classes)

    @classmethod
    def from_checkpoint(cls, path: str, space: Space, metrics: Sequence[str], data: DataSplit,
                        factory: Callable[[Space, int, int], OneShotSupernet] | None = None,
                        **options: Any) -> "OneShotEvaluator":
        """The evaluator of a supernet checkpoint (refused if it was trained on another
        space, preset, input size or dataset). A supernet trained without labels (Pi-NAS)
        is evaluated with a linear probe unless ``protocol`` says otherwise."""
        from hwnas.oneshot.checkpoint import load_supernet, objective_name, read_meta

        if objective_name(read_meta(path)) == "pi":
            options.setdefault("protocol", "probe")

        if factory is None:
            from hwnas.oneshot import make_supernet as factory  # type: ignore[no-redef]
        input_size = options.pop("input_size", None) or int(data.x_train.shape[-1])
        supernet = factory(space, data.num_classes, input_size)
        load_supernet(path, supernet, dataset=data.name)
        return cls(space, metrics, supernet, data, input_size=input_size, checkpoint=str(path),
                   **options)

    def _accuracy_many(self, archs: list[Arch]) -> np.ndarray:
        for arch in archs:
            if arch not in self._memo:
                if self.protocol == "probe":
                    from hwnas.oneshot.probe import probe_accuracy

                    self._memo[arch] = probe_accuracy(self.supernet.extract(arch), self.data,
                                                      self.calib_batches, self.batch_size,
                                                      self.seed)
                else:
                    self._memo[arch] = inherited_accuracy(self.supernet, arch, self.data,
                                                          self.calib_batches, self.batch_size,
                                                          self.seed)
        return np.asarray([self._memo[a] for a in archs], dtype=float)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(data=self.data.describe(), supernet=self.supernet.space.key,
                   checkpoint=self.checkpoint, calib_batches=self.calib_batches,
                   batch_size=self.batch_size, seed=self.seed, protocol=self.protocol)
        return out


__all__ = ["OneShotEvaluator", "accuracy", "batchnorms", "calibration_batches",
           "inherited_accuracy", "kept_bn_stats", "recalibrate_bn", "scoring",
           "shared_weight_accuracy"]
