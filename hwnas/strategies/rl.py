"""Reinforcement-learning search: NAS-RL's controller, MONAS's hardware-aware reward.

Follows Zoph & Le (ICLR 2017, "Neural Architecture Search with Reinforcement
Learning"): an LSTM controller emits an architecture one decision at a time
(:class:`~hwnas.controllers.LSTMController`) and is trained with REINFORCE and a
moving-average baseline (:class:`~hwnas.controllers.Reinforce`); and Hsu et al.
(2018, "MONAS: Multi-Objective Neural Architecture Search using Reinforcement
Learning"): the reward mixes accuracy with a device cost, either as a weighted sum or
as accuracy under a cost constraint.

Loop, one controller step at a time: the controller draws ``batch_size``
architectures, and again (at most ``STALL_LIMIT`` rounds) until ``batch_size`` of its
draws are new; the new ones are evaluated together as one batch, the ones evaluated
before are answered from memory (free: no query); every draw, old or new, gets its
reward, and all of them make one REINFORCE step (``-(R - b) log p - entropy_weight * H``,
Adam). So ``batch_size`` is the number of architectures evaluated per step, as for the
other strategies, and a controller that has learnt where the good architectures are
still learns from its repeats without spending queries on them.

Rewards:

* one searched objective: a scalar reward of :mod:`hwnas.rewards` (option ``reward``,
  used only here; default ``"monas"``: the objective itself when every budget is
  met, a graded penalty below every feasible reward otherwise; ``"monas-weighted"``,
  ``"mnasnet-soft"``, ``"mnasnet-hard"`` as there);
* several searched objectives (accuracy *and* latency, say): a Pareto reward. MONAS's
  rewards are scalar, so this part is hwnas's choice, not the paper's. Every
  evaluated architecture is ranked by constrained non-dominated sorting (Deb's: those
  that break a budget after every feasible one, by overshoot) with NSGA-II's crowding
  distance inside each front -- the order evolution's tournaments use -- and the
  sampled architecture's reward is its place in that order mapped to [0, 1]: 1 for
  the best, 0 for the worst. Rewards are recomputed over everything evaluated so far
  at every step, so an architecture that was on the front and has since been
  dominated earns less. (A rank-based reward is scale free: latency in ms or MACs in
  millions give the same rewards.)

Kept: the autoregressive controller (one LSTM step per decision, ENAS's logit
clipping), REINFORCE with an exponential-moving-average baseline and an entropy bonus,
MONAS's reward forms. Simplified: no child-network training inside the strategy (the
evaluator gives the accuracy: a table, a trained network or a supernet); no
distributed workers or parameter server -- one controller, updated after each batch;
NAS-RL's skip-connection attention is not needed (every hwnas space encodes its
connections as ordinary decisions).

Defaults: the papers train on thousands of child networks; a hardware-aware search
affords a few hundred queries, so the controller must move within a few dozen
updates: ``lr=0.03`` (NAS-RL: 0.0006, ENAS: 0.00035), ``batch_size=5``,
``entropy_weight=0.01``, ``baseline_decay=0.9``, ``hidden=64``. Chosen on NB201 tables
(CIFAR-10 accuracy vs gold_6226 / fpga latency; median ratio of the found front's
hypervolume to the true front's over seeds 100-119, not the search-efficiency
benchmark's seeds), at 100 queries, the defaults giving 0.981 / 0.994:

* lr 0.01 learns too slowly for 100 queries (0.961 / 0.962; the best at 300),
  0.1 collapses early (0.974 / 0.991 at 100, 0.990 / 0.996 at 300); 0.02, 0.04 and
  0.05 gave 0.984 / 0.993, 0.978 / 0.989 and 0.980 / 0.984;
* batch 3, 4 or 10, entropy weight 0 or 0.03, baseline decay 0.5 and hidden 32 were
  within noise of the defaults or below them (0.970 to 0.989 on gold_6226);
* drawing until ``batch_size`` draws are new, rather than one round of
  ``batch_size`` draws, left the 100-query scores within noise and raised the
  300-query mean over seeds 100-119 and 200-219 from 0.9936 to 0.9951 (fewer runs
  stuck with a collapsed policy);
* of the Pareto rewards tried, the place in the rank-and-crowding order was the
  best; the front rank alone (no crowding) gave 0.976 / 0.992, the additive-epsilon
  distance to the front of the other architectures 0.963 / 0.979.

On the search-efficiency benchmark's own seeds (``benchmarks/search_efficiency.py``,
gold_6226 / fpga, median HV ratio): 10 seeds 0.966 / 0.994 at 100 queries and
0.997 / 0.996 at 300; 30 seeds 0.976 / 0.993 and 0.996 / 0.997 (evolution, 30 seeds:
0.979 / 0.994 and 0.992 / 0.999; random 0.945 / 0.946 and 0.971 / 0.993).

``memory_buffer=N`` (``--memory-buffer``) adds the fix of "Understanding Neural
Architecture Search Techniques" (Adam & Lorraine 2019) to the controller's training:
the hidden state must also reconstruct the last N sampled architectures
(:mod:`hwnas.controllers.reinforce`); off by default, as in NAS-RL and MONAS (with
N = 50 the tuning runs above gave 0.966 / 0.987 at 100 queries and 0.996 / 0.998 at
300: slower early, within noise later).

Stalls: a controller that has converged keeps drawing evaluated architectures.
After ``STALL_LIMIT`` steps in a row without a new one, ``batch_size`` random
unevaluated architectures (``fresh_samples``) are evaluated beside the controller's
draws -- they are not the policy's samples, so they do not enter the policy gradient,
but they do enter the Pareto ranking -- at every step until the controller draws
something new by itself. So a search always ends (on a small space, with the whole
space evaluated).

Anytime: nothing depends on the number of queries, and the controller's weights and
draws come from the seed, so the first k queries of a longer run are a run of k.

``result.info["controller"]`` records, per update, the mean reward, the baseline, the
policy's mean entropy (nats per architecture), the number of new architectures and,
with a memory buffer, the reconstruction loss; then the number of random fills
(``random``) and the controller's most likely architecture at the end.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np
import torch

from hwnas import rewards
from hwnas.controllers import LSTMController, Reinforce
from hwnas.strategies.base import BatchCallback, SearchContext, SearchResult, Strategy
from spaces import Arch, Space
from spaces.errors import HwnasError, InvalidOption

STALL_LIMIT = 5  # controller steps in a row with nothing new before random ones are added


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidOption(f"{what} must be a finite number, got {value!r}")
    return float(value)


class RLStrategy(Strategy):
    """An LSTM controller trained by REINFORCE on (multi-objective) rewards; see the module."""

    name = "rl"

    def __init__(self, seed: int = 0, batch_size: int = 5, reward: str | None = None,
                 entropy_weight: float = 0.01, hidden: int = 64, lr: float = 0.03,
                 baseline_decay: float = 0.9, memory_buffer: int | None = None) -> None:
        super().__init__(seed, batch_size)
        if reward is not None and reward not in rewards.REWARDS:
            raise HwnasError(f"unknown reward {reward!r}; known: {', '.join(rewards.REWARDS)}")
        entropy_weight = _number(entropy_weight, "the entropy weight")
        if entropy_weight < 0:
            raise InvalidOption(f"the entropy weight must be at least 0, got {entropy_weight}")
        if isinstance(hidden, bool) or not isinstance(hidden, numbers.Integral) or hidden < 1:
            raise InvalidOption(f"the controller's hidden size must be a positive integer, "
                                f"got {hidden!r}")
        lr = _number(lr, "the controller's learning rate")
        if lr <= 0:
            raise InvalidOption(f"the controller's learning rate must be positive, got {lr}")
        baseline_decay = _number(baseline_decay, "the baseline decay")
        if not 0 <= baseline_decay < 1:
            raise InvalidOption(f"the baseline decay must be in [0, 1), got {baseline_decay}")
        if memory_buffer is not None and (isinstance(memory_buffer, bool) or not isinstance(
                memory_buffer, numbers.Integral) or memory_buffer < 1):
            raise InvalidOption(f"--memory-buffer must be a positive number of architectures, "
                                f"got {memory_buffer!r}")
        self.reward, self.entropy_weight, self.hidden = reward, entropy_weight, int(hidden)
        self.lr, self.baseline_decay = lr, baseline_decay
        self.memory_buffer = None if memory_buffer is None else int(memory_buffer)
        self.trace: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        return {**super().options(), "reward": self.reward, "entropy_weight": self.entropy_weight,
                "hidden": self.hidden, "lr": self.lr, "baseline_decay": self.baseline_decay,
                "memory_buffer": self.memory_buffer}

    # ---- the contract ------------------------------------------------------------------
    def run(self, space: Space, evaluator: Any, objectives: Sequence[Any], n_queries: int, *,
            progress: bool = False, on_batch: BatchCallback | None = None) -> SearchResult:
        """The base run, plus the controller's history in ``info["controller"]``."""
        self.trace = {}
        result = super().run(space, evaluator, objectives, n_queries, progress=progress,
                             on_batch=on_batch)
        result.info["controller"] = self.trace
        return result

    # ---- rewards ----------------------------------------------------------------------
    def _scalar(self, ctx: SearchContext):
        score = rewards.scalariser(ctx.objectives, self.reward or "monas")

        def reward(archs: list[Arch]) -> np.ndarray:
            metrics = {o.name: np.array([ctx.metrics_of(a)[o.name] for a in archs], dtype=float)
                       for o in ctx.objectives}
            return np.asarray(score(metrics), dtype=float)

        return reward

    @staticmethod
    def pareto_rewards(ctx: SearchContext, archs: list[Arch]) -> np.ndarray:
        """Each of ``archs``' place in the constrained rank-and-crowding order of every
        evaluated architecture, mapped to [0, 1] (1 = best)."""
        known, F = ctx.evaluated()
        rank, crowd = ctx.constrained_rank(known, F)
        # lexicographic (rank, -crowding); equal keys share the better place
        keys = np.column_stack([rank, -np.nan_to_num(crowd, posinf=np.finfo(float).max)])
        order = np.lexsort((keys[:, 1], keys[:, 0]))
        place = np.empty(len(known))
        place[order] = np.arange(len(known))
        ordered = keys[order]
        same = np.r_[False, np.all(ordered[1:] == ordered[:-1], axis=1)]
        for k in np.flatnonzero(same):
            place[order[k]] = place[order[k - 1]]
        n = len(known)
        score = 1.0 - place / (n - 1) if n > 1 else np.ones(n)
        where = {a: i for i, a in enumerate(known)}
        return np.array([score[where[a]] for a in archs], dtype=float)

    # ---- loop -----------------------------------------------------------------------
    def _draw(self, ctx: SearchContext, controller: LSTMController,
              generator: torch.Generator) -> tuple[list[Arch], list[Arch]]:
        """Rounds of ``batch_size`` draws from the controller until ``batch_size`` of them
        are new (or ``STALL_LIMIT`` rounds): every draw, and the new ones in draw order."""
        drawn: list[Arch] = []
        new: list[Arch] = []
        for _ in range(STALL_LIMIT):
            for arch in controller.sample(self.batch_size, generator).archs:
                drawn.append(arch)
                if not ctx.is_known(arch) and arch not in new:
                    new.append(arch)
                if len(new) == self.batch_size:
                    return drawn, new
        return drawn, new

    def make_controller(self, ctx: SearchContext) -> tuple[LSTMController, Reinforce]:
        """A fresh controller and its trainer, seeded from the search's generator (``enas``
        overrides this with the controller its supernet training produced)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ctx.rng.integers(2**31)))
            controller = LSTMController(ctx.space, hidden=self.hidden)
            trainer = Reinforce(controller, lr=self.lr, baseline_decay=self.baseline_decay,
                                entropy_weight=self.entropy_weight,
                                memory_buffer=self.memory_buffer)  # its reconstruction head too
        return controller, trainer

    def search(self, ctx: SearchContext) -> None:
        controller, trainer = self.make_controller(ctx)
        generator = torch.Generator().manual_seed(int(ctx.rng.integers(2**31)))
        replay = np.random.default_rng(int(ctx.rng.integers(2**31))) \
            if trainer.memory_buffer else None  # the memory buffer's replay picks
        multi = len(ctx.searched) >= 2
        scalar = None if multi else self._scalar(ctx)
        trace: dict[str, Any] = {"reward": [], "baseline": [], "entropy": [], "new": [],
                                 "random": 0}
        self.trace = trace
        stalled = 0
        while not ctx.done:
            drawn, new = self._draw(ctx, controller, generator)
            stalled = 0 if new else stalled + 1
            extra = self.fresh_samples(ctx, self.batch_size, exclude=drawn) \
                if stalled >= STALL_LIMIT else []
            used = ctx.used
            ctx.evaluate(new + extra)
            trace["random"] += sum(ctx.is_known(a) for a in extra)
            archs = [a for a in drawn if ctx.is_known(a)]
            if len(archs) < len(drawn):  # the queries ran out inside this batch
                break
            r = self.pareto_rewards(ctx, archs) if multi else scalar(archs)
            info = trainer.update(archs, r, rng=replay)
            trace["reward"].append(round(info["reward"], 5))
            trace["baseline"].append(round(float(info["baseline"]), 5))
            trace["entropy"].append(round(info["entropy"], 4))
            trace["new"].append(ctx.used - used)
            if "reconstruction" in info:
                trace.setdefault("reconstruction", []).append(round(info["reconstruction"], 4))
            if stalled >= STALL_LIMIT and not extra:
                break  # random sampling finds nothing new either
        trace["updates"] = len(trace["reward"])
        trace["most_likely"] = ctx.space.to_string(controller.most_likely())

__all__ = ["RLStrategy", "STALL_LIMIT"]
