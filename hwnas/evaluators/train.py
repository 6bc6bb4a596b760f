"""Accuracy by really training each candidate for a few epochs on CPU.

Every candidate starts from the same seed (weights and batch order), so two
runs of a search see identical accuracies and differences between candidates
come from the architecture, not the draw. Accuracy is measured on the
held-out validation split of the training data (never a test split).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.evaluators.base import ComposedEvaluator
from hwnas.evaluators.datasets import DataSplit
from spaces import Arch, Space
from spaces.errors import HwnasError


def _warmup_cosine(total_steps: int):
    """Learning-rate factor: linear warm-up over the first 10% of steps, then cosine to 0.
    Written out (rather than OneCycleLR) because it must also work for a handful of steps."""
    warm = max(1, total_steps // 10)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))
    return factor


class TrainEvaluator(ComposedEvaluator):
    """Builds ``space.build(arch)``, trains it with AdamW (warm-up + cosine), reports val accuracy."""

    name = "train"
    accuracy_ceiling = 100.0

    def __init__(self, space: Space, metrics: Sequence[str], data: DataSplit, epochs: int = 3,
                 batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 5e-4, seed: int = 0,
                 latency: Any = None, input_size: int | None = None, threads: int = 1) -> None:
        if epochs < 1:
            raise HwnasError(f"--epochs must be at least 1, got {epochs}")
        if batch_size < 1:
            raise HwnasError(f"batch size must be at least 1, got {batch_size}")
        self.data, self.epochs, self.batch_size = data, epochs, batch_size
        self.lr, self.weight_decay, self.seed, self.threads = lr, weight_decay, seed, threads
        size = input_size or space.default_input_size
        if tuple(data.x_train.shape[1:]) != tuple(space.input_shape(size)):
            raise HwnasError(f"dataset images are {tuple(data.x_train.shape[1:])} but the space "
                             f"takes {space.input_shape(size)}")
        super().__init__(space, metrics, latency, input_size, data.num_classes)

    def _accuracy_many(self, archs: list[Arch]) -> np.ndarray:
        return np.asarray([self.train_one(a) for a in archs], dtype=float)

    def train_one(self, arch: Arch) -> float:
        """Validation accuracy (%) after ``epochs`` of training from the fixed seed."""
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            torch.manual_seed(self.seed)
            return self.fit(self.space.build(arch, self.num_classes, self.input_size))
        finally:
            torch.set_num_threads(previous_threads)

    def fit(self, model: torch.nn.Module) -> float:
        """Train ``model`` (fresh, or holding inherited weights to fine-tune) with this
        evaluator's recipe and data order, then return its validation accuracy (%)."""
        # channels-last runs depthwise/pointwise convs about 1.5-2x faster on CPU
        model = model.to(memory_format=torch.channels_last)
        gen = torch.Generator().manual_seed(self.seed)
        x = self.data.x_train.contiguous(memory_format=torch.channels_last)
        y = self.data.y_train
        steps_per_epoch = math.ceil(len(y) / self.batch_size)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, _warmup_cosine(self.epochs * steps_per_epoch))
        model.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(y), generator=gen)
            for start in range(0, len(y), self.batch_size):
                idx = order[start:start + self.batch_size]
                if len(idx) < 2:  # BatchNorm cannot train on a single sample
                    continue
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        self._recalibrate_bn(model, x)
        return self._val_accuracy(model)

    @staticmethod
    @torch.no_grad()
    def _recalibrate_bn(model: torch.nn.Module, x: torch.Tensor, samples: int = 512) -> None:
        """Re-estimate BatchNorm statistics as exact averages over training images.

        After a few dozen steps the running averages (momentum 0.1) still mix in
        the statistics of the untrained network, which can leave an otherwise
        good candidate near chance accuracy in eval mode; one no-grad pass with
        cumulative averaging fixes that at the cost of a forward pass.
        """
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return
        saved = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average
        model.train()
        for start in range(0, min(samples, len(x)), 128):
            model(x[start:start + 128])
        for bn, momentum in zip(bns, saved):
            bn.momentum = momentum

    @torch.no_grad()
    def _val_accuracy(self, model: torch.nn.Module) -> float:
        model.eval()
        correct = 0
        for start in range(0, len(self.data.y_val), 256):
            logits = model(self.data.x_val[start:start + 256])
            correct += int((logits.argmax(1) == self.data.y_val[start:start + 256]).sum())
        return 100.0 * correct / len(self.data.y_val)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(data=self.data.describe(), epochs=self.epochs, batch_size=self.batch_size,
                   lr=self.lr, weight_decay=self.weight_decay, seed=self.seed)
        return out
