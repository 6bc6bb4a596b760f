"""Differentiable cell search: DARTS and GDAS on any supernet with the relaxation protocol.

Papers:

* **DARTS** -- Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR
  2019. Every edge is a mixed op, ``sum_o softmax(alpha_e)_o * op_o(x)``; weights ``w`` learn
  on training batches, the architecture logits ``alpha`` on validation batches, alternating
  step by step (the bi-level problem ``min_alpha L_val(w*(alpha), alpha)``). First order
  takes ``grad_alpha L_val(w, alpha)`` at the current weights; second order (``second_order=
  True``) the gradient of the one-step unrolled objective, the paper's equation 7,

      grad_a L_val(w', a) - xi * grad2_{a,w} L_train(w, a) . grad_w' L_val(w', a),
      w' = w - xi * grad_w L_train(w, a)            (a = alpha),

  with the Hessian-vector product by central differences (equation 8),
  ``(grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)) / (2 eps)``,
  ``w+- = w +- eps * grad_w' L_val(w', alpha)``, ``eps = 0.01 / ||grad_w' L_val(w', alpha)||``
  (``hessian_eps`` sets the 0.01). ``xi`` is the weights' current learning rate, as in DARTS;
  equation 7 is the exact gradient of ``L_val(w', alpha)``, and the tests check the
  implementation against finite differences of that. The architecture is derived by
  the supernet's ``derive`` (DARTS' genotype rule on the DARTS space).
* **GDAS** -- Dong & Yang, "Searching for A Robust Neural Architecture in Four GPU Hours",
  CVPR 2019. Each forward draws one op per edge with the Gumbel-max trick and passes the
  straight-through one-hot ``hard - soft.detach() + soft`` (``soft`` the Gumbel-softmax at
  temperature ``tau``) to the supernet, which skips every op whose weight is exactly 0.0:
  one op per edge runs, and alpha learns through the chosen op's weight. ``tau`` falls
  linearly from ``tau_max=10`` to ``tau_min=0.1`` over the search. First order only.
* **Latency** -- the differentiable latency loss of FBNet (Wu et al. 2019) and of the
  latency-predictor DNAS in the seeds (a predictor's differentiable latency added to the
  architecture loss): with ``latency=LatencyTerm(predictor, budget_ms, form, weight)`` the
  alpha loss gains ``weight * latency_loss(predictor.predict_soft(supernet.decision_probs(
  softmax(alpha))), budget_ms, form)`` (:func:`latency.loss.latency_loss`), the predicted
  latency of the relaxed architecture. GDAS's term uses ``softmax(alpha)`` too, not the
  sample: it bounds the distribution's expected latency.
* **TopoNAS** -- with ``topology=TopologyConfig(...)`` (DARTS space only) explicit topology
  logits, a distribution over each node's input subsets, weight the edges next to the op
  alphas (:mod:`hwnas.oneshot.toponas`): they are optimised by the alphas' Adam, the
  passive-aggressive regulariser joins the alpha loss, the latency term reads the
  topology-aware mixture, and the derivation picks the most probable topology per node.

The relaxation protocol a supernet offers (:class:`Relaxable`; the NAS-Bench-201 and DARTS
supernets do): ``mixture_shapes()``, ``mixture_ops()``, ``set_mixture(*weights)``,
``mixture_of(arch)``, ``derive(alphas)``, ``decision_probs(weights)``. This module knows
nothing else about a space.

Kept: the alternation (one alpha step, then one weight step, per training batch), the
optimisers and their DARTS hyper-parameters (weights: SGD, momentum 0.9, weight decay 3e-4,
lr 0.025 cosine-annealed to 0.001, gradient norm clipped at 5; alpha: Adam, lr 3e-4, betas
(0.5, 0.999), weight decay 1e-3), ``alpha = 1e-3 * randn`` at the start, one alpha tensor per
cell type shared by every cell of that type, GDAS's sampling and temperature range.

Simplified:

* the searched network is the supernet as given: no separate, shallower search-time network
  (DARTS searches 8 cells of C=16 and evaluates 20 of C=36), no ``affine=False`` BN in the
  mixed op (the supernets keep the deployable network's affine BN so ``extract`` is exact);
* the unrolled step is the paper's plain ``w - xi * grad`` (DARTS' code also folds in the
  optimiser's momentum and weight decay). Equation 8 is kept as is, though on a ReLU network
  it is rough: measured on the tiny NB201 supernet (C=2, 16 images, float64), the product at
  ``eps = 0.01 / ||v||`` was off by 6x its own norm (units crossing zero between ``w-`` and
  ``w+``), at ``hessian_eps=1e-5`` exact to 1e-9; with Softplus for ReLU, 0.01 gives ~1%;
* GDAS's trick of adding the zero-valued weights of the unsampled ops to a node (a gradient
  path to their logits) is not reproduced: the logits learn through the sampled op's
  weight, which reaches all of them through the softmax;
* the alpha step comes first and the weight step follows on the same training batch, for
  both methods (DARTS' order; GDAS updates the weights first); the temperature falls per
  step rather than per epoch, so a short search covers the whole range; the cosine
  learning rate too is per step;
* the "validation" batches are the data split's ``x_val`` (DARTS halves CIFAR-10's training
  set for this; hand a :class:`~hwnas.evaluators.datasets.DataSplit` whose validation part
  is not the one you report on); the alpha step leaves BN running statistics as it found
  them;
* batch sizes and epochs are whatever the caller affords (DARTS: 64 and 50; on a CPU here,
  a few hundred images and a few epochs).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.evaluators.datasets import DataSplit
from hwnas.oneshot.base import NoSupernet
from hwnas.oneshot.training import derived_seed
from latency.loss import FORMS as LATENCY_FORMS
from latency.loss import latency_loss
from spaces import Arch, Space
from spaces.core.errors import Incompatible, InvalidOption

if TYPE_CHECKING:
    from hwnas.oneshot.toponas import TopologyConfig

log = logging.getLogger(__name__)

METHODS = ("darts", "gdas")
#: The methods a supernet needs for this search (see :class:`Relaxable`).
RELAXATION = ("mixture_shapes", "mixture_ops", "set_mixture", "mixture_of", "derive",
              "decision_probs")


# -- what the search needs from a supernet and a predictor ----------------------------------
@runtime_checkable
class Relaxable(Protocol):
    """A supernet that runs a continuous relaxation of its space."""

    space: Space

    def mixture_shapes(self) -> tuple[tuple[int, int], ...]:
        """Shape of each mixture tensor, ``[edges, ops]`` (one per cell type)."""

    def mixture_ops(self) -> tuple[str, ...]:
        """Names of the mixture's columns (``none`` included)."""

    def set_mixture(self, *weights: torch.Tensor) -> None:
        """Run every op of every edge weighted by ``weights`` (0.0 skips an op)."""

    def mixture_of(self, arch: Arch) -> tuple[torch.Tensor, ...]:
        """The hard mixture equal to ``arch``'s single path."""

    def derive(self, alphas: Sequence[torch.Tensor]) -> Arch:
        """The discrete architecture of mixture logits ``alphas``."""

    def decision_probs(self, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """Flat per-decision option probabilities (a predictor's soft input), differentiable."""


class SoftPredictor(Protocol):
    """A latency predictor with a differentiable form (``latency.predictors`` lut, mlp,
    transfer, flops; or a test's fake)."""

    def predict_soft(self, probs: torch.Tensor) -> torch.Tensor:
        """Latency (ms) of per-decision option probabilities laid out like ``space.one_hot``."""

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Latency (ms) of each architecture."""


def check_relaxable(supernet: Any) -> None:
    """Refuse, in one sentence, a supernet without the relaxation protocol."""
    missing = [m for m in RELAXATION if not callable(getattr(supernet, m, None))]
    if missing or not isinstance(supernet, nn.Module):
        name = getattr(getattr(supernet, "space", None), "name", type(supernet).__name__)
        raise NoSupernet(f"the {name} supernet has no continuous relaxation ({', '.join(missing)} "
                         f"missing), so DARTS and GDAS cannot search it; the nb201 and darts "
                         f"supernets have one")


@dataclass(frozen=True)
class LatencyTerm:
    """``weight * latency_loss(predict_soft(decision_probs(softmax(alpha))), budget_ms, form,
    **params)``, added to the alpha loss. ``form`` is one of :data:`latency.loss.FORMS`;
    ``fbnet`` takes the budget as its ``unit_ms`` unless ``params`` names one (as the FBNetV2
    search does), so it vanishes at or under the budget."""

    predictor: SoftPredictor
    budget_ms: float | None
    form: str = "hinge"
    weight: float = 1.0
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for method in ("predict_soft", "predict"):
            if not callable(getattr(self.predictor, method, None)):
                raise InvalidOption(f"the latency term needs a predictor with {method}(), got a "
                                    f"{type(self.predictor).__name__}")
        if self.form not in LATENCY_FORMS:
            raise InvalidOption(f"unknown latency loss form {self.form!r}; known: "
                                f"{', '.join(LATENCY_FORMS)}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise InvalidOption(f"the latency weight must be a number of at least 0, "
                                f"got {self.weight!r}")
        if self.budget_ms is None and self.form != "fbnet":
            raise InvalidOption(f"the {self.form} latency loss needs a budget in ms")
        if self.budget_ms is not None:
            _positive("the latency budget (ms)", self.budget_ms)

    def expected_ms(self, supernet: Relaxable, alphas: Sequence[torch.Tensor], *,
                    probs: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The predictor's differentiable latency of ``softmax(alphas)`` (a 0-d tensor), or
        of the mixture ``probs`` when given (TopoNAS' topology-aware one)."""
        if probs is None:
            probs = [torch.softmax(a, dim=-1) for a in alphas]
        return self.predictor.predict_soft(supernet.decision_probs(probs)).reshape(())

    def loss(self, supernet: Relaxable, alphas: Sequence[torch.Tensor], *,
             probs: Sequence[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(expected latency ms, weighted latency loss), both differentiable in ``alphas``
        (or in ``probs``, when given)."""
        expected = self.expected_ms(supernet, alphas, probs=probs)
        params = dict(self.params)
        if self.form == "fbnet" and "unit_ms" not in params and self.budget_ms is not None:
            params["unit_ms"] = float(self.budget_ms)
        return expected, self.weight * latency_loss(expected, self.budget_ms, self.form, **params)


# -- settings and results -------------------------------------------------------------------
def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0):
        raise InvalidOption(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class DifferentiableConfig:
    """One differentiable search; the defaults are DARTS' CIFAR-10 search settings and
    GDAS's temperature range."""

    method: str = "darts"
    epochs: int = 50
    batch_size: int = 64
    weight_lr: float = 0.025
    weight_lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float | None = 5.0
    alpha_lr: float = 3e-4
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    second_order: bool = False
    xi: float | None = None          # unrolling step; None: the weights' current lr (DARTS)
    hessian_eps: float = 0.01        # eq. 8's eps = hessian_eps / ||grad_w' L_val|| (DARTS: 0.01)
    tau_max: float = 10.0
    tau_min: float = 0.1
    init_scale: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidOption(f"unknown differentiable method {self.method!r}; known: "
                                f"{', '.join(METHODS)}")
        if self.second_order and self.method != "darts":
            raise InvalidOption("--second-order applies to darts only: GDAS samples one op per "
                                "edge, so there is no mixed op to unroll")
        for name in ("epochs", "batch_size", "seed"):
            value = getattr(self, name)
            low = {"epochs": 1, "batch_size": 2, "seed": 0}[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidOption(f"{name} must be a whole number of at least {low}, "
                                    f"got {value!r}")
        for name in ("weight_lr", "alpha_lr", "tau_max", "tau_min"):
            _positive(name, getattr(self, name))
        for name in ("weight_lr_min", "momentum", "weight_decay", "alpha_weight_decay",
                     "init_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (math.isfinite(value) and value >= 0):
                raise InvalidOption(f"{name} must be a number of at least 0, got {value!r}")
        if self.grad_clip is not None:
            _positive("grad_clip", self.grad_clip)
        if self.xi is not None:
            _positive("xi", self.xi)
        _positive("hessian_eps", self.hessian_eps)
        if self.tau_min > self.tau_max:
            raise InvalidOption(f"tau_min ({self.tau_min}) must not exceed tau_max "
                                f"({self.tau_max})")
        if len(self.alpha_betas) != 2 or not all(0 <= b < 1 for b in self.alpha_betas):
            raise InvalidOption(f"alpha_betas must be two numbers in [0, 1), "
                                f"got {self.alpha_betas!r}")


@dataclass
class EpochRecord:
    """The state of the search after one epoch."""

    epoch: int                            # 1-based
    probs: tuple[np.ndarray, ...]         # softmax of every alpha tensor, [edges, ops] each
                                          # (TopoNAS: the topology-aware mixture)
    arch: Arch                            # supernet.derive(alphas)
    predicted_ms: float | None            # predictor.predict([arch]) (with a latency term)
    expected_ms: float | None             # predict_soft of the relaxed architecture
    train_loss: float                     # mean weight-step loss of the epoch
    val_loss: float                       # mean alpha-step (validation) loss of the epoch
    tau: float | None                     # GDAS's temperature at the epoch's last step
    seconds: float                        # since the search began
    topology: tuple[tuple[np.ndarray, ...], ...] | None = None  # TopoNAS: per cell type,
                                          # per node, the distribution over its topologies


@dataclass
class DifferentiableResult:
    """What a search found: the derived architecture, the final logits and the trajectory."""

    method: str
    second_order: bool
    arch: Arch
    alphas: tuple[torch.Tensor, ...]      # final logits, detached, on the CPU
    history: list[EpochRecord]
    seconds: float
    topology_logits: tuple[torch.Tensor, ...] | None = None  # TopoNAS' final logits

    @property
    def probs(self) -> tuple[np.ndarray, ...]:
        return tuple(torch.softmax(a, dim=-1).numpy() for a in self.alphas)

    @property
    def predicted_ms(self) -> float | None:
        return self.history[-1].predicted_ms if self.history else None

    @property
    def expected_ms(self) -> float | None:
        return self.history[-1].expected_ms if self.history else None


Batch = tuple[torch.Tensor, torch.Tensor]


def gumbel_straight_through(alpha: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """GDAS's sample of one op per row: ``hard - soft.detach() + soft`` where ``soft`` is
    ``softmax((log_softmax(alpha) + g) / tau)``, ``g`` Gumbel noise from ``gen``, and
    ``hard`` the one-hot of its argmax. The unchosen entries are exactly 0.0."""
    exp = torch.empty(alpha.shape, dtype=alpha.dtype).exponential_(generator=gen)
    gumbel = -exp.clamp_min(torch.finfo(alpha.dtype).tiny).log().to(alpha.device)
    soft = torch.softmax((torch.log_softmax(alpha, dim=-1) + gumbel) / tau, dim=-1)
    hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(dim=-1, keepdim=True), 1.0)
    return hard - soft.detach() + soft


def _grads(loss: torch.Tensor, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``d loss / d tensors``, zeros where a tensor took no part."""
    grads = torch.autograd.grad(loss, list(tensors), allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads)]


class DifferentiableSearch:
    """The bi-level search of ``supernet`` (anything :class:`Relaxable`) on ``data``; build
    it, then :meth:`run`. Its pieces (:meth:`mixture`, :meth:`alpha_gradients`,
    :meth:`weight_step`) are public so they can be checked one by one."""

    def __init__(self, supernet: nn.Module, data: DataSplit,
                 config: DifferentiableConfig | None = None, *,
                 latency: LatencyTerm | None = None,
                 topology: TopologyConfig | None = None) -> None:
        check_relaxable(supernet)
        self.config = config = config if config is not None else DifferentiableConfig()
        self.supernet, self.data, self.latency = supernet, data, latency
        want = tuple(supernet.space.input_shape(supernet.input_size))
        for part, x, y in (("training", data.x_train, data.y_train),
                           ("validation", data.x_val, data.y_val)):
            if tuple(x.shape[1:]) != want:
                raise Incompatible(f"{part} images are {tuple(x.shape[1:])} but the supernet "
                                   f"takes {want}")
            if len(y) < 2:
                raise InvalidOption(f"the {part} split needs at least 2 images, got {len(y)}")
        if data.num_classes != supernet.num_classes:
            raise Incompatible(f"the dataset has {data.num_classes} classes but the supernet's "
                               f"classifier has {supernet.num_classes}")
        if len(data.y_train) < config.batch_size:
            raise InvalidOption(f"the batch size {config.batch_size} is larger than the "
                                f"{len(data.y_train)} training images")
        param = next(supernet.parameters())
        self.device, self.dtype = param.device, param.dtype
        init = torch.Generator().manual_seed(derived_seed(config.seed, 0))
        self.alphas = [
            nn.Parameter((config.init_scale * torch.randn(shape, generator=init, dtype=self.dtype)
                          ).to(self.device))
            for shape in supernet.mixture_shapes()]
        self.topology = None  # TopoNAS' topology variables (hwnas.oneshot.toponas), if any
        if topology is not None:
            from hwnas.oneshot.toponas import TopoNAS

            self.topology = TopoNAS(supernet, topology, init_scale=config.init_scale,
                                    generator=torch.Generator().manual_seed(
                                        derived_seed(config.seed, 4)))
        #: everything the alpha step optimises: the alphas, then any topology logits
        self.arch_params = [*self.alphas, *(self.topology.logits if self.topology else [])]
        self.sampler = torch.Generator().manual_seed(derived_seed(config.seed, 1))  # Gumbel noise
        self._val_gen = torch.Generator().manual_seed(derived_seed(config.seed, 2))
        self._val_order: list[torch.Tensor] = []
        self.steps_per_epoch = len(data.y_train) // config.batch_size
        self.total_steps = config.epochs * self.steps_per_epoch
        self.weights = [p for p in supernet.parameters() if p.requires_grad]
        self.weight_opt = torch.optim.SGD(self.weights, lr=config.weight_lr,
                                          momentum=config.momentum,
                                          weight_decay=config.weight_decay)
        self.weight_sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.weight_opt, T_max=self.total_steps, eta_min=config.weight_lr_min)
        self.alpha_opt = torch.optim.Adam(self.arch_params, lr=config.alpha_lr,
                                          betas=config.alpha_betas,
                                          weight_decay=config.alpha_weight_decay)

    # -- pieces ---------------------------------------------------------------------------
    def tau(self, step: int) -> float | None:
        """GDAS's temperature at ``step``: linear from ``tau_max`` (first step) to ``tau_min``
        (last step); None for DARTS."""
        c = self.config
        if c.method != "gdas":
            return None
        frac = step / (self.total_steps - 1) if self.total_steps > 1 else 1.0
        return c.tau_max - (c.tau_max - c.tau_min) * min(1.0, frac)

    def probs(self) -> list[torch.Tensor]:
        """``softmax(alpha)`` per tensor (rows over ops), differentiable; with TopoNAS the
        topology-aware mixture (rows sum to 1 too)."""
        if self.topology is not None:
            return self.topology.mixture(self.alphas)
        return [torch.softmax(a, dim=-1) for a in self.alphas]

    def mixture(self, tau: float | None = None, grad: bool = True) -> list[torch.Tensor]:
        """The weights a forward runs with: DARTS' ``softmax(alpha)``, or (``tau`` given, GDAS)
        a straight-through Gumbel one-hot per edge; detached unless ``grad``."""
        with torch.set_grad_enabled(grad):
            if tau is None:
                return [w if grad else w.detach() for w in self.probs()]
            if self.topology is not None:
                return [w if grad else w.detach()
                        for w in self.topology.sample(self.alphas, tau, self.sampler)]
            return [w if grad else w.detach()
                    for w in (gumbel_straight_through(a, tau, self.sampler) for a in self.alphas)]

    def _loss(self, batch: Batch, mixture: Sequence[torch.Tensor]) -> torch.Tensor:
        self.supernet.set_mixture(*mixture)
        x, y = batch
        return F.cross_entropy(self.supernet(x), y)

    def alpha_gradients(self, train: Batch, val: Batch, *, second_order: bool | None = None,
                        xi: float | None = None, tau: float | None = None
                        ) -> tuple[list[torch.Tensor], float]:
        """(d loss / d alpha per tensor, validation loss) at the current weights, latency
        term included (with TopoNAS: per tensor of ``arch_params``, the regulariser included);
        the weights and BN statistics are as before on return.

        First order: ``grad_alpha L_val(w, alpha)``. Second order: equation 7 with the
        finite-difference product of equation 8 (module docstring), unrolled by ``xi`` (the
        config's, else the weights' current learning rate) on ``train``. ``tau`` (GDAS) draws a
        straight-through sample for the validation forward."""
        second = self.config.second_order if second_order is None else second_order
        if second and tau is not None:
            raise InvalidOption("--second-order applies to darts only: GDAS samples one op per "
                                "edge, so there is no mixed op to unroll")
        buffers = [b.detach().clone() for b in self.supernet.buffers()]
        try:
            if second:
                grads, val_loss = self._unrolled(train, val, self._xi(xi))
            else:
                loss = self._loss(val, self.mixture(tau, grad=True))
                grads, val_loss = _grads(loss, self.arch_params), float(loss.detach())
        finally:
            with torch.no_grad():
                for b, saved in zip(self.supernet.buffers(), buffers):
                    b.copy_(saved)
        if self.latency is not None and self.latency.weight > 0:
            _, lat = self.latency.loss(self.supernet, self.alphas, probs=self._latency_probs())
            grads = [g + d for g, d in zip(grads, _grads(lat, self.arch_params))]
        if self.topology is not None:
            reg = self.topology.regulariser()
            if reg.requires_grad:
                grads = [g + d for g, d in zip(grads, _grads(reg, self.arch_params))]
        return grads, val_loss

    def _latency_probs(self) -> list[torch.Tensor] | None:
        """What the latency term reads: None (``softmax(alpha)``) or TopoNAS' mixture."""
        return None if self.topology is None else self.probs()

    def _xi(self, xi: float | None) -> float:
        if xi is not None:
            return float(xi)
        if self.config.xi is not None:
            return float(self.config.xi)
        return float(self.weight_opt.param_groups[0]["lr"])

    def _unrolled(self, train: Batch, val: Batch, xi: float) -> tuple[list[torch.Tensor], float]:
        """DARTS' equations 7-8; restores the weights exactly (from a copy) on return."""
        weights = self.weights
        saved = [w.detach().clone() for w in weights]
        try:
            # w' = w - xi * grad_w L_train(w, alpha)
            g_train = _grads(self._loss(train, self.mixture(grad=False)), weights)
            with torch.no_grad():
                for w, g in zip(weights, g_train):
                    w.sub_(xi * g)
            # grad_alpha L_val(w', alpha) and v = grad_w' L_val(w', alpha)
            loss = self._loss(val, self.mixture(grad=True))
            both = _grads(loss, [*self.arch_params, *weights])
            d_alpha, v = both[:len(self.arch_params)], both[len(self.arch_params):]
            norm = torch.sqrt(sum((vi.double() ** 2).sum() for vi in v))
            if not float(norm) > 0:
                return d_alpha, float(loss.detach())
            eps = self.config.hessian_eps / float(norm)

            def grad_alpha_train(sign: float) -> list[torch.Tensor]:
                with torch.no_grad():
                    for w, s, vi in zip(weights, saved, v):
                        w.copy_(s + sign * eps * vi)
                return _grads(self._loss(train, self.mixture(grad=True)), self.arch_params)

            plus, minus = grad_alpha_train(1.0), grad_alpha_train(-1.0)
            hessian_v = [(p - m) / (2 * eps) for p, m in zip(plus, minus)]
            return [d - xi * h for d, h in zip(d_alpha, hessian_v)], float(loss.detach())
        finally:
            with torch.no_grad():
                for w, s in zip(weights, saved):
                    w.copy_(s)

    def alpha_step(self, train: Batch, val: Batch, tau: float | None = None) -> float:
        """One Adam step of the architecture logits; returns the validation loss."""
        grads, val_loss = self.alpha_gradients(train, val, tau=tau)
        self.alpha_opt.zero_grad(set_to_none=True)
        for a, g in zip(self.arch_params, grads):
            a.grad = g.detach()
        self.alpha_opt.step()
        return val_loss

    def weight_step(self, train: Batch, tau: float | None = None) -> float:
        """One SGD step of the supernet's weights on ``softmax(alpha)`` (DARTS) or a fresh
        one-hot sample (GDAS, only the sampled ops learn); returns the training loss."""
        loss = self._loss(train, self.mixture(tau, grad=False))
        self.weight_opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.weights, self.config.grad_clip)
        self.weight_opt.step()
        self.weight_sched.step()
        return float(loss.detach())

    def _batch(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> Batch:
        return (x[idx].to(device=self.device, dtype=self.dtype), y[idx].to(self.device))

    def _val_batch(self) -> Batch:
        """The next batch of an endless, seeded shuffle of the validation split."""
        d = self.data
        if not self._val_order:
            size = min(self.config.batch_size, len(d.y_val))
            order = torch.randperm(len(d.y_val), generator=self._val_gen)
            self._val_order = [c for c in order.split(size) if len(c) >= 2][::-1]
        return self._batch(d.x_val, d.y_val, self._val_order.pop())

    @torch.no_grad()
    def record(self, epoch: int, train_loss: float, val_loss: float, tau: float | None,
               began: float) -> EpochRecord:
        topo = self.topology
        arch = self.supernet.derive(self.alphas) if topo is None else topo.derive(self.alphas)
        predicted = expected = None
        if self.latency is not None:
            ms = self.latency.predictor.predict([arch])
            predicted = float(np.asarray(ms, dtype=float).reshape(-1)[0])
            expected = float(self.latency.expected_ms(self.supernet, self.alphas,
                                                      probs=self._latency_probs()))
        probs = tuple(p.detach().cpu().numpy().copy() for p in self.probs())
        return EpochRecord(epoch, probs, arch, predicted, expected, train_loss, val_loss, tau,
                           time.perf_counter() - began, None if topo is None else topo.numpy())

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> DifferentiableResult:
        """Search for ``config.epochs`` epochs; the supernet ends in eval mode with the derived
        architecture active."""
        c, d = self.config, self.data
        began = time.perf_counter()
        history: list[EpochRecord] = []
        self.supernet.train()
        lat = self.latency
        log.info("%s%s%s search of the %s supernet: %d epochs x %d steps, batch %d%s",
                 c.method, " (second order)" if c.second_order else "",
                 "" if self.topology is None else f" + TopoNAS ({self.topology.config.mode})",
                 self.supernet.space.key,
                 c.epochs, self.steps_per_epoch, c.batch_size, "" if lat is None else
                 f", latency {lat.form} x {lat.weight:g} (budget {lat.budget_ms} ms)")
        step, tau = 0, None
        for epoch in range(c.epochs):
            gen = torch.Generator().manual_seed(derived_seed(c.seed, 3, epoch))
            order = torch.randperm(len(d.y_train), generator=gen)
            train_losses, val_losses = [], []
            for i in range(self.steps_per_epoch):
                idx = order[i * c.batch_size:(i + 1) * c.batch_size]
                train = self._batch(d.x_train, d.y_train, idx)
                tau = self.tau(step)
                val_losses.append(self.alpha_step(train, self._val_batch(), tau))
                train_losses.append(self.weight_step(train, tau))
                step += 1
            rec = self.record(epoch + 1, float(np.mean(train_losses)),
                              float(np.mean(val_losses)), tau, began)
            history.append(rec)
            log.info("epoch %d/%d: train loss %.4f, val loss %.4f%s%s, derived %s, %.1f s",
                     epoch + 1, c.epochs, rec.train_loss, rec.val_loss,
                     "" if tau is None else f", tau {tau:.3g}",
                     "" if rec.expected_ms is None else
                     f", expected {rec.expected_ms:.3f} ms, derived {rec.predicted_ms:.3f} ms",
                     self.supernet.space.to_string(rec.arch), rec.seconds)
        arch = history[-1].arch
        self.supernet.set_active(arch)
        self.supernet.eval()
        return DifferentiableResult(c.method, c.second_order, arch,
                                    tuple(a.detach().cpu().clone() for a in self.alphas), history,
                                    time.perf_counter() - began,
                                    None if self.topology is None else
                                    tuple(b.detach().cpu().clone() for b in self.topology.logits))


def differentiable_search(supernet: nn.Module, data: DataSplit, method: str = "darts", *,
                          latency: LatencyTerm | None = None,
                          topology: TopologyConfig | None = None, **settings: Any
                          ) -> DifferentiableResult:
    """Run a DARTS (``method="darts"``, ``second_order=True`` for the unrolled gradient) or
    GDAS (``"gdas"``) search of ``supernet`` on ``data``, with TopoNAS' topology variables
    on top when ``topology`` is given; ``settings`` are :class:`DifferentiableConfig` fields."""
    known = [f for f in DifferentiableConfig.__dataclass_fields__ if f != "method"]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise InvalidOption(f"unknown differentiable search setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(known)}")
    config = DifferentiableConfig(method=method, **settings)
    return DifferentiableSearch(supernet, data, config, latency=latency, topology=topology).run()


__all__ = ["METHODS", "RELAXATION", "DifferentiableConfig", "DifferentiableResult",
           "DifferentiableSearch", "EpochRecord", "LatencyTerm", "Relaxable", "SoftPredictor",
           "check_relaxable", "differentiable_search", "gumbel_straight_through"]
