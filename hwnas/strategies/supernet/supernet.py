"""The weight-shared FBNetV2 supernets and their architecture parameters.

:class:`SupernetBase` holds what every kind shares: the stem, the head, the
per-stage channel masks, the resolution mixture and the standalone copy. Its
blocks are the kind's own: :class:`FBNetV2Supernet` (``"multipath"``, below) runs
every block option as a branch; ``singlepath.SinglePathSupernet`` runs one
masked block per decision. :func:`make_supernet` builds either by name.

The multi-path supernet holds every architecture of an ``fbnetv2`` space:

* channel options of a stage -> one conv per layer at the widest width, masked
  (:mod:`.masked_layers`); the stage's width weights mask every block output of
  the stage and, through "hidden = input width x expansion", the hidden layers
  of the next stage's first block;
* block options (kernel x expansion, skip) -> Gumbel-weighted branches, one
  masked inverted residual per option, skip = identity;
* input resolution -> a weighted sum of the logits of resized-input branches.
  The standalone net bilinearly resizes its input to the chosen resolution
  (``spaces.fbnetv2``), so running the shared trunk on each resized input and
  mixing the logits is exact for a one-hot choice; it is the documented
  equivalent of FBNetV2's subsample-and-pad trick. Soft weights cost one trunk
  pass per resolution; the search draws the resolution as a hard straight-through
  sample, so one pass runs per step (zero-weight branches are skipped when
  ``sparse`` or when they need no gradient).

It copies the space's rules: only non-first blocks of a stage have a residual,
skipped blocks vanish, widths are prefixes of the widest. With one-hot weights
it computes exactly the standalone net of that architecture (:meth:`standalone`
copies the sliced weights into ``space.build(arch)``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.strategies.supernet.masked_layers import MaskedInvertedResidual, mix_masks, prefix_masks
from spaces import Arch
from spaces.fbnetv2 import BlockChoice, FBNetV2Space
from spaces.fbnetv2_blocks import ConvBNReLU
from spaces.core.errors import Incompatible

#: Per-decision weights (probabilities, Gumbel samples or one-hots), in decision order.
ArchWeights = Sequence[torch.Tensor]


# The supernet strategy was given a space it cannot build a supernet for.
UnsupportedSpace = Incompatible


def _stem_stride(space: FBNetV2Space) -> int:
    """The stem's stride (a public ``stem_stride`` if the space has one, else its preset's)."""
    stride = getattr(space, "stem_stride", None)
    return int(stride if stride is not None else space._preset.stem_stride)


class ArchParams(nn.Module):
    """Architecture logits alpha, one vector per decision, initialised to zero (uniform)."""

    def __init__(self, space: FBNetV2Space) -> None:
        super().__init__()
        self.space = space
        self.alpha = nn.ParameterList(nn.Parameter(torch.zeros(len(d))) for d in space.decisions)

    def probs(self) -> list[torch.Tensor]:
        return [F.softmax(a, dim=0) for a in self.alpha]

    def flat_probs(self) -> torch.Tensor:
        """softmax(alpha) laid out like ``space.one_hot`` (for ``predictor.predict_soft``)."""
        return torch.cat(self.probs())

    def sample(self, tau: float, hard: bool | Sequence[bool] = False) -> list[torch.Tensor]:
        """Gumbel-softmax weights per decision at temperature ``tau`` (one draw per step,
        shared by the batch, as in FBNet); ``hard`` (per decision or for all) gives
        straight-through one-hot samples."""
        flags = [hard] * len(self.alpha) if isinstance(hard, bool) else list(hard)
        return [F.gumbel_softmax(a, tau=tau, hard=h) for a, h in zip(self.alpha, flags)]

    def argmax(self) -> Arch:
        """The architecture of the most likely option of every decision."""
        return self.space.arch([int(a.argmax()) for a in self.alpha])


def one_hot_weights(space: FBNetV2Space, arch: Arch) -> list[torch.Tensor]:
    """Hard weights of one architecture (for exact standalone-equivalence checks)."""
    space.validate(arch)
    return [F.one_hot(torch.tensor(c), len(d)).float() for c, d in zip(arch.choices, space.decisions)]


def skippable(w: torch.Tensor, sparse: bool) -> bool:
    """A branch of weight exactly 0 adds nothing. Without ``sparse`` it is still run
    when the weight needs a gradient (soft Gumbel: d loss / d w = <grad, branch output>);
    with ``sparse`` (hard straight-through samples, GDAS) it is skipped anyway, and alpha
    learns through the selected branch's weight alone."""
    return float(w.detach()) == 0.0 and (sparse or not w.requires_grad)


class MixedBlock(nn.Module):
    """Block options of one block decision as weighted branches (skip = identity)."""

    def __init__(self, space: FBNetV2Space, decision: int, in_widths: Sequence[int],
                 out_max: int, stride: int, first: bool) -> None:
        super().__init__()
        self.options = space.block_choices(decision)
        self.decision = decision
        self.branches = nn.ModuleList(
            MaskedInvertedResidual(in_widths, out_max, b.kernel, b.expansion,
                                   stride if first else 1, residual=not first)
            for b in self.options if b is not None)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, in_weights: torch.Tensor,
                out_mask: torch.Tensor, sparse: bool = False) -> torch.Tensor:
        out: torch.Tensor | None = None
        branches = iter(self.branches)
        for k, choice in enumerate(self.options):
            w = weights[k]
            branch = next(branches) if choice is not None else None
            if skippable(w, sparse):
                continue
            y = x if branch is None else branch(x, in_weights, out_mask)
            out = w * y if out is None else out + w * y
        if out is None:
            raise ValueError(f"decision {self.decision}: every block option has weight 0")
        return out

    @torch.no_grad()
    def copy_into(self, choice: BlockChoice, block: nn.Module) -> None:
        """Load the branch of ``choice`` into a standalone ``InvertedResidual``."""
        branch = self.branches[[o for o in self.options if o is not None].index(choice)]
        masked = ([branch.expand] if branch.expand is not None else []) + [
            branch.depthwise, branch.project]
        for src, dst in zip(masked, block.body):
            src.copy_into(dst[0], dst[1])


class SupernetBase(nn.Module):
    """Every architecture of an ``fbnetv2`` space in one weight-shared module; subclasses
    say how one block decision is computed (:meth:`make_block`).

    ``forward(x, weights)`` takes per-decision weights (see :class:`ArchParams`). A block
    module is called as ``block(x, block_weights, in_weights, out_mask, sparse)`` and has
    ``copy_into(choice, standalone_block)``.
    """

    kind = ""

    def __init__(self, space: FBNetV2Space, num_classes: int | None = None,
                 input_size: int | None = None) -> None:
        super().__init__()
        if not isinstance(space, FBNetV2Space):
            raise UnsupportedSpace(f"the supernet strategy searches the fbnetv2 space only, "
                                   f"not {getattr(space, 'key', space)!r}")
        self.space = space
        self.num_classes = num_classes or space.default_num_classes
        self.input_size = input_size or space.default_input_size
        self.layout = space.stage_layout()
        self.stem = ConvBNReLU(space.in_channels, space.stem_width, 3, _stem_stride(space))
        self.blocks = nn.ModuleList()
        in_widths: tuple[int, ...] = (space.stem_width,)
        for st in self.layout:
            for b, d in enumerate(st.block_decisions):
                self.blocks.append(self.make_block(d, in_widths if b == 0 else st.widths,
                                                   st.max_width, st.stride, first=b == 0))
            self.register_buffer(f"out_masks_{st.index}", prefix_masks(st.widths), persistent=False)
            in_widths = st.widths
        self.head = ConvBNReLU(self.layout[-1].max_width, space.head_width, 1)
        self.classifier = nn.Linear(space.head_width, self.num_classes)

    def make_block(self, decision: int, in_widths: Sequence[int], out_max: int, stride: int,
                   first: bool) -> nn.Module:
        """The module that computes block decision ``decision`` (first of its stage or not)."""
        raise NotImplementedError

    def trunk(self, x: torch.Tensor, weights: ArchWeights, sparse: bool = False) -> torch.Tensor:
        """Logits of the shared network on an already-resized input."""
        x = self.stem(x)
        in_weights = torch.ones(1, device=x.device)  # the stem has one fixed width
        blocks = iter(self.blocks)
        for st in self.layout:
            width_w = weights[st.width_decision]
            out_mask = mix_masks(width_w, getattr(self, f"out_masks_{st.index}"))
            for b, d in enumerate(st.block_decisions):
                x = next(blocks)(x, weights[d], in_weights if b == 0 else width_w, out_mask, sparse)
            in_weights = width_w
        x = self.head(x).mean(dim=(2, 3))
        return self.classifier(x)

    def forward(self, x: torch.Tensor, weights: ArchWeights, sparse: bool = False) -> torch.Tensor:
        """Logits for per-decision ``weights``; ``sparse`` skips every zero-weight branch
        (for hard one-hot samples), else only those that need no gradient."""
        if len(weights) != len(self.space.decisions):
            raise ValueError(f"expected {len(self.space.decisions)} weight vectors, got {len(weights)}")
        res_w = weights[self.space.resolution_decision]
        logits: torch.Tensor | None = None
        for k, size in enumerate(self.space.resolutions):
            w = res_w[k]
            if skippable(w, sparse):
                continue
            xr = x if size == x.shape[-1] == x.shape[-2] else F.interpolate(
                x, size=(size, size), mode="bilinear", align_corners=False)
            y = w * self.trunk(xr, weights, sparse)
            logits = y if logits is None else logits + y
        if logits is None:
            raise ValueError("every resolution has weight 0")
        return logits

    # ---- standalone ---------------------------------------------------------------------
    @torch.no_grad()
    def standalone(self, arch: Arch) -> nn.Module:
        """``space.build(arch)`` carrying this supernet's weights, sliced to the arch's widths:
        no masks left, the same outputs as the supernet with one-hot weights (eval mode)."""
        net = self.space.build(arch, self.num_classes, self.input_size)
        cfg = self.space.resolve(arch)
        net.stem.load_state_dict(self.stem.state_dict())
        layers = iter(net.stages)
        blocks = iter(self.blocks)
        cin = self.space.stem_width
        for st, width, choices in zip(self.layout, cfg.widths, cfg.blocks):
            for b, _ in enumerate(st.block_decisions):
                block = next(blocks)
                if choices[b] is None:
                    continue
                block.copy_into(choices[b], next(layers))
                cin = width
        head_conv, head_bn = net.head[0], net.head[1]
        head_conv.weight.copy_(self.head[0].weight[:, :cin])
        head_bn.load_state_dict(self.head[1].state_dict())
        net.classifier.load_state_dict(self.classifier.state_dict())
        return net


class FBNetV2Supernet(SupernetBase):
    """The multi-path supernet: every block option of a decision is its own masked
    inverted residual, weighted and summed (DARTS / FBNet style); memory and step time
    grow with the number of block options."""

    kind = "multipath"

    def make_block(self, decision: int, in_widths: Sequence[int], out_max: int, stride: int,
                   first: bool) -> nn.Module:
        return MixedBlock(self.space, decision, in_widths, out_max, stride, first)


#: The multi-path supernet under the name of its kind.
MultiPathSupernet = FBNetV2Supernet
