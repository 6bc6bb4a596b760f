"""Which architecture(s) one training step of a supernet trains: the samplers of the papers.

A sampler only *chooses*; the trainer (:mod:`hwnas.oneshot.training`) runs what it
chose. ``plan(step, total_steps, rng, batch)`` returns the :class:`Step` s of one
optimiser step, in order; their gradients are summed before the optimiser moves:

* ``uniform`` -- SPOS (Guo et al. 2019): one path drawn uniformly per step;
* ``path_dropout`` -- One-Shot (Bender et al. 2018): every option on, each dropped
  with a rate that rises linearly over training;
* ``sandwich`` -- BigNAS (Yu et al. 2020): the largest, the smallest and ``n`` random
  networks, the largest taught by the labels and the others by it (in-place
  distillation);
* ``attentive`` -- AttentiveNAS (Wang et al. 2021): the sandwich, with the random
  networks replaced by the best (BestUp) or worst (WorstUp) of ``k`` candidates at a
  sampled cost.

Why ``rng`` is passed in rather than owned: the trainer derives it from
``(seed, step)``, so a step draws the same architectures whether the run was resumed
or not, and every rank of a data-parallel run draws the same ones without talking.
A sampler's own state (cached extremes) goes in the checkpoint through
:meth:`Sampler.state_dict`. Found by name in :data:`SAMPLERS`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.oneshot import distributed
from hwnas.oneshot.base import OneShotSupernet
from hwnas.oneshot.evaluate import scoring
from spaces import Arch, Space
from spaces.core import Registry
from spaces.core.errors import Incompatible, InvalidOption

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Step:
    """One forward/backward of a training step.

    ``arch`` (one path) or ``paths`` (option indices kept per decision) says what runs.
    ``distill`` False: cross-entropy on the labels; True: KL divergence to the soft
    predictions of the step marked ``teacher`` earlier in the same plan (detached).
    """

    arch: Arch | None = None
    paths: tuple[tuple[int, ...], ...] | None = None
    distill: bool = False
    teacher: bool = False

    def __post_init__(self) -> None:
        if (self.arch is None) == (self.paths is None):
            raise ValueError("a Step runs either one arch or a set of paths, not both or neither")

    def key(self) -> str:
        """A stable text form (logged, and compared across ranks of a data-parallel run)."""
        what = (f"arch={list(self.arch.choices)}" if self.arch is not None
                else f"paths={[list(p) for p in self.paths or ()]}")
        return f"{what} distill={int(self.distill)} teacher={int(self.teacher)}"


def check_plan(plan: Sequence[Step]) -> list[Step]:
    """The plan as a list, refused if a distilled step has no teacher before it."""
    plan = list(plan)
    if not plan:
        raise ValueError("a sampler planned no step")
    seen_teacher = False
    for step in plan:
        if step.distill and not seen_teacher:
            raise ValueError("a distilled step needs a teacher step before it in the plan")
        seen_teacher = seen_teacher or step.teacher
    return plan


class Sampler(ABC):
    """Chooses what each training step of ``supernet`` trains."""

    name: str = ""

    def __init__(self, supernet: OneShotSupernet) -> None:
        self.supernet = supernet
        self.space: Space = supernet.space

    @abstractmethod
    def plan(self, step: int, total_steps: int, rng: np.random.Generator,
             batch: Batch | None = None) -> list[Step]:
        """The steps of optimiser step ``step`` (0-based) of ``total_steps``; ``batch`` is
        this rank's minibatch, for samplers that look at the data."""

    def bind(self, data: Any) -> None:
        """Hook: the trainer hands over the :class:`DataSplit` before the first step (ENAS's
        controller is rewarded on validation minibatches); most samplers ignore it."""

    def describe(self) -> dict[str, Any]:
        """Name and options (stored in checkpoints; a resume must match them)."""
        return {"name": self.name}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs and cannot cheaply recompute (plain Python values)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


# The samplers of this module register themselves below; those with a module of their own
# are import paths, loaded when named.
SAMPLERS: Registry[type[Sampler]] = Registry("sampler", {
    "enas": "hwnas.oneshot.enas:EnasSampler",
    "parsec": "hwnas.oneshot.parsec_sampler:PARSECSampler",
})


def make_sampler(name: str, supernet: OneShotSupernet, **options: Any) -> Sampler:
    """The sampler registered as ``name`` for ``supernet`` (None options left out)."""
    return SAMPLERS.create(name, supernet, **options)


# -- SPOS ---------------------------------------------------------------------------------
@SAMPLERS.register("uniform")
class UniformSampler(Sampler):
    """Single Path One-Shot (Guo et al. 2019): each step trains one architecture drawn
    uniformly from the space, so every path is trained about equally and the weights do
    not co-adapt. Kept: uniform single-path sampling, labels only. Simplified: the
    paper's channel-number and quantisation choices are whatever the space defines."""

    def plan(self, step: int, total_steps: int, rng: np.random.Generator,
             batch: Batch | None = None) -> list[Step]:
        return [Step(arch=self.space.sample(rng))]


# -- One-Shot (Bender et al.) ---------------------------------------------------------------
@SAMPLERS.register("path_dropout")
class PathDropoutSampler(Sampler):
    """One-Shot (Bender et al. 2018, "Understanding and Simplifying One-Shot Architecture
    Search"): every option of every decision runs (outputs summed) and each is dropped
    independently, so that the network cannot lean on any one path and a single path
    evaluated later behaves like it did in training.

    Kept: the rate rises linearly from 0 at the first step to ``max_rate`` at the last;
    an option of a decision with ``k`` options is dropped with probability
    ``rate ** (1 / k)`` (the paper's rule, which makes "all dropped" as likely as
    ``rate`` whatever ``k``); at least one option per decision always stays (no empty
    decision). Simplified: one drop mask per batch rather than per example; ghost
    batch norm and L2 on kept paths only are left to the supernet and optimiser.
    """

    def __init__(self, supernet: OneShotSupernet, max_rate: float = 0.1) -> None:
        if not getattr(supernet, "supports_paths", False):
            raise Incompatible(f"path dropout needs a supernet that runs several options of a "
                               f"decision side by side, and the {supernet.space.name} supernet "
                               f"runs one path at a time")
        if not 0.0 <= float(max_rate) <= 1.0:
            raise InvalidOption(f"the path dropout rate must be between 0 and 1, got {max_rate}")
        super().__init__(supernet)
        self.max_rate = float(max_rate)

    def rate(self, step: int, total_steps: int) -> float:
        """The scheduled rate at ``step``: 0 at the first, ``max_rate`` at the last."""
        if total_steps <= 1:
            return self.max_rate
        return self.max_rate * min(1.0, max(0.0, step / (total_steps - 1)))

    def drop_probability(self, step: int, total_steps: int, options: int) -> float:
        """Chance that one option of a decision with ``options`` options is dropped."""
        return self.rate(step, total_steps) ** (1.0 / max(1, options))

    def keep(self, step: int, total_steps: int,
             rng: np.random.Generator) -> tuple[tuple[int, ...], ...]:
        """Option indices kept per decision (never none)."""
        kept = []
        for decision in self.space.decisions:
            k = len(decision)
            p = self.drop_probability(step, total_steps, k) if k > 1 else 0.0
            keep = [j for j in range(k) if rng.random() >= p]
            if not keep:  # no empty decision: a random survivor instead of a zero output
                keep = [int(rng.integers(k))]
            kept.append(tuple(keep))
        return tuple(kept)

    def plan(self, step: int, total_steps: int, rng: np.random.Generator,
             batch: Batch | None = None) -> list[Step]:
        return [Step(paths=self.keep(step, total_steps, rng))]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "max_rate": self.max_rate}


# -- BigNAS -------------------------------------------------------------------------------
def greedy_extreme(space: Space, value: Callable[[Arch], float], largest: bool,
                   max_passes: int = 3) -> Arch:
    """The architecture maximising (``largest``) or minimising ``value``, by coordinate
    ascent/descent over the decisions from the all-first-options network (also the
    pipeline's cheapest network, :func:`hwnas.pipeline.floor.cheapest_arch`); exact for
    costs that grow with every decision, such as counted MACs."""
    sign = -1.0 if largest else 1.0
    arch = Arch(space.key, tuple(0 for _ in space.decisions))
    if not space.is_valid(arch):
        arch = space.sample(0)
    best = sign * value(arch)
    for _ in range(max_passes):
        improved = False
        for i, decision in enumerate(space.decisions):
            for j in range(len(decision)):
                cand = Arch(arch.space, arch.choices[:i] + (j,) + arch.choices[i + 1:])
                if cand == arch or not space.is_valid(cand):
                    continue
                v = sign * value(cand)
                if v < best:
                    arch, best, improved = cand, v, True
        if not improved:
            break
    return arch


class MacsCounter:
    """Counted MACs of architectures at the supernet's input size and classes, memoised
    (each count builds the network, milliseconds to a second)."""

    def __init__(self, supernet: OneShotSupernet) -> None:
        self.space, self.input_size = supernet.space, supernet.input_size
        self.num_classes = supernet.num_classes
        self.memo: dict[Arch, float] = {}

    def __call__(self, arch: Arch) -> float:
        if arch not in self.memo:
            self.memo[arch] = float(self.space.cost(arch, self.input_size, self.num_classes).macs)
        return self.memo[arch]


@SAMPLERS.register("sandwich")
class SandwichSampler(Sampler):
    """BigNAS (Yu et al. 2020, "BigNAS: Scaling Up Neural Architecture Search with Big
    Single-Stage Models"): each step trains the largest network, the smallest and ``n``
    random ones (the sandwich rule: the extremes bound every other network's
    performance, so training them lifts the whole range); the largest learns from the
    labels and the others from its soft predictions, detached (in-place distillation).

    Kept: sandwich rule, in-place distillation with KL divergence. Largest and smallest
    are by counted MACs (found greedily, cached with the sampler's state). Simplified:
    no label smoothing, no exponential moving average of weights, no initialisation or
    regularisation tricks of the paper; the learning-rate schedule is the trainer's.
    """

    def __init__(self, supernet: OneShotSupernet, n: int = 2) -> None:
        if int(n) < 0:
            raise InvalidOption(f"the sandwich needs n >= 0 random networks per step, got {n}")
        super().__init__(supernet)
        self.n = int(n)
        self.macs = MacsCounter(supernet)
        self._largest: Arch | None = None
        self._smallest: Arch | None = None

    @property
    def largest(self) -> Arch:
        if self._largest is None:
            self._largest = greedy_extreme(self.space, self.macs, largest=True)
            log.info("largest %s network: %s (%.0f MACs)", self.space.key,
                     self.space.to_string(self._largest), self.macs(self._largest))
        return self._largest

    @property
    def smallest(self) -> Arch:
        if self._smallest is None:
            self._smallest = greedy_extreme(self.space, self.macs, largest=False)
            log.info("smallest %s network: %s (%.0f MACs)", self.space.key,
                     self.space.to_string(self._smallest), self.macs(self._smallest))
        return self._smallest

    def middle(self, rng: np.random.Generator, batch: Batch | None) -> list[Arch]:
        """The networks between the extremes: ``n`` uniform draws here."""
        return [self.space.sample(rng) for _ in range(self.n)]

    def plan(self, step: int, total_steps: int, rng: np.random.Generator,
             batch: Batch | None = None) -> list[Step]:
        steps = [Step(arch=self.largest, teacher=True)]
        steps += [Step(arch=a, distill=True) for a in self.middle(rng, batch)]
        steps.append(Step(arch=self.smallest, distill=True))
        return steps

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n}

    def state_dict(self) -> dict[str, Any]:
        return {"largest": list(self.largest.choices), "smallest": list(self.smallest.choices)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "largest" in state:
            self._largest = self.space.arch(state["largest"])
        if "smallest" in state:
            self._smallest = self.space.arch(state["smallest"])


# -- AttentiveNAS -------------------------------------------------------------------------
@SAMPLERS.register("attentive")
class AttentiveSampler(SandwichSampler):
    """AttentiveNAS (Wang et al. 2021, "AttentiveNAS: Improving Neural Architecture Search
    via Attentive Sampling"): BigNAS's sandwich, but each network between the extremes
    is chosen with attention to the Pareto front: draw a target cost, take ``k``
    candidates of about that cost, rank them by a cheap accuracy estimate and train the
    best (``mode="best"``, BestUp: pushes the front up) or the worst (``"worst"``,
    WorstUp: lifts the stragglers).

    Kept: target cost uniform over the range from the smallest to the largest network;
    ``k`` candidates of about that cost (default 3, the paper's BestUp-3), drawn
    uniformly among the architectures near the target; the default estimate is the
    minibatch loss under the current inherited weights (the paper's cheap estimator;
    lower loss ranks higher), with batch norm statistics left untouched. ``cost`` may be
    any ``arch -> float`` (counted MACs by default, or a latency predictor's
    ``predict``) and ``score`` any ``arch -> float`` (higher is better). Like the
    paper, costs come from a table computed once: ``table`` uniform draws (default
    1024) with their costs, kept in the sampler's state, so a step costs no counting
    (counting MACs takes ~25 ms an architecture, ~1 s a step if done per draw).
    Simplified: "near the target" is the ``pool`` table entries closest to it (default
    ``4 k``) rather than a FLOPs bin of the whole space, so the networks between the
    extremes come from the table's architectures; the cost range's ends are the costs
    of the MACs extremes.
    """

    def __init__(self, supernet: OneShotSupernet, n: int = 2, k: int = 3, mode: str = "best",
                 cost: Callable[[Arch], float] | None = None,
                 score: Callable[[Arch], float] | None = None, pool: int | None = None,
                 table: int = 1024, table_seed: int = 0) -> None:
        super().__init__(supernet, n)
        if int(k) < 1:
            raise InvalidOption(f"attentive sampling needs k >= 1 candidates, got {k}")
        if mode not in ("best", "worst"):
            raise InvalidOption(f"attentive sampling mode must be 'best' (BestUp) or 'worst' "
                                f"(WorstUp), got {mode!r}")
        self.k, self.mode = int(k), mode
        self.pool = int(pool) if pool is not None else 4 * self.k
        if self.pool < self.k:
            raise InvalidOption(f"the candidate pool ({self.pool}) must hold at least k={self.k}")
        if int(table) < self.pool:
            raise InvalidOption(f"the cost table ({table}) must hold at least the pool "
                                f"({self.pool})")
        self.table_size, self.table_seed = int(table), int(table_seed)
        self.cost_fn = cost
        self.score_fn = score
        self._cost_memo: dict[Arch, float] = {}
        self._table: list[Arch] | None = None

    def cost(self, arch: Arch) -> float:
        if arch not in self._cost_memo:
            self._cost_memo[arch] = float(self.cost_fn(arch) if self.cost_fn else self.macs(arch))
        return self._cost_memo[arch]

    def cost_range(self) -> tuple[float, float]:
        low, high = self.cost(self.smallest), self.cost(self.largest)
        return (min(low, high), max(low, high))

    @property
    def table(self) -> list[Arch]:
        """The cost table: ``table`` distinct uniform draws (fewer if the space is smaller),
        sorted by cost, each cost computed once."""
        if self._table is None:
            rng = np.random.default_rng(self.table_seed)
            drawn: dict[Arch, None] = {}
            for _ in range(20 * self.table_size):
                if len(drawn) >= self.table_size:
                    break
                drawn.setdefault(self.space.sample(rng))
            self._table = sorted(drawn, key=self.cost)
            log.info("attentive sampling: cost table of %d %s architectures", len(self._table),
                     self.space.key)
        return self._table

    def candidates(self, target: float, rng: np.random.Generator) -> list[Arch]:
        """``k`` architectures drawn uniformly among the ``pool`` table entries closest in
        cost to ``target``."""
        table = self.table
        near = sorted(range(len(table)), key=lambda i: (abs(self.cost(table[i]) - target), i))
        near = near[:max(self.k, self.pool)]
        chosen = rng.choice(len(near), size=min(self.k, len(near)), replace=False)
        return [table[near[int(i)]] for i in sorted(chosen)]

    def scores(self, archs: Sequence[Arch], batch: Batch | None) -> np.ndarray:
        """Estimated accuracy of each candidate (higher is better)."""
        if self.score_fn is not None:
            return np.asarray([float(self.score_fn(a)) for a in archs])
        if batch is None:
            raise InvalidOption("attentive sampling scores candidates on the minibatch; the "
                                "trainer must pass it (or give a score function)")
        return -minibatch_losses(self.supernet, archs, batch)

    def pick(self, archs: Sequence[Arch], scores: np.ndarray) -> Arch:
        i = int(np.argmax(scores) if self.mode == "best" else np.argmin(scores))
        return archs[i]

    def middle(self, rng: np.random.Generator, batch: Batch | None) -> list[Arch]:
        low, high = self.cost_range()
        out = []
        for _ in range(self.n):
            target = float(rng.uniform(low, high))
            archs = self.candidates(target, rng)
            out.append(self.pick(archs, self.scores(archs, batch)))
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n, "k": self.k, "mode": self.mode,
                "pool": self.pool, "table": self.table_size, "table_seed": self.table_seed,
                "cost": "macs" if self.cost_fn is None else "custom",
                "score": "minibatch_loss" if self.score_fn is None else "custom"}

    def state_dict(self) -> dict[str, Any]:
        table = self.table
        return {**super().state_dict(), "table": [list(a.choices) for a in table],
                "table_cost": [self.cost(a) for a in table]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "table" in state:
            archs = [self.space.arch(c) for c in state["table"]]
            self._cost_memo.update(zip(archs, (float(c) for c in state["table_cost"])))
            self._table = archs


@torch.no_grad()
def minibatch_losses(supernet: OneShotSupernet, archs: Sequence[Arch], batch: Batch) -> np.ndarray:
    """Cross-entropy of each arch on ``batch`` with the current weights, in train mode (batch
    statistics, as the step will see) but with every BN running statistic restored
    afterwards, so scoring leaves no trace. In a data-parallel run the losses are
    averaged over the ranks, so every rank ranks the candidates alike."""
    x, y = batch
    losses = torch.zeros(len(archs), dtype=torch.float64, device=x.device)
    with scoring(supernet):
        for i, arch in enumerate(archs):
            supernet.set_active(arch)
            losses[i] = F.cross_entropy(supernet(x), y).double()
    return distributed.mean_over_ranks(losses).cpu().numpy()


__all__ = ["SAMPLERS", "AttentiveSampler", "Batch", "MacsCounter", "PathDropoutSampler",
           "Sampler", "SandwichSampler", "Step", "UniformSampler", "check_plan",
           "greedy_extreme", "make_sampler", "minibatch_losses"]
