"""Neural Architecture Optimization (Luo et al., NeurIPS 2018), hardware-aware and multi-objective.

Loop (NAO's, one search iteration per evaluated batch):

1. ``init`` random architectures are evaluated (NAO's random seed pool);
2. the encoder-predictor-decoder is trained on every evaluated architecture
   (plus the space's symmetric variants, NAO's augmentation, where it has a
   symmetry hook, and ``unlabeled`` random architectures for the
   reconstruction term only): reconstruction + ``lam`` x quality regression +
   ``mu`` x cost regression. The model is kept and trained further each
   iteration (``init_epochs`` first, then ``epochs``), as NAO keeps its controller,
   plus rounds of ``epochs`` until a share ``exact`` of the evaluated
   architectures decodes back, at most ``extra_epochs`` more per iteration
   (long token sequences need them; see ``NAOModel.fit_until_exact``);
3. the *quality* head predicts the first searched objective (accuracy); the
   *cost* head the second (log latency on the target device, or log MACs...),
   or, in a single-objective search, the metric that carries a budget;
4. rewards ``quality - penalty * latency_loss(cost, T)`` are ascended in
   embedding space, each from its own seed. Multi-objective: every member of
   the evaluated Pareto front is a seed, once per budget ``T = f x its own
   cost`` for ``f`` in ``shrink`` -- with the default (1.0, 0.8): "more
   accurate at this latency" and "20% faster, as accurate" -- so the budgets
   follow the front across the observed latency range; a budget of the cost
   objective itself adds a reward seeded by the ``top_k`` best under it.
   Single objective: its reward (with its budget, if any) from the ``top_k``
   best. Each seed's embedding moves along the normalised gradient with a
   growing step until ``per_seed`` new architectures have been decoded (NAO);
   with ``walk``, where the reward has a budget, a new architecture counts
   only once its predicted cost meets it (so "20% faster" means it); a seed
   that never gets there gives the new ones that came closest;
5. of the proposals, ``batch_size`` are evaluated as one batch, chosen by
   predicted hypervolume gain (:mod:`~hwnas.strategies.nao.select`); when the
   step finds fewer, random architectures fill the batch;
6. repeat until the context is done.

Defaults were tuned on NB201 tables (see benchmarks/nao_checks.py and the
search-efficiency benchmark): batches of 5 (the controller is re-fitted
often), regression weights 3 (the heads must rank well enough to select),
and every front member as a seed (as evolution's rank/crowding tournament
keeps the front's ends in play). ``extra_epochs`` 30 is the least that gets
fbnet's and the nao cell's reconstruction to 99% in a 100-query search
(20 left fbnet at 98.9%); an unbounded one (200) also memorises NB201's
first 20-40 architectures and lowered its median HV ratio at 100 queries
(0.983 -> 0.979 on gold_6226, 30 seeds, paired Wilcoxon p = 0.04; our
reading, not verified: early on, a decoder that cannot yet reproduce the
few evaluated archs proposes more varied ones). ``walk`` left NB201's HV
ratios within noise (0.979 -> 0.981 gold_6226, 0.995 both on fpga, 30
seeds) but makes a tighter budget decode to clearly faster architectures
(benchmarks/nao_checks.py, part 3).

Anytime: nothing depends on the total budget, and every random choice
(initial sample, weight initialisation, mini-batch order, augmentation,
unlabeled pool) is drawn from the seed, so a resumed run retraces the
original one exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from hwnas import pareto
from hwnas.objectives import Objective
from hwnas.strategies.base import SearchContext, Strategy
from hwnas.strategies.nao.data import Scaler, augmented, check_space, token_matrix
from hwnas.strategies.nao.errors import BadOption
from hwnas.strategies.nao.model import NAOModel
from hwnas.strategies.nao.optimise import make_score, make_overshoot, propose
from hwnas.strategies.nao.select import by_hypervolume_gain
from spaces import Arch

LOSS_FORMS = ("hinge", "mnasnet", "fbnet")


def roles(ctx: SearchContext) -> tuple[Objective | None, Objective | None]:
    """(quality, cost) objectives: quality is maximised by the reward, cost penalised.

    Two or more searched objectives: the first two (further ones are kept in
    the history but not modelled). One maximised objective: the cost is the
    first budget-only metric, if any. One minimised objective: it is the cost."""
    searched = ctx.searched
    if len(searched) >= 2:
        return searched[0], searched[1]
    only = searched[0]
    if not only.maximise:
        return None, only
    budgeted = [o for o in ctx.objectives if not o.searched and o.budget is not None]
    return only, (budgeted[0] if budgeted else None)


@dataclass(frozen=True)
class Reward:
    """One reward to ascend: head indices (None = term absent) and the cost budget."""

    quality: int | None
    cost: int | None
    budget: float | None = None


@dataclass
class Data:
    """The evaluated architectures as the controller sees them, one column per head."""

    archs: list[Arch]
    raw: np.ndarray  # quality higher-is-better, cost lower-is-better, as measured
    scaled: np.ndarray
    scalers: list[Scaler]
    quality: int | None
    cost: int | None


class NAOStrategy(Strategy):
    """NAO's encoder / heads / decoder with a gradient step on predicted reward."""

    name = "nao"

    def __init__(self, seed: int = 0, batch_size: int = 5, init: int = 20, epochs: int = 10,
                 init_epochs: int = 40, hidden: int = 32, lr: float = 3e-3, lam: float = 3.0,
                 mu: float = 3.0, top_k: int = 10, shrink: Sequence[float] = (1.0, 0.8),
                 form: str = "hinge", penalty: float = 5.0, eta: float = 0.05,
                 max_steps: int = 40, per_seed: int = 2, augment: int = 2,
                 unlabeled: int = 500, exact: float = 0.99, extra_epochs: int = 30,
                 walk: bool = True) -> None:
        super().__init__(seed, batch_size)
        if init < 1:
            raise BadOption(f"NAO needs a non-empty initial population (init >= 1), got {init}")
        if epochs < 1 or init_epochs < 1:
            raise BadOption(f"NAO needs at least one training epoch, got {epochs} and {init_epochs}")
        if min(top_k, max_steps, per_seed, hidden) < 1 or min(augment, unlabeled, extra_epochs) < 0:
            raise BadOption("NAO needs top_k, max_steps, per_seed and hidden >= 1, "
                            "augment, unlabeled and extra_epochs >= 0")
        if not 0 <= exact <= 1:
            raise BadOption(f"NAO's reconstruction target (exact) is a share in [0, 1], got {exact}")
        if not (eta > 0 and lr > 0 and penalty >= 0 and lam >= 0 and mu >= 0):
            raise BadOption("NAO needs positive eta and lr and non-negative penalty, lam and mu")
        shrink = tuple(float(f) for f in shrink)
        if not shrink or not all(0 < f <= 1 for f in shrink):
            raise BadOption(f"NAO's budget factors (shrink) must be in (0, 1], got {shrink}")
        if form not in LOSS_FORMS:
            raise BadOption(f"unknown latency loss form {form!r}; known: {', '.join(LOSS_FORMS)}")
        self.init, self.epochs, self.init_epochs = int(init), int(epochs), int(init_epochs)
        self.hidden, self.lr, self.lam, self.mu = int(hidden), float(lr), float(lam), float(mu)
        self.top_k, self.shrink, self.form = int(top_k), shrink, form
        self.penalty, self.eta, self.max_steps = float(penalty), float(eta), int(max_steps)
        self.per_seed, self.augment, self.unlabeled = int(per_seed), int(augment), int(unlabeled)
        self.exact, self.extra_epochs, self.walk = float(exact), int(extra_epochs), bool(walk)
        # the last search's controller and the architectures it was last trained on,
        # kept for inspection (benchmarks/nao_checks.py); not options
        self.model: NAOModel | None = None
        self.trained_on: list[Arch] = []

    def options(self) -> dict[str, Any]:
        return {**super().options(), "init": self.init, "epochs": self.epochs,
                "init_epochs": self.init_epochs, "hidden": self.hidden, "lr": self.lr,
                "lam": self.lam, "mu": self.mu, "top_k": self.top_k, "shrink": list(self.shrink),
                "form": self.form, "penalty": self.penalty, "eta": self.eta,
                "max_steps": self.max_steps, "per_seed": self.per_seed, "augment": self.augment,
                "unlabeled": self.unlabeled, "exact": self.exact, "extra_epochs": self.extra_epochs,
                "walk": self.walk}

    # ---- data -----------------------------------------------------------------------
    @staticmethod
    def _data(ctx: SearchContext, quality: Objective | None, cost: Objective | None) -> Data:
        archs = list(ctx.evaluated()[0])
        raw, scalers = [], []
        for objective, log in ((quality, False), (cost, True)):
            if objective is None:
                continue
            values = np.array([ctx.metrics_of(a)[objective.name] for a in archs], dtype=float)
            oriented = objective.to_min(values) * (-1.0 if objective is quality else 1.0)
            raw.append(oriented)
            scalers.append(Scaler.fit(oriented, log=log))
        scaled = np.column_stack([sc.transform(r) for sc, r in zip(scalers, raw)])
        qi = 0 if quality is not None else None
        ci = None if cost is None else len(raw) - 1
        return Data(archs, np.column_stack(raw), scaled, scalers, qi, ci)

    # ---- rewards and seeds ----------------------------------------------------------
    def _true_reward(self, reward: Reward, data: Data) -> np.ndarray:
        """A reward on measured values, to pick seeds (the formula of
        :func:`~hwnas.strategies.nao.optimise.make_score`, on measurements)."""
        out = data.scaled[:, reward.quality].copy() if reward.quality is not None \
            else np.zeros(len(data.archs))
        if reward.cost is not None:
            if reward.budget is None:
                out -= self.penalty * data.scaled[:, reward.cost]
            else:
                from latency.loss import latency_loss

                ms = torch.as_tensor(data.raw[:, reward.cost], dtype=torch.float64)
                out -= self.penalty * latency_loss(ms, reward.budget, self.form).numpy()
        return out

    def _seeds(self, data: Data, cost: Objective | None, multi: bool) -> list[tuple[int, Reward]]:
        """(seed index, reward) pairs, see the module docstring (step 4)."""
        qi, ci = data.quality, data.cost
        own = float(cost.budget) if cost is not None and cost.budget is not None \
            and not cost.maximise else None
        pairs: list[tuple[int, Reward]] = []
        if multi and qi is not None and ci is not None:
            front = np.flatnonzero(pareto.pareto_mask(np.column_stack([-data.raw[:, qi], data.raw[:, ci]])))
            pairs = [(int(i), Reward(qi, ci, f * float(data.raw[i, ci]))) for i in front for f in self.shrink]
            ranked = [Reward(qi, ci, own)] if own is not None else []
        else:
            ranked = [Reward(qi, ci, own)]
        for reward in ranked:
            best = np.argsort(-self._true_reward(reward, data), kind="stable")[:self.top_k]
            pairs += [(int(i), reward) for i in best]
        return pairs

    # ---- loop -----------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> None:
        check_space(ctx.space)
        ctx.evaluate(self.fresh_samples(ctx, self.init))
        quality, cost = roles(ctx)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ctx.rng.integers(2**31)))
            model = NAOModel.for_space(ctx.space, targets=(quality is not None) + (cost is not None),
                                       hidden_size=self.hidden)
        generator = torch.Generator().manual_seed(int(ctx.rng.integers(2**31)))
        pool = ctx.space.sample_many(self.unlabeled, ctx.rng) if self.unlabeled else []
        unlabeled = token_matrix(ctx.space, pool) if pool else None
        epochs, warn = self.init_epochs, True
        while not ctx.done:
            data = self._data(ctx, quality, cost)
            train, train_y = augmented(ctx.space, data.archs, data.scaled, self.augment, ctx.rng)
            weights = [self.lam] * (data.quality is not None) + [self.mu] * (data.cost is not None)
            tokens = token_matrix(ctx.space, train)
            model.fit(tokens, train_y, epochs, weights, lr=self.lr, generator=generator,
                      unlabeled=unlabeled)
            # more rounds until the evaluated archs decode back (see NAOModel.fit_until_exact)
            model.fit_until_exact(tokens, train_y, self.epochs, weights, self.exact, self.extra_epochs,
                                  check=token_matrix(ctx.space, data.archs), lr=self.lr,
                                  generator=generator, unlabeled=unlabeled)
            self.model, self.trained_on, epochs = model, data.archs, self.epochs
            batch = self._propose(ctx, model, data, cost, known=set(train), warn=warn)
            warn = False  # the user's budget is checked against the first trained range only
            if len(batch) < self.batch_size:
                batch += self.fresh_samples(ctx, self.batch_size - len(batch), exclude=batch)
            if not batch:
                return
            ctx.evaluate(batch)

    def _propose(self, ctx: SearchContext, model: NAOModel, data: Data, cost: Objective | None,
                 known: set[Arch], warn: bool) -> list[Arch]:
        own = cost.budget if cost is not None else None
        scores: dict[Reward, Any] = {}
        seeds, seed_scores, seed_over = [], [], []
        for i, reward in self._seeds(data, cost, multi=len(ctx.searched) >= 2):
            if reward not in scores:
                scaler = data.scalers[reward.cost] if reward.cost is not None else None
                scores[reward] = make_score(reward.quality, reward.cost, scaler, reward.budget,
                                            self.penalty, self.form,
                                            warn=warn and reward.budget is not None and reward.budget == own)
            seeds.append(data.archs[i])
            seed_scores.append(scores[reward])
            seed_over.append(make_overshoot(reward.cost, data.scalers[reward.cost], reward.budget)
                               if self.walk and reward.cost is not None and reward.budget is not None
                               else None)
        proposals = propose(model, ctx.space, seeds, seed_scores, known, self.eta, self.max_steps,
                            self.per_seed, seed_over)
        cands = list(dict.fromkeys(p.arch for p in proposals))
        if len(cands) <= self.batch_size:
            return cands
        pred = model.predict(token_matrix(ctx.space, cands)).numpy()
        sign = np.array([-1.0 if k == data.quality else 1.0 for k in range(len(data.scalers))])
        predicted = np.column_stack([sc.inverse_np(pred[:, k]) for k, sc in enumerate(data.scalers)])
        evaluated = data.raw
        feasible = ctx.feasible(data.archs)
        if feasible.any():
            evaluated = evaluated[feasible]
        picks = by_hypervolume_gain(evaluated * sign, predicted * sign, self.batch_size)
        return [cands[i] for i in picks]
