"""Training the supernet: weight warm-up, then alternating weight / alpha updates per budget.

* Weights learn on one part of the training split, alpha on the other (DARTS /
  FBNet), so the evaluator's validation split, on which the chosen network's
  accuracy is finally reported, is never seen by the search.
* alpha's loss is ``CE + latency_weight * latency_loss(predict_soft(softmax(alpha)), budget)``
  (``hinge`` by default; ``fbnet`` with the budget as its unit, ``mnasnet``):
  the latency term is the predictor's differentiable expected latency of the
  current distribution, the only place the device enters (the predictor was fitted
  on the device's measurements; nothing is timed here).
* Gumbel-softmax temperature anneals exponentially from ``tau_start`` to
  ``tau_end`` over the search steps (FBNet decays it by ~0.956 per epoch over
  90 epochs; the few epochs a CPU affords need the whole range per run).
* ``sampling="soft"`` is FBNet/FBNetV2: every block branch weighted by a soft
  Gumbel sample (and the channel masks mixed by one). ``"hard"`` is GDAS: a
  straight-through one-hot sample, only the chosen branches run, alpha learns
  through their weights. Measured here (tiny preset, digits): hard single-path
  sampling from a uniform alpha left the training loss at chance (2.3) after 6
  epochs (per-option weights never co-adapt on ~1,000 images); soft sampling
  brought it to 0.8 in 2 epochs, so soft is the default for blocks and channels.
* ``resolution_sampling="hard"`` (default) runs one resized-input branch per step,
  drawn by a straight-through Gumbel sample: the three trunk passes of the soft
  form cost (8^2 + 12^2 + 16^2) / 16^2 = 1.8x the widest one, so this is what keeps
  a CPU step affordable; random resolution alone trains as well as a fixed one.
* ``supernet="singlepath"`` (default) masks every block decision inside one block
  (:mod:`.singlepath`); ``"multipath"`` runs every block option as a branch
  (:class:`.supernet.FBNetV2Supernet`). Measured here (``benchmarks/results/
  supernet_memory.txt``, ``supernet_search.txt``): single-path takes 1.03x the widest
  net's training-step memory (multi-path 3.1x, growing with the options) and chose,
  over 2 seeds x 3 budgets, networks 0.2 points less accurate (within noise) at 0.98x
  the measured latency in 0.64x the search time, so it is the default. The strategy builds the
  kind the config names (:func:`.kinds.make_supernet`); :class:`SupernetSearch` trains
  whichever supernet it is given.
* The chosen architecture is the argmax of every decision; when the predictor says
  it breaks the budget (the loss bounds the *expected* latency, and a diffuse
  softmax's argmax can lie above it) it is repaired by :func:`fit_to_budget`
  (``repair=False`` keeps the raw argmax); both are recorded.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.strategies.supernet.kinds import SUPERNETS
from hwnas.strategies.supernet.supernet import ArchParams, SupernetBase
from latency.loss import FORMS as LATENCY_FORMS
from latency.loss import latency_loss
from spaces import Arch
from spaces.core.errors import InvalidOption

SAMPLINGS = ("soft", "hard")
logger = logging.getLogger(__name__)


BadSearchSetting = InvalidOption  # A supernet search setting is out of range.


@dataclass(frozen=True)
class SearchConfig:
    """Everything that shapes one supernet search (stored in the run's config)."""

    warmup_epochs: int = 2
    search_epochs: int = 2
    batch_size: int = 64
    weight_lr: float = 3e-3
    weight_decay: float = 5e-4
    alpha_lr: float = 0.05
    alpha_decay: float = 1e-3
    tau_start: float = 5.0
    tau_end: float = 0.5
    latency_form: str = "hinge"
    latency_weight: float = 2.0
    sampling: str = "soft"
    resolution_sampling: str = "hard"
    alpha_fraction: float = 0.25
    repair: bool = True
    seed: int = 0
    supernet: str = "singlepath"

    def __post_init__(self) -> None:
        for name in ("warmup_epochs", "search_epochs"):
            if getattr(self, name) < 0:
                raise BadSearchSetting(f"{name} must be at least 0, got {getattr(self, name)}")
        if self.search_epochs < 1:
            raise BadSearchSetting(f"search_epochs must be at least 1, got {self.search_epochs}")
        if self.batch_size < 2:
            raise BadSearchSetting(f"batch_size must be at least 2 (BatchNorm), got {self.batch_size}")
        for name in ("weight_lr", "alpha_lr", "tau_start", "tau_end"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise BadSearchSetting(f"{name} must be a positive number, got {value!r}")
        if self.tau_end > self.tau_start:
            raise BadSearchSetting(f"tau_end ({self.tau_end}) must not exceed tau_start ({self.tau_start})")
        if not 0 < self.alpha_fraction < 1:
            raise BadSearchSetting(f"alpha_fraction must be between 0 and 1, got {self.alpha_fraction}")
        if self.latency_weight < 0:
            raise BadSearchSetting(f"latency_weight must be at least 0, got {self.latency_weight}")
        for name in ("sampling", "resolution_sampling"):
            if getattr(self, name) not in SAMPLINGS:
                raise BadSearchSetting(f"{name} must be one of {', '.join(SAMPLINGS)}, "
                                       f"got {getattr(self, name)!r}")
        if self.supernet not in SUPERNETS:
            raise BadSearchSetting(f"supernet must be one of {', '.join(SUPERNETS)}, "
                                   f"got {self.supernet!r}")
        if self.latency_form not in LATENCY_FORMS:
            raise BadSearchSetting(f"latency_form must be one of {', '.join(LATENCY_FORMS)}, "
                                   f"got {self.latency_form!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def temperature(step: int, total: int, start: float, end: float) -> float:
    """Exponential annealing: ``start`` at step 0, ``end`` at the last step."""
    if total <= 1:
        return end
    return start * (end / start) ** (min(step, total - 1) / (total - 1))


@dataclass
class BudgetOutcome:
    """What one budget's search chose, and how alpha got there."""

    budget_ms: float
    arch: Arch                  # the chosen arch (argmax, repaired if it broke the budget)
    expected_ms: float          # predict_soft(softmax(alpha)) at the end
    predicted_ms: float         # predictor.predict([arch])
    argmax: Arch                # argmax of every decision
    argmax_ms: float            # its predicted latency
    probs: list[list[float]]    # softmax(alpha) per decision
    seconds: float
    trace: list[dict[str, float]] = field(default_factory=list)  # per epoch


def fit_to_budget(space: Any, arch: Arch, probs: list[list[float]], predictor: Any,
                  budget_ms: float, max_moves: int = 100) -> tuple[Arch, float]:
    """(arch, predicted ms): ``arch`` if the predictor puts it within budget, else the
    arch reached by greedy cheaper moves, each the one that gives up the least
    log-probability per predicted ms saved.

    Why: the latency loss constrains the *expected* latency of softmax(alpha); the
    argmax of a still-diffuse distribution can lie above it. This keeps the argmax
    whenever it fits and otherwise departs from it as little as alpha allows.
    """
    def predict(archs: list[Arch]) -> np.ndarray:
        return np.asarray(predictor.predict(archs), dtype=float).reshape(-1)

    current = float(predict([arch])[0])
    logp = [np.log(np.clip(np.asarray(p, dtype=float), 1e-12, None)) for p in probs]
    for _ in range(max_moves):
        if current <= budget_ms:
            break
        moves = [(d, o) for d, decision in enumerate(space.decisions)
                 for o in range(len(decision)) if o != arch.choices[d]]
        cands = [Arch(arch.space, arch.choices[:d] + (o,) + arch.choices[d + 1:]) for d, o in moves]
        ms = predict(cands)
        best, best_score = None, np.inf
        for (d, o), cand, m in zip(moves, cands, ms):
            saved = current - m
            if saved <= 0 or not space.is_valid(cand):
                continue
            score = (logp[d][arch.choices[d]] - logp[d][o]) / saved
            if score < best_score:
                best, best_score = (cand, float(m)), score
        if best is None:
            break  # nothing cheaper: the budget is below this space's floor
        arch, current = best
    return arch, current


class Batches:
    """Endless shuffled mini-batches of one (x, y) split, from a fixed generator."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, gen: torch.Generator) -> None:
        if len(y) < 2:
            raise BadSearchSetting(f"a data split needs at least 2 images, got {len(y)}")
        self.x, self.y, self.batch_size, self.gen = x, y, min(batch_size, len(y)), gen
        self._order: list[torch.Tensor] = []

    @property
    def per_epoch(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._order:
            order = torch.randperm(len(self.y), generator=self.gen)
            chunks = [c for c in order.split(self.batch_size) if len(c) >= 2]
            self._order = chunks[::-1]
        idx = self._order.pop()
        return self.x[idx], self.y[idx]


def split_for_alpha(x: torch.Tensor, y: torch.Tensor, fraction: float,
                    seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_w, y_w, x_a, y_a): a fixed random ``fraction`` of the training split for alpha."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=gen)
    n_a = max(2, int(round(len(y) * fraction)))
    if len(y) - n_a < 2:
        raise BadSearchSetting(f"the training split ({len(y)} images) is too small to split "
                               f"for weight and alpha updates")
    a, w = order[:n_a], order[n_a:]
    return x[w], y[w], x[a], y[a]


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Parameters need no gradient inside (an alpha step must not pay for the weight
    gradients, the dearest part of a CPU backward pass); restored on exit."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class SupernetSearch:
    """Owns a supernet and its data; ``warmup()`` once, then ``search(budget)`` per budget,
    each starting from the warmed-up weights and a uniform alpha."""

    def __init__(self, supernet: SupernetBase, x_train: torch.Tensor, y_train: torch.Tensor,
                 predictor: Any, config: SearchConfig,
                 log: Callable[[str], None] | None = None) -> None:
        self.config, self.predictor, self.log = config, predictor, log
        self.space = supernet.space
        kind = getattr(supernet, "kind", None)
        if kind != config.supernet:
            logger.warning("searching a %s supernet with a config that names %s; the config's "
                           "'supernet' only chooses what SupernetStrategy builds", kind,
                           config.supernet)
        torch.manual_seed(config.seed)
        self.supernet = supernet.to(memory_format=torch.channels_last)
        x_train = x_train.contiguous(memory_format=torch.channels_last)
        self.x_w, self.y_w, self.x_a, self.y_a = split_for_alpha(
            x_train, y_train, config.alpha_fraction, config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        self._warm_state: dict[str, torch.Tensor] | None = None

    # ---- pieces -------------------------------------------------------------------------
    def _weight_optimizer(self, steps: int) -> tuple[torch.optim.Optimizer, Any]:
        c = self.config
        opt = torch.optim.AdamW(self.supernet.parameters(), lr=c.weight_lr, weight_decay=c.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
        return opt, sched

    def _weights(self, alpha: ArchParams, tau: float, grad: bool) -> list[torch.Tensor]:
        c = self.config
        hard = [c.sampling == "hard"] * len(self.space.decisions)
        hard[self.space.resolution_decision] = c.resolution_sampling == "hard"
        with torch.set_grad_enabled(grad):
            return alpha.sample(tau, hard=hard)

    def _weight_step(self, opt: torch.optim.Optimizer, alpha: ArchParams, tau: float,
                     batches: Batches) -> float:
        x, y = batches.next()
        weights = self._weights(alpha, tau, grad=False)
        loss = F.cross_entropy(self.supernet(x, weights, sparse=True), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def latency_term(self, alpha: ArchParams, budget_ms: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(expected latency ms, latency loss) of softmax(alpha), both differentiable."""
        expected = self.predictor.predict_soft(alpha.flat_probs())
        form = self.config.latency_form
        # FBNet's alpha*log(lat)^beta has no budget; with the budget as its unit it
        # vanishes at or under the budget and grows (concavely) above it, so one
        # knob -- the budget -- moves the front for every form.
        params = {"unit_ms": float(budget_ms)} if form == "fbnet" else {}
        return expected, latency_loss(expected, budget_ms, form=form, **params)

    def _alpha_step(self, opt: torch.optim.Optimizer, alpha: ArchParams, tau: float,
                    budget_ms: float, batches: Batches) -> tuple[float, float, float]:
        c = self.config
        x, y = batches.next()
        weights = self._weights(alpha, tau, grad=True)
        with frozen(self.supernet):
            ce = F.cross_entropy(self.supernet(x, weights, sparse=True), y)
        expected, lat = self.latency_term(alpha, budget_ms)
        loss = ce + c.latency_weight * lat
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(ce.detach()), float(lat.detach()), float(expected.detach())

    # ---- phases -------------------------------------------------------------------------
    def warmup(self) -> None:
        """Train the shared weights with alpha frozen at uniform; remember the result."""
        c = self.config
        batches = Batches(self.x_w, self.y_w, c.batch_size, self.gen)
        steps = c.warmup_epochs * batches.per_epoch
        uniform = ArchParams(self.space)
        self.supernet.train()
        if steps:
            opt, sched = self._weight_optimizer(steps)
            start, losses = time.perf_counter(), []
            for step in range(steps):
                losses.append(self._weight_step(opt, uniform, c.tau_start, batches))
                sched.step()
                if (step + 1) % batches.per_epoch == 0 and self.log:
                    self.log(f"warm-up epoch {(step + 1) // batches.per_epoch}/{c.warmup_epochs}: "
                             f"loss {np.mean(losses[-batches.per_epoch:]):.3f} "
                             f"({time.perf_counter() - start:.0f} s)")
        self._warm_state = copy.deepcopy(self.supernet.state_dict())

    def search(self, budget_ms: float) -> BudgetOutcome:
        """Alternate weight and alpha steps for ``search_epochs``; return the argmax arch."""
        c = self.config
        if self._warm_state is None:
            self.warmup()
        self.supernet.load_state_dict(self._warm_state)
        self.supernet.train()
        alpha = ArchParams(self.space)
        w_batches = Batches(self.x_w, self.y_w, c.batch_size, self.gen)
        a_batches = Batches(self.x_a, self.y_a, c.batch_size, self.gen)
        per_epoch = w_batches.per_epoch
        total = c.search_epochs * per_epoch
        w_opt, w_sched = self._weight_optimizer(total)
        a_opt = torch.optim.Adam(alpha.parameters(), lr=c.alpha_lr, betas=(0.5, 0.999),
                                 weight_decay=c.alpha_decay)
        start = time.perf_counter()
        trace: list[dict[str, float]] = []
        stats: list[tuple[float, float, float, float]] = []
        for step in range(total):
            tau = temperature(step, total, c.tau_start, c.tau_end)
            w_loss = self._weight_step(w_opt, alpha, tau, w_batches)
            w_sched.step()
            ce, lat, expected = self._alpha_step(a_opt, alpha, tau, budget_ms, a_batches)
            stats.append((w_loss, ce, lat, expected))
            if (step + 1) % per_epoch == 0:
                mean = np.mean(stats[-per_epoch:], axis=0)
                trace.append({"epoch": (step + 1) // per_epoch, "tau": tau, "weight_loss": mean[0],
                              "alpha_ce": mean[1], "latency_loss": mean[2], "expected_ms": mean[3]})
                if self.log:
                    self.log(f"budget {budget_ms:.3g} ms, epoch {trace[-1]['epoch']}/{c.search_epochs}: "
                             f"tau {tau:.2f}, CE {mean[1]:.3f}, E[latency] {mean[3]:.3g} ms "
                             f"({time.perf_counter() - start:.0f} s)")
        argmax = alpha.argmax()
        with torch.no_grad():
            expected = float(self.predictor.predict_soft(alpha.flat_probs()))
        probs = [p.detach().tolist() for p in alpha.probs()]
        argmax_ms = float(np.asarray(self.predictor.predict([argmax])).reshape(-1)[0])
        arch, predicted = argmax, argmax_ms
        if c.repair:
            arch, predicted = fit_to_budget(self.space, argmax, probs, self.predictor, budget_ms)
        self.alpha = alpha
        return BudgetOutcome(float(budget_ms), arch, expected, predicted, argmax, argmax_ms, probs,
                             time.perf_counter() - start, trace)
