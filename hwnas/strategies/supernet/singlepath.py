"""The single-path supernet: one masked inverted residual per block decision.

The multi-path supernet (:class:`~.supernet.FBNetV2Supernet`) runs every block
option as its own branch, so its memory and step time grow with the number of
options. Here every decision of a block is a mask over *one* block at its widest
setting (FBNetV2's DMaskingNAS for channels, Single-Path NAS for kernels):

* **expansion**: one expand 1x1 conv to ``in_max x e_max`` hidden channels; option
  ``e`` with input width ``c`` keeps the first ``c x e`` of them (a prefix mask,
  folded into BN's affine like the channel masks). Expansion 1 has no expand conv
  in the standalone net (the depthwise conv reads the block input), so its hidden
  layer is the input itself: the prefix of ``c`` hidden channels, fed straight in.
* **kernel**: one depthwise conv at the largest kernel; a smaller kernel is its
  centre (3x3 inside 5x5, same centre pixel under "same" padding), so the kernel
  mixture is one weight mask ``sum_k w_k M_k`` on the depthwise weights.
* **skip**: a gate between the block body and its identity path,
  ``x + P(not skip) * body(x)``, folded into the project layer's BN affine.
* **resolution** and **stage widths**: as in :class:`~.supernet.SupernetBase`.

A block decision is one categorical over (kernel, expansion) combos plus skip.
Its Gumbel weights ``g`` become per-decision mask weights
(:func:`split_block_weights`): ``gate = sum of the non-skip g``; conditional
weights ``g_hat = g / gate`` over the combos; the kernel weight of ``k`` is the
sum of ``g_hat`` over combos with kernel ``k``, likewise for each expansion.

Where this is exact and where it approximates the multi-path mixture
``sum_o g_o block_o(x)``:

* any one-hot setting: exactly the standalone block (tests check it);
* skip, for any weights: the blocks that may be skipped are residual, so
  ``g_skip x + sum_o g_o (x + body_o(x)) = x + gate * sum_o g_hat_o body_o(x)``;
* kernel: the depthwise conv *output* is exactly the ``w_k`` mixture of the
  kernels' conv outputs (a conv is linear in its weight); expansion: the hidden
  layer is exactly the ``w_e`` mixture of the options' masked hidden layers.
  What follows (BN, ReLU, project) then runs once on the mixture instead of once
  per option and being mixed after, and kernel and expansion weights are
  marginals (their product stands for the joint ``g_hat``): the same per-layer
  approximation DMaskingNAS makes for channels. The latency loss never sees it
  (it uses ``predict_soft`` of the joint softmax(alpha)).
* BN statistics of the depthwise layer are shared by the kernels, and the
  first ``c`` hidden channels are shared by expansion 1 (block input) and the
  others (expand output): weight sharing, not an error of the mixture; the chosen
  network is retrained alone.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.strategies.supernet.masked_layers import MaskedConvBN, nested_kernel_masks, prefix_masks
from hwnas.strategies.supernet.supernet import SupernetBase, skippable
from spaces.fbnetv2 import BlockChoice, FBNetV2Space

_TINY = 1e-12  # guards g / gate when every non-skip weight is exactly 0 (a hard skip sample)


class BlockWeights(NamedTuple):
    """Per-decision mask weights of one block, derived from its joint categorical."""

    gate: torch.Tensor | None  # P(not skip); None where the block has no skip option
    kernel: torch.Tensor       # (K,) over the block's kernels, given "not skipped"
    expansion: torch.Tensor    # (E,) over its expansions, given "not skipped"


def option_maps(options: Sequence[BlockChoice | None]) -> tuple[tuple[int, ...], tuple[int, ...],
                                                                 torch.Tensor, torch.Tensor,
                                                                 torch.Tensor]:
    """(kernels, expansions, non-skip option indices, kernel_of (n, K), expansion_of (n, E)):
    0/1 matrices that sum the combo weights into each kernel's and expansion's weight."""
    combos = [(i, o) for i, o in enumerate(options) if o is not None]
    kernels = tuple(sorted({o.kernel for _, o in combos}))
    expansions = tuple(sorted({o.expansion for _, o in combos}))
    kernel_of = torch.zeros(len(combos), len(kernels))
    expansion_of = torch.zeros(len(combos), len(expansions))
    for row, (_, o) in enumerate(combos):
        kernel_of[row, kernels.index(o.kernel)] = 1.0
        expansion_of[row, expansions.index(o.expansion)] = 1.0
    index = torch.tensor([i for i, _ in combos], dtype=torch.long)
    return kernels, expansions, index, kernel_of, expansion_of


def split_block_weights(weights: torch.Tensor, index: torch.Tensor, kernel_of: torch.Tensor,
                        expansion_of: torch.Tensor, has_skip: bool) -> BlockWeights:
    """Gate, kernel and expansion weights from one block decision's option weights
    (see the module doc): sums of the combo weights, conditioned on not skipping."""
    combo = weights.index_select(0, index).to(kernel_of.dtype)
    gate = combo.sum() if has_skip else None
    cond = combo if gate is None else combo / gate.clamp_min(_TINY)
    return BlockWeights(gate, cond @ kernel_of, cond @ expansion_of)


class SinglePathBlock(nn.Module):
    """One block decision as one masked inverted residual at its widest setting."""

    def __init__(self, space: FBNetV2Space, decision: int, in_widths: Sequence[int],
                 out_max: int, stride: int, first: bool) -> None:
        super().__init__()
        self.options = space.block_choices(decision)
        self.decision, self.first, self.residual = decision, first, not first
        self.has_skip = None in self.options
        if first and self.has_skip:
            raise ValueError("a stage's first block has no skip option (it changes shape)")
        kernels, expansions, index, kernel_of, expansion_of = option_maps(self.options)
        self.kernels, self.expansions = kernels, expansions
        self.in_max = max(in_widths)
        self.hidden = self.in_max * max(expansions)
        self.stride, self.k_max = stride if first else 1, max(kernels)  # as MixedBlock
        self.expand = (MaskedConvBN(self.in_max, self.hidden, 1)
                       if any(e != 1 for e in expansions) else None)
        self.depthwise = MaskedConvBN(self.hidden, self.hidden, self.k_max, self.stride,
                                      depthwise=True)
        self.project = MaskedConvBN(self.hidden, out_max, 1, relu=False)
        self.identity_index = expansions.index(1) if 1 in expansions else None
        # (K_in, E, hidden): input width c_j with expansion e keeps the first c_j x e channels
        hidden_masks = torch.stack([prefix_masks([c * e for e in expansions], self.hidden)
                                    for c in in_widths])
        expand_cols = torch.tensor([0.0 if e == 1 else 1.0 for e in expansions])
        for name, value in (("index", index), ("kernel_of", kernel_of),
                            ("expansion_of", expansion_of), ("hidden_masks", hidden_masks),
                            ("expand_cols", expand_cols),
                            ("kernel_masks", nested_kernel_masks(kernels, self.k_max))):
            self.register_buffer(name, value, persistent=False)

    def mask_weights(self, weights: torch.Tensor) -> BlockWeights:
        """This block's gate, kernel and expansion weights (see :func:`split_block_weights`)."""
        return split_block_weights(weights, self.index, self.kernel_of, self.expansion_of,
                                   self.has_skip)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, in_weights: torch.Tensor,
                out_mask: torch.Tensor, sparse: bool = False) -> torch.Tensor:
        w = self.mask_weights(weights)
        if w.gate is not None and skippable(w.gate, sparse):
            return x  # skipped: identity (only residual blocks have a skip option)
        y, hidden_mask = self.depthwise_conv(x, w, in_weights, sparse)
        h = self.depthwise.normalize(y, hidden_mask)
        out = self.project(h, out_mask if w.gate is None else out_mask * w.gate)
        return x + out if self.residual else out

    def depthwise_conv(self, x: torch.Tensor, w: BlockWeights, in_weights: torch.Tensor,
                       sparse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(depthwise conv output before its BN, the hidden channel mask): the part of the
        block where the kernel and expansion mixtures are exact (see the module doc)."""
        # hidden channel masks: input width (K_in) x expansion (E) -> prefix of c x e channels
        joint = in_weights.to(x.dtype)[:, None] * w.expansion[None, :]
        flat = self.hidden_masks.reshape(-1, self.hidden)
        kernel_mask = (w.kernel @ self.kernel_masks.flatten(1)).view(1, 1, self.k_max, self.k_max)
        dw_weight = self.depthwise.conv.weight * kernel_mask
        pad = self.k_max // 2
        y: torch.Tensor | None = None
        expand_w = (w.expansion * self.expand_cols).sum()
        if self.expand is not None and not skippable(expand_w, sparse):
            h = self.expand(x, (joint * self.expand_cols).reshape(-1) @ flat)
            y = F.conv2d(h, dw_weight, None, self.stride, pad, groups=self.hidden)
        if self.identity_index is not None:
            w1 = w.expansion[self.identity_index]
            if not skippable(w1, sparse):
                # expansion 1: the block input is the hidden layer (first in_max channels)
                y1 = w1 * F.conv2d(x, dw_weight[:self.in_max], None, self.stride, pad,
                                   groups=self.in_max)
                y1 = F.pad(y1, (0, 0, 0, 0, 0, self.hidden - self.in_max))
                y = y1 if y is None else y + y1
        if y is None:
            raise ValueError(f"decision {self.decision}: every expansion has weight 0")
        return y, joint.reshape(-1) @ flat

    @torch.no_grad()
    def copy_into(self, choice: BlockChoice, block: nn.Module) -> None:
        """Load ``choice``'s slice (first channels, centre of the kernel) into a standalone
        ``InvertedResidual``."""
        layers = list(block.body)
        if choice.expansion != 1:
            self.expand.copy_into(layers[0][0], layers[0][1])
            layers = layers[1:]
        self.depthwise.copy_into(layers[0][0], layers[0][1])
        self.project.copy_into(layers[1][0], layers[1][1])


class SinglePathSupernet(SupernetBase):
    """Every architecture of an ``fbnetv2`` space with one masked block per block decision:
    memory and step time about the widest network's, whatever the number of options."""

    kind = "singlepath"

    def make_block(self, decision: int, in_widths: Sequence[int], out_max: int, stride: int,
                   first: bool) -> nn.Module:
        return SinglePathBlock(self.space, decision, in_widths, out_max, stride, first)


__all__ = ["BlockWeights", "SinglePathBlock", "SinglePathSupernet", "option_maps",
           "split_block_weights"]
