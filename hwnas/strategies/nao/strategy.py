"""Neural Architecture Optimization (Luo et al., NeurIPS 2018), hardware-aware and multi-objective.

Loop (NAO's, one search iteration per evaluated batch):

1. ``init`` random architectures are evaluated (NAO's random seed pool);
2. the encoder-predictor-decoder is trained on every evaluated architecture
   (plus the space's symmetric variants, NAO's augmentation, where it has a
   symmetry hook): reconstruction + ``lam`` x quality regression + ``mu`` x
   cost regression. The model is kept and trained further each iteration;
3. the *quality* head predicts the first searched objective (accuracy); the
   *cost* head the second (log latency on the target device, or log MACs...),
   or, in a single-objective search, the metric that carries a budget;
4. to cover the front, the reward ``quality - penalty * latency_loss(cost,
   T)`` is ascended for several budgets ``T``: ``budgets`` quantiles of the
   observed cost plus the cost objective's own budget. For each ``T`` the
   ``top_k`` evaluated architectures by that reward (true values) are the
   seeds; each seed's embedding moves along the reward's gradient with a
   growing step until it decodes to a new architecture (NAO);
5. of the new architectures, ``batch_size`` are evaluated as one batch:
   greedily the one whose predicted point adds the most hypervolume to the
   evaluated front (objectives normalised to the evaluated range), so the
   budgets' proposals share the batch by merit. Missing ones (every decoding
   already known) are filled with random architectures;
6. repeat until the context is done.

Anytime: nothing depends on the total budget, and every random choice
(initial sample, weight initialisation, mini-batch order, augmentation) is
drawn from the seed, so a resumed run retraces the original one exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hwnas import pareto
from hwnas.objectives import Objective
from hwnas.strategies.base import SearchContext, Strategy
from hwnas.strategies.nao.data import Scaler, augmented, check_space, token_matrix
from hwnas.strategies.nao.errors import BadOption
from hwnas.strategies.nao.model import NAOModel
from hwnas.strategies.nao.optimise import Proposal, make_score, propose
from spaces import Arch

LOSS_FORMS = ("hinge", "mnasnet", "fbnet")
SELECT = ("hv", "round-robin")


def _roles(ctx: SearchContext) -> tuple[Objective | None, Objective | None]:
    """(quality, cost) objectives: quality is maximised by the reward, cost penalised.

    Two or more searched objectives: the first two (the rest are kept in the
    history but not modelled). One maximised objective: the cost is the first
    budget-only metric, if any. One minimised objective: it is the cost."""
    searched = ctx.searched
    if len(searched) >= 2:
        return searched[0], searched[1]
    only = searched[0]
    if not only.maximise:
        return None, only
    budgeted = [o for o in ctx.objectives if not o.searched and o.budget is not None]
    return only, (budgeted[0] if budgeted else None)


class NAOStrategy(Strategy):
    """NAO's encoder / heads / decoder with a gradient step on predicted reward."""

    name = "nao"
    SEEDS_MODE = "quantile"
    GAMMAS = (1.0, 0.8)

    def __init__(self, seed: int = 0, batch_size: int = 10, init: int = 20, epochs: int = 30,
                 init_epochs: int = 120, hidden: int = 32, lr: float = 3e-3, lam: float = 1.0,
                 mu: float = 1.0, top_k: int = 5, budgets: int = 4, form: str = "hinge",
                 penalty: float = 5.0, eta: float = 0.05, max_steps: int = 40,
                 per_seed: int = 1, augment: int = 2, unlabeled: int = 500,
                 select: str = "hv") -> None:
        super().__init__(seed, batch_size)
        if init < 1:
            raise BadOption(f"NAO needs a non-empty initial population (init >= 1), got {init}")
        if epochs < 1 or init_epochs < 1:
            raise BadOption(f"NAO needs at least one training epoch, got {epochs} and {init_epochs}")
        if min(top_k, budgets, max_steps, per_seed) < 1 or augment < 0 or unlabeled < 0:
            raise BadOption("NAO needs top_k, budgets, max_steps and per_seed >= 1, augment and unlabeled >= 0")
        if not (eta > 0 and lr > 0 and penalty >= 0 and lam >= 0 and mu >= 0):
            raise BadOption("NAO needs positive eta and lr and non-negative penalty, lam, mu")
        if form not in LOSS_FORMS:
            raise BadOption(f"unknown latency loss form {form!r}; known: {', '.join(LOSS_FORMS)}")
        self.init, self.epochs, self.init_epochs = int(init), int(epochs), int(init_epochs)
        self.hidden, self.lr, self.lam, self.mu = int(hidden), float(lr), float(lam), float(mu)
        self.top_k, self.budgets, self.form = int(top_k), int(budgets), form
        self.penalty, self.eta, self.max_steps = float(penalty), float(eta), int(max_steps)
        self.per_seed, self.augment, self.unlabeled = int(per_seed), int(augment), int(unlabeled)
        if select not in SELECT:
            raise BadOption(f"unknown NAO selection {select!r}; known: {', '.join(SELECT)}")
        self.select = select
        # the last search's controller and the architectures it was last trained on,
        # kept for inspection (benchmarks/nao_checks.py); not part of the options
        self.model: NAOModel | None = None
        self.trained_on: list[Arch] = []

    def options(self) -> dict[str, Any]:
        return {**super().options(), "init": self.init, "epochs": self.epochs,
                "init_epochs": self.init_epochs, "hidden": self.hidden, "lr": self.lr,
                "lam": self.lam, "mu": self.mu, "top_k": self.top_k, "budgets": self.budgets,
                "form": self.form, "penalty": self.penalty, "eta": self.eta,
                "max_steps": self.max_steps, "per_seed": self.per_seed, "augment": self.augment,
                "unlabeled": self.unlabeled, "select": self.select}

    # ---- data -----------------------------------------------------------------------
    @staticmethod
    def _raw(ctx: SearchContext, archs: list[Arch], objective: Objective) -> np.ndarray:
        """The objective's measured values for ``archs``, in order."""
        return np.array([ctx.metrics_of(a)[objective.name] for a in archs], dtype=float)

    def _targets(self, ctx: SearchContext, archs: list[Arch], quality: Objective | None,
                 cost: Objective | None) -> tuple[np.ndarray, np.ndarray, list[Scaler], list[float]]:
        """Raw head targets (quality higher-is-better, cost lower-is-better), their
        scaled form, the scalers and the loss weights, one column per head."""
        raw, scalers, weights = [], [], []
        if quality is not None:
            raw.append(-quality.to_min(self._raw(ctx, archs, quality)))
            scalers.append(Scaler.fit(raw[-1], log=False))
            weights.append(self.lam)
        if cost is not None:
            raw.append(cost.to_min(self._raw(ctx, archs, cost)))
            scalers.append(Scaler.fit(raw[-1], log=True))
            weights.append(self.mu)
        scaled = np.column_stack([sc.transform(r) for sc, r in zip(scalers, raw)])
        return np.column_stack(raw), scaled, scalers, weights

    # ---- rewards and seeds ----------------------------------------------------------
    def _rewards(self, qi: int | None, ci: int | None, cost: Objective | None,
                 costs: np.ndarray | None, multi: bool) -> list[tuple[int | None, int | None, float | None]]:
        """(quality head, cost head, budget) of each reward to ascend.

        Multi-objective: the front's two ends (quality alone, cost alone) and,
        between them, quality under the latency loss for ``budgets`` budgets at
        evenly spaced quantiles of the observed cost, from its minimum (push
        below the fastest seen) to its 75th percentile. Any budget of the cost
        objective itself is added. Single objective: that one reward."""
        objective_budget = [float(cost.budget)] if cost is not None and cost.budget is not None \
            and not cost.maximise else []
        if not multi or qi is None or ci is None:
            return [(qi, ci, b) for b in (objective_budget or [None])]
        qs = np.linspace(0.0, 0.75, self.budgets) if self.budgets > 1 else np.array([0.5])
        budgets = [float(v) for v in np.quantile(costs, qs)] + objective_budget
        return [(qi, None, None)] + [(qi, ci, b) for b in budgets] + [(None, ci, None)]

    def _true_reward(self, reward: tuple[int | None, int | None, float | None], raw: np.ndarray,
                     y: np.ndarray) -> np.ndarray:
        """A reward on measured values, to pick the seeds the step will push (the same
        formula as :func:`~hwnas.strategies.nao.optimise.make_score` on predictions)."""
        qi, ci, budget = reward
        out = y[:, qi].astype(float) if qi is not None else np.zeros(len(y))
        if ci is not None:
            if budget is None:
                out = out - self.penalty * y[:, ci]
            else:
                from latency.loss import latency_loss

                loss = latency_loss(torch.as_tensor(raw[:, ci], dtype=torch.float64), budget, self.form)
                out = out - self.penalty * np.asarray(torch.as_tensor(loss), dtype=float)
        return out

    # ---- selection ------------------------------------------------------------------
    def _round_robin(self, proposals: list[Proposal], reward_of_seed: list[int]) -> list[Arch]:
        """``batch_size`` proposals, one per reward in turn (each reward's in seed-rank,
        then step order), so every part of the front gets its share of the batch."""
        queues: dict[int, list[Arch]] = {}
        for p in proposals:
            queues.setdefault(reward_of_seed[p.index], []).append(p.arch)
        out: list[Arch] = []
        while len(out) < self.batch_size and any(queues.values()):
            for q in queues.values():
                if q and len(out) < self.batch_size:
                    out.append(q.pop(0))
        return out

    @staticmethod
    def _select(evaluated: np.ndarray, predicted: np.ndarray, k: int) -> list[int]:
        """Greedy predicted-hypervolume gain over the evaluated front (minimisation,
        normalised to the evaluated range); the least dominated when nothing gains."""
        lo, hi = evaluated.min(axis=0), evaluated.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        base = (evaluated - lo) / span
        cand = (predicted - lo) / span
        ref = np.full(base.shape[1], 1.1)
        base = base[pareto.pareto_mask(base)]
        chosen: list[int] = []
        free = np.ones(len(cand), dtype=bool)
        for _ in range(min(k, len(cand))):
            current = pareto.hypervolume(base, ref)
            idx = np.flatnonzero(free)
            gains = np.array([pareto.hypervolume(np.vstack([base, cand[i]]), ref) - current for i in idx])
            if gains.max() > 1e-12:
                pick = int(idx[int(np.argmax(gains))])
            else:  # additive epsilon to the front: how far from being non-dominated
                eps = np.min(np.max(cand[idx, None, :] - base[None, :, :], axis=2), axis=1)
                pick = int(idx[int(np.argmin(eps))])
            chosen.append(pick)
            free[pick] = False
            base = np.vstack([base, cand[pick]])
        return chosen

    # ---- loop -----------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> None:
        check_space(ctx.space)
        ctx.evaluate(self.fresh_samples(ctx, self.init))
        quality, cost = _roles(ctx)
        heads = [o for o in (quality, cost) if o is not None]
        qi = 0 if quality is not None else None
        ci = (1 if quality is not None else 0) if cost is not None else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ctx.rng.integers(2**31)))
            model = NAOModel.for_space(ctx.space, targets=len(heads), hidden_size=self.hidden)
        generator = torch.Generator().manual_seed(int(ctx.rng.integers(2**31)))
        pool = ctx.space.sample_many(self.unlabeled, ctx.rng) if self.unlabeled else []
        unlabeled = token_matrix(ctx.space, pool) if pool else None
        first = True
        while not ctx.done:
            archs = list(ctx.evaluated()[0])
            raw, y, scalers, weights = self._targets(ctx, archs, quality, cost)
            train_archs, train_y = augmented(ctx.space, archs, y, self.augment, ctx.rng)
            model.fit(token_matrix(ctx.space, train_archs), train_y,
                      self.init_epochs if first else self.epochs, weights, lr=self.lr,
                      generator=generator, unlabeled=unlabeled)
            first = False
            self.model, self.trained_on = model, archs
            batch = self._propose(ctx, model, archs, raw, y, scalers, qi, ci, cost,
                                  known=set(train_archs), multi=len(ctx.searched) >= 2)
            if len(batch) < self.batch_size:
                batch += self.fresh_samples(ctx, self.batch_size - len(batch), exclude=batch)
            if not batch:
                return
            ctx.evaluate(batch)

    def _propose(self, ctx: SearchContext, model: NAOModel, archs: list[Arch], raw: np.ndarray,
                 y: np.ndarray, scalers: list[Scaler], qi: int | None, ci: int | None, cost: Objective | None,
                 known: set[Arch], multi: bool) -> list[Arch]:
        seeds: list[Arch] = []
        scores = []
        if self.SEEDS_MODE in ("front", "both") and multi and qi is not None and ci is not None:
            F = np.column_stack([-raw[:, qi], raw[:, ci]])
            front = np.flatnonzero(pareto.pareto_mask(F))
            for i in front:
                for gamma in self.GAMMAS:
                    seeds.append(archs[i])
                    scores.append(make_score(qi, ci, scalers[ci], float(gamma * raw[i, ci]), self.penalty, self.form))
        rewards = [] if seeds and self.SEEDS_MODE == "front" else self._rewards(qi, ci, cost, raw[:, ci] if ci is not None else None, multi)
        for reward in rewards:
            r_qi, r_ci, budget = reward
            score = make_score(r_qi, r_ci, scalers[r_ci] if r_ci is not None else None, budget,
                               self.penalty, self.form)
            for i in np.argsort(-self._true_reward(reward, raw, y), kind="stable")[:self.top_k]:
                seeds.append(archs[i])
                scores.append(score)
        proposals = propose(model, ctx.space, seeds, scores, known, self.eta, self.max_steps,
                            self.per_seed)
        cands = [p.arch for p in proposals]
        if len(cands) <= self.batch_size:
            return cands
        if self.select == "round-robin":
            return self._round_robin(proposals, [id(s) for s in scores])
        pred = model.predict(token_matrix(ctx.space, cands)).numpy()
        columns_eval, columns_pred = [], []
        for k, scaler in enumerate(scalers):
            sign = -1.0 if k == qi else 1.0  # minimisation form: quality negated
            columns_eval.append(sign * raw[:, k])
            columns_pred.append(sign * scaler.inverse_np(pred[:, k]))
        evaluated = np.column_stack(columns_eval)
        feasible = ctx.feasible(archs)
        if feasible.any():
            evaluated = evaluated[feasible]
        picks = self._select(evaluated, np.column_stack(columns_pred), self.batch_size)
        return [cands[i] for i in picks]

