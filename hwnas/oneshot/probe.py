"""Accuracy of an architecture whose supernet never saw a label: a linear probe.

A supernet trained with the Pi-NAS objective (:mod:`hwnas.oneshot.pinas`) learns an
embedding, not a classifier: its last layer's outputs are compared across paths and
views, never with classes, so "validation accuracy with inherited weights" is
meaningless for it. Pi-NAS evaluates such a supernet's architectures on labels
afterwards; here with the standard protocol of self-supervised learning, a *linear
probe*: the inherited network is frozen (BN recalibrated first, as every one-shot
evaluation here), the input of its final linear layer is taken as the feature, a
logistic regression (scikit-learn) is fitted on training images and scored on the
validation split. The probe sees labels, the supernet never did.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hwnas.evaluators.datasets import DataSplit
from hwnas.oneshot.evaluate import _device_of, calibration_batches, recalibrate_bn
from spaces.core.errors import Incompatible

#: training images the probe is fitted on (a seeded subset: seconds, not minutes)
PROBE_IMAGES = 2000


def final_linear(module: nn.Module) -> nn.Linear:
    """The network's last ``nn.Linear`` (its classifier): its input is the feature."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise Incompatible(f"{type(module).__name__} has no linear classifier whose input a "
                           f"probe could read")
    return linears[-1]


@torch.no_grad()
def features(module: nn.Module, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """The input of ``module``'s final linear layer for each image (eval mode)."""
    captured: list[torch.Tensor] = []
    hook = final_linear(module).register_forward_pre_hook(
        lambda _m, args: captured.append(args[0].detach().flatten(1).cpu()))
    module.eval()
    device = _device_of(module)
    try:
        for start in range(0, len(x), batch_size):
            module(x[start:start + batch_size].to(device))
    finally:
        hook.remove()
    return torch.cat(captured).numpy().astype(np.float64)


def probe_accuracy(module: nn.Module, data: DataSplit, calib_batches: int = 8,
                   batch_size: int = 64, seed: int = 0, images: int = PROBE_IMAGES) -> float:
    """Validation accuracy (%) of a logistic regression on ``module``'s frozen features,
    after BN recalibration on ``calib_batches`` seeded training batches."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    device = _device_of(module)
    recalibrate_bn(module, (b.to(device) for b in calibration_batches(
        data.x_train, calib_batches, batch_size, seed)))
    order = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))
    fit = order[:images]
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    probe.fit(features(module, data.x_train[fit]), data.y_train[fit].numpy())
    predicted = probe.predict(features(module, data.x_val))
    return 100.0 * float((predicted == data.y_val.numpy()).mean())


__all__ = ["PROBE_IMAGES", "features", "final_linear", "probe_accuracy"]
