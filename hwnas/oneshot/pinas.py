"""The Pi-NAS training objective: a supernet trained without labels.

Peng et al., "Pi-NAS: Improving Neural Architecture Search by Reducing Supernet Training
Consistency Shift", ICCV 2021. The paper names two causes of poor ranking in weight
sharing: *feature shift* (a shared layer sees inputs that change with the sampled path)
and *parameter shift* (a shared layer is pulled in contradictory directions by paths of
successive steps). It answers them with a supernet-Pi model:

* **cross-path learning** -- two paths ``A`` and ``B`` sampled uniformly see two augmented
  views of the same images, and the embedding of one path on one view must agree with the
  embedding of the other path on the other view;
* a **mean teacher with negative samples** -- the embeddings to agree with come from an
  exponential moving average (EMA) of the supernet, and a contrastive (InfoNCE) term
  against other images keeps the embeddings from collapsing to a constant.

What is kept: two uniformly sampled paths per step, two views, cross-path agreement
with the EMA teacher's embedding (symmetrised), InfoNCE negatives, no labels at all.

What is simplified:

* the embedding is the supernet's own output (its logits), L2-normalised -- a supernet
  has no generic hook for a pre-classifier feature or a projection/prediction head, so
  none is added;
* the negatives are the teacher's embeddings of the *other images of the batch*
  (:func:`pi_loss` also takes an extra tensor of negatives, e.g. a MoCo-style queue, but
  the trainer keeps no queue, so a checkpoint holds no queue either);
* augmentation is cheap and tensor-level (:func:`augment`): small random translations,
  an optional horizontal flip (off by default: digits must not be mirrored), brightness
  and Gaussian noise jitter -- no colour jitter, blur or random resized crop;
* the online network and the teacher use the same path pair; the teacher runs in train
  mode (batch statistics, as BYOL/MoCo targets do) and its BN buffers follow the EMA.

The loss (:func:`pi_loss`), for L2-normalised embeddings ``q`` (online) and ``k``
(teacher, no gradient) of ``N`` images, temperature ``t`` and negatives ``n_j``::

    s_i     = q_i . k_i                                         (cosine similarity)
    l(q, k) = mean_i [ (1 - s_i) + log(1 + sum_j exp((q_i . n_j - s_i) / t)) ]
    loss    = (l(q_A1, k_B2) + l(q_B2, k_A1)) / 2

where ``q_A1`` is the online embedding of path A on view 1, ``k_B2`` the teacher's of path
B on view 2, and so on. The second term is InfoNCE, ``-log(exp(s_i/t) / (exp(s_i/t) +
sum_j exp(q_i.n_j/t)))``, rewritten; it is exactly 0 with no negatives. So the loss is
exactly 0 when online and teacher embeddings are identical and there are no negatives,
and positive otherwise (``1 - s_i > 0`` for any mismatch, the log term > 0 for any
negative).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.oneshot.base import OneShotSupernet
from spaces import Arch
from spaces.core.errors import InvalidOption

#: the options of the "pi" objective and their defaults
PI_DEFAULTS: dict[str, Any] = {"momentum": 0.99, "temperature": 0.2, "in_batch": True}


# -- views ------------------------------------------------------------------------------------
def augment(x: torch.Tensor, generator: torch.Generator, *, shift: int | None = None,
            flip: bool = False, brightness: float = 0.2, noise: float = 0.05) -> torch.Tensor:
    """A random view of the images ``x`` [N, C, H, W], the same for the same generator state.

    Per image: a translation by up to ``shift`` pixels each way (default ``max(1, H // 8)``;
    borders replicated), a horizontal flip with probability 1/2 when ``flip``, a
    brightness scale in ``[1 - brightness, 1 + brightness]`` and Gaussian noise of standard
    deviation ``noise`` (the data are normalised, so these are in units of its std).
    All random numbers come from ``generator`` (a CPU generator), none from global state.
    """
    if x.dim() != 4:
        raise InvalidOption(f"augment takes images [N, C, H, W], got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    p = max(1, h // 8) if shift is None else int(shift)
    offsets = torch.randint(0, 2 * p + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    scale = 1 + brightness * (2 * torch.rand(n, generator=generator) - 1)
    jitter = noise * torch.randn(x.shape, generator=generator)
    padded = F.pad(x, (p, p, p, p), mode="replicate") if p else x
    views = []
    for i in range(n):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        view = padded[i, :, dy:dy + h, dx:dx + w]
        if flip and bool(flips[i]):
            view = view.flip(-1)
        views.append(view)
    out = torch.stack(views) * scale.to(x.device, x.dtype).view(n, 1, 1, 1)
    return out + jitter.to(x.device, x.dtype)


def features(supernet: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The embedding compared across paths: the active path's output (logits), L2-normalised
    per image. ``supernet`` may be a DDP wrapper of one."""
    return F.normalize(supernet(x).flatten(1), dim=1)


# -- the loss ---------------------------------------------------------------------------------
def _directional(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor | None,
                 temperature: float, in_batch: bool) -> torch.Tensor:
    pos = (q * k).sum(dim=1)                                           # s_i
    terms = [1 - pos]
    neg_logits = []
    if in_batch and len(q) > 1:
        sims = q @ k.t()                                               # q_i . k_j
        mask = ~torch.eye(len(q), dtype=torch.bool, device=q.device)
        neg_logits.append(sims[mask].view(len(q), len(q) - 1))
    if negatives is not None and len(negatives):
        neg_logits.append(q @ negatives.t())
    if neg_logits:
        diff = (torch.cat(neg_logits, dim=1) - pos[:, None]) / temperature
        # log(1 + sum_j exp(d_j)) = logsumexp([0, d_1, ..., d_M]), stable
        zeros = torch.zeros(len(q), 1, dtype=diff.dtype, device=diff.device)
        terms.append(torch.logsumexp(torch.cat([zeros, diff], dim=1), dim=1))
    return sum(terms).mean()


def pi_loss(online_a: torch.Tensor, online_b: torch.Tensor, teacher_a: torch.Tensor,
            teacher_b: torch.Tensor, negatives: torch.Tensor | None = None,
            temperature: float = 0.2, *, in_batch: bool = False) -> torch.Tensor:
    """Cross-path consistency with the mean teacher (formula in the module docstring).

    ``online_a``: online embeddings of path A on view 1; ``online_b``: path B on view 2;
    ``teacher_a`` / ``teacher_b``: the teacher's of the same (detached here). All [N, D]
    and L2-normalised. ``negatives`` [M, D] (e.g. a queue of past teacher embeddings) are
    negatives of every image; ``in_batch`` adds, for image i, the teacher embeddings of
    the other images of the batch. With no negatives the loss is ``mean(1 - cos)``, exactly
    0 for identical online and teacher embeddings.
    """
    if not temperature > 0:
        raise InvalidOption(f"the temperature must be positive, got {temperature!r}")
    teacher_a, teacher_b = teacher_a.detach(), teacher_b.detach()
    if negatives is not None:
        negatives = negatives.detach()
    return (_directional(online_a, teacher_b, negatives, temperature, in_batch)
            + _directional(online_b, teacher_a, negatives, temperature, in_batch)) / 2


# -- the mean teacher -------------------------------------------------------------------------
class MeanTeacher:
    """An exponential moving average of a supernet: after :meth:`update`, every parameter
    and floating-point buffer is ``m * teacher + (1 - m) * online``; integer buffers
    (BN's ``num_batches_tracked``) are copied. It never receives gradients."""

    def __init__(self, supernet: OneShotSupernet, momentum: float = 0.99) -> None:
        if not 0.0 <= momentum < 1.0:
            raise InvalidOption(f"the teacher's momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.net: OneShotSupernet = copy.deepcopy(supernet)
        for param in self.net.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, supernet: OneShotSupernet) -> None:
        m = self.momentum
        for t, s in zip(self.net.parameters(), supernet.parameters()):
            t.mul_(m).add_(s.detach(), alpha=1 - m)
        for t, s in zip(self.net.buffers(), supernet.buffers()):
            if t.is_floating_point():
                t.mul_(m).add_(s.detach(), alpha=1 - m)
            else:
                t.copy_(s)

    @torch.no_grad()
    def embed(self, arch: Arch, x: torch.Tensor) -> torch.Tensor:
        """The teacher's embedding of ``x`` at ``arch`` (train mode: batch statistics)."""
        self.net.train()
        self.net.set_active(arch)
        return features(self.net, x)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "momentum": self.momentum}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.momentum = float(state.get("momentum", self.momentum))


# -- one step ---------------------------------------------------------------------------------
def pi_step(supernet: OneShotSupernet, teacher: MeanTeacher, x: torch.Tensor,
            rng: np.random.Generator, *, temperature: float = PI_DEFAULTS["temperature"],
            in_batch: bool = PI_DEFAULTS["in_batch"], model: nn.Module | None = None,
            archs: Sequence[Arch] | None = None) -> torch.Tensor:
    """The Pi-NAS loss of one batch ``x`` (no labels): paths A and B (``archs``, or two
    draws of ``supernet.sample(rng)``), two views drawn from a generator seeded by ``rng``,
    online embeddings through ``model`` (``supernet`` or its DDP wrapper) with gradients,
    the teacher's without. The caller runs ``backward``, the optimiser step and
    ``teacher.update``."""
    if archs is None:
        archs = (supernet.sample(rng), supernet.sample(rng))
    arch_a, arch_b = archs
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
    view1, view2 = augment(x, generator), augment(x, generator)
    model = supernet if model is None else model
    supernet.set_active(arch_a)
    online_a = features(model, view1)
    supernet.set_active(arch_b)
    online_b = features(model, view2)
    teacher_a, teacher_b = teacher.embed(arch_a, view1), teacher.embed(arch_b, view2)
    return pi_loss(online_a, online_b, teacher_a, teacher_b, None, temperature,
                   in_batch=in_batch)


def pi_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The "pi" objective's options with defaults filled in; InvalidOption for unknown ones."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(PI_DEFAULTS))
    if unknown:
        raise InvalidOption(f"unknown option(s) {', '.join(unknown)} for the pi objective "
                            f"(known: {', '.join(PI_DEFAULTS)})")
    merged = {**PI_DEFAULTS, **options}
    return {"momentum": float(merged["momentum"]), "temperature": float(merged["temperature"]),
            "in_batch": bool(merged["in_batch"])}


__all__ = ["MeanTeacher", "PI_DEFAULTS", "augment", "features", "pi_loss", "pi_options",
           "pi_step"]
