"""Channel-masked layers: one convolution at the widest width serves every channel option.

FBNetV2's DMaskingNAS computes a layer once at its widest channel count and
forms ``sum_k g_k * (mask_k * features)`` with fixed 0/1 masks ``mask_k`` that
keep the first ``c_k`` channels. Because the masks are per channel, that sum is
one *effective* mask vector ``m = sum_k g_k mask_k`` (:func:`mix_masks`), so
the mixture costs one vector, not K feature maps.

We go one step further and fold ``m`` into BatchNorm's affine parameters
(``gamma * m``, ``beta * m``): ``m * BN(x) == BN_{gamma m, beta m}(x)`` exactly,
and since ``m >= 0``, ``relu(m * y) == m * relu(y)``. The masked layer then
stores exactly the activations the widest plain layer stores (conv output and
BN/ReLU output), which is what keeps the supernet's memory at about 1x the
widest network's (see ``benchmarks/supernet_memory.py``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def prefix_masks(widths: Sequence[int], max_width: int | None = None,
                 scale: int = 1) -> torch.Tensor:
    """(K, max_width * scale) float 0/1 matrix: row k keeps the first ``widths[k] * scale``
    channels. ``scale`` is an expansion ratio (a block's hidden width = input width x e)."""
    max_width = max(widths) if max_width is None else max_width
    total = max_width * scale
    rows = torch.zeros(len(widths), total)
    for k, w in enumerate(widths):
        if not 0 < w * scale <= total:
            raise ValueError(f"width {w} x {scale} does not fit in {total} channels")
        rows[k, :w * scale] = 1.0
    return rows


def mix_masks(weights: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Effective channel mask ``sum_k weights[k] * masks[k]`` (differentiable in weights)."""
    return weights.to(masks.dtype) @ masks


def nested_kernel_masks(kernels: Sequence[int], max_kernel: int | None = None) -> torch.Tensor:
    """(K, kmax, kmax) float 0/1: row k keeps the centred ``kernels[k]`` x ``kernels[k]``
    window of a ``kmax`` kernel (Single-Path NAS: a 3x3 kernel is the core of a 5x5 one;
    with "same" padding ``k // 2`` both put their centre on the same input pixel)."""
    max_kernel = max(kernels) if max_kernel is None else max_kernel
    rows = torch.zeros(len(kernels), max_kernel, max_kernel)
    for i, k in enumerate(kernels):
        if k % 2 != 1 or not 0 < k <= max_kernel or max_kernel % 2 != 1:
            raise ValueError(f"kernel {k} is not an odd size nested in {max_kernel}")
        off = (max_kernel - k) // 2
        rows[i, off:off + k, off:off + k] = 1.0
    return rows


def centre_crop(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centred ``kernel`` x ``kernel`` window of a conv weight (odd sizes)."""
    size = weight.shape[-1]
    if kernel > size or (size - kernel) % 2:
        return weight  # not nested: let the caller's shape check refuse it
    off = (size - kernel) // 2
    return weight[..., off:off + kernel, off:off + kernel]


def masked_batch_norm(y: torch.Tensor, bn: nn.BatchNorm2d, mask: torch.Tensor | None,
                      relu: bool) -> torch.Tensor:
    """``mask * BN(y)`` (then ReLU) with the mask folded into BN's affine, so no masked copy
    of the features is stored; the statistics are BN's own (batch in training mode)."""
    weight, bias = bn.weight, bn.bias
    if mask is not None:
        weight, bias = weight * mask, bias * mask
    use_batch_stats = bn.training or bn.running_mean is None
    if bn.training and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    factor = bn.momentum
    if factor is None:  # cumulative average, as nn.BatchNorm does (BN recalibration uses it)
        tracked = int(bn.num_batches_tracked) if bn.num_batches_tracked is not None else 0
        factor = 1.0 / tracked if tracked else 0.0
    y = F.batch_norm(y, bn.running_mean, bn.running_var, weight, bias,
                     use_batch_stats, factor, bn.eps)
    return F.relu(y, inplace=True) if relu else y


class MaskedConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (+ ReLU) at the widest width; a channel mask scales the
    BN affine so channels beyond the chosen width come out exactly zero.

    Submodules ``conv`` and ``bn`` are plain ``nn.Conv2d`` / ``nn.BatchNorm2d`` so a
    standalone net can take their first ``c`` channels (:meth:`copy_into`).
    """

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1,
                 depthwise: bool = False, relu: bool = True) -> None:
        super().__init__()
        if depthwise and cin != cout:
            raise ValueError("a depthwise conv keeps its width")
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2,
                              groups=cout if depthwise else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu, self.depthwise = relu, depthwise

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.normalize(self.conv(x), mask)

    def normalize(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """BN (+ ReLU) of a conv output ``y``, channels scaled by ``mask``: the second half
        of :meth:`forward`, for callers that compute the convolution themselves."""
        return masked_batch_norm(y, self.bn, mask, self.relu)

    @torch.no_grad()
    def copy_into(self, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        """Copy the first ``conv.out_channels`` (x first ``conv.in_channels``) channels into
        a standalone conv + BN: the weights the masked layer uses for that width. A smaller
        (odd) standalone kernel gets the centre of this one's (a nested kernel)."""
        out_n = conv.out_channels
        in_n = 1 if self.depthwise else conv.in_channels
        weight = centre_crop(self.conv.weight, conv.kernel_size[0])
        if weight.shape[-2:] != conv.weight.shape[-2:] or conv.stride != self.conv.stride:
            raise ValueError("standalone conv has another kernel or stride")
        conv.weight.copy_(weight[:out_n, :in_n])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(getattr(self.bn, name)[:out_n])
        bn.num_batches_tracked.copy_(self.bn.num_batches_tracked)


class MaskedInvertedResidual(nn.Module):
    """MobileNetV2 block at the widest widths, masked to the chosen ones.

    ``hidden_masks`` (K_in, in_max * e) turn the *input* width weights into the hidden
    mask: the space defines a block's hidden width as chosen input width x expansion.
    Expansion 1 has no expand conv (as in the standalone block); the residual is fixed
    by position (``residual``), never inferred from chosen widths.
    """

    def __init__(self, in_widths: Sequence[int], out_max: int, kernel: int, expansion: int,
                 stride: int, residual: bool) -> None:
        super().__init__()
        in_max = max(in_widths)
        if residual and (stride != 1 or in_max != out_max):
            raise ValueError("a residual block needs stride 1 and equal widths")
        hidden = in_max * expansion
        self.kernel, self.expansion, self.residual = kernel, expansion, residual
        self.expand = MaskedConvBN(in_max, hidden, 1) if expansion != 1 else None
        self.depthwise = MaskedConvBN(hidden, hidden, kernel, stride, depthwise=True)
        self.project = MaskedConvBN(hidden, out_max, 1, relu=False)
        self.register_buffer("hidden_masks", prefix_masks(in_widths, in_max, expansion),
                             persistent=False)

    def forward(self, x: torch.Tensor, in_weights: torch.Tensor,
                out_mask: torch.Tensor) -> torch.Tensor:
        hidden_mask = mix_masks(in_weights, self.hidden_masks)
        h = x if self.expand is None else self.expand(x, hidden_mask)
        h = self.depthwise(h, hidden_mask)
        out = self.project(h, out_mask)
        return x + out if self.residual else out
