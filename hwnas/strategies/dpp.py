"""DPP-Net-style progressive, predictor-guided search for the Pareto front.

What DPP-Net (Dong et al., ECCV 2018) does: it grows cells progressively, as
PNAS does: the candidates at step b are the networks of step b-1 extended by
one more layer; a recurrent regressor, trained on every network trained so
far, predicts the accuracy of all candidates; the device-related objectives
(inference time, memory) of the candidates are measured or computed; the
candidates that are Pareto-optimal in (predicted accuracy, device
objectives) are selected and trained; the regressor is refit and the next
step begins. The result is the Pareto front of all trained networks.

What we implement, for spaces of a fixed number of decisions (NB201,
FBNet...) where "add a layer" does not apply:

* *progressive growth* becomes growing the current Pareto set by one-decision
  moves: each round's candidate pool is every unevaluated neighbour of the
  current (feasible) front, plus ``pool_random`` random architectures so
  regions far from the front are not starved;
* the *surrogate* is a random forest on the one-hot encoding (scikit-learn),
  one per objective and per budgeted metric, refit each round on every
  evaluation so far, instead of DPP-Net's RNN. Device objectives are
  predicted too, because here they come from the same black-box evaluator
  (which may be live profiling) and each costs a query;
* *Pareto selection* of the ``batch_size`` architectures to evaluate is
  greedy hypervolume contribution of the optimistic prediction
  (mean - ``kappa`` x spread across trees) on top of the evaluated front, in
  objectives normalised to the evaluated range; a candidate predicted to break
  a budget is skipped; when no candidate is predicted to enlarge the front
  the one closest to it (additive epsilon) is taken.

The first ``initial`` architectures are random. Like every strategy here it
is anytime (choices never depend on the total budget).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwnas import pareto
from hwnas.strategies.base import SearchContext, Strategy
from spaces import Arch
from spaces.errors import HwnasError


class DPPSearch(Strategy):
    name = "dpp"

    def __init__(self, seed: int = 0, batch_size: int = 4, initial: int = 12,
                 pool_random: int = 256, trees: int = 32, kappa: float = 0.5) -> None:
        super().__init__(seed, batch_size)
        if initial < 2:
            raise HwnasError(f"the DPP initial sample must be at least 2, got {initial}")
        self.initial, self.pool_random, self.trees, self.kappa = initial, pool_random, trees, kappa

    def options(self) -> dict[str, Any]:
        return {**super().options(), "initial": self.initial, "pool_random": self.pool_random,
                "trees": self.trees, "kappa": self.kappa}

    # ---- surrogate ------------------------------------------------------------------
    def _fit_predict(self, ctx: SearchContext, archs: list[Arch], y: np.ndarray,
                     cands: list[Arch]) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.ensemble import RandomForestRegressor

        X = ctx.space.one_hot_many(archs)
        Xc = ctx.space.one_hot_many(cands)
        # Fit on ranks (quantiles), map predictions back through the empirical
        # quantile function: the forest then resolves the crowded top of the
        # accuracy range as finely as the sparse bottom.
        q = (np.argsort(np.argsort(y, axis=0), axis=0) + 0.5) / len(y)
        forest = RandomForestRegressor(n_estimators=self.trees, min_samples_leaf=1,
                                       max_features=0.5, random_state=self.seed + len(archs),
                                       n_jobs=1)
        forest.fit(X, q)
        Xc32 = np.ascontiguousarray(Xc, dtype=np.float32)
        # tree_.predict skips sklearn's per-call input validation (most of the cost here)
        per_tree = np.stack([t.tree_.predict(Xc32)[:, :, 0] for t in forest.estimators_])  # (trees, n, m)
        if per_tree.ndim == 2:
            per_tree = per_tree[:, :, None]
        back = np.empty_like(per_tree)
        for j in range(y.shape[1]):
            back[:, :, j] = np.quantile(y[:, j], np.clip(per_tree[:, :, j], 0, 1))
        return back.mean(axis=0), back.std(axis=0)

    # ---- candidate pool ---------------------------------------------------------------
    def _pool(self, ctx: SearchContext, front: list[Arch]) -> list[Arch]:
        pool: dict[Arch, None] = {}
        for arch in front:
            for n in ctx.space.neighbours(arch):
                if not ctx.is_known(n):
                    pool.setdefault(n, None)
        for a in self.fresh_samples(ctx, self.pool_random, exclude=list(pool), tries=4):
            pool.setdefault(a, None)
        return list(pool)

    # ---- selection ------------------------------------------------------------------
    @staticmethod
    def _select(front_z: np.ndarray, cand_z: np.ndarray, k: int) -> list[int]:
        ref = np.full(cand_z.shape[1], 1.1)
        chosen: list[int] = []
        base = front_z.copy()
        available = np.ones(len(cand_z), dtype=bool)
        for _ in range(min(k, len(cand_z))):
            current = pareto.hypervolume(base, ref) if len(base) else 0.0
            gains = np.full(len(cand_z), -np.inf)
            idx = np.flatnonzero(available)
            if len(base):  # a candidate weakly dominated by the current set adds nothing
                covered = np.any(np.all(base[None, :, :] <= cand_z[idx, None, :], axis=2), axis=1)
                gains[idx[covered]] = 0.0
                idx = idx[~covered]
            for i in idx:
                gains[i] = pareto.hypervolume(np.vstack([base, cand_z[i]]), ref) - current
            if gains.max() > 1e-12:
                pick = int(np.argmax(gains))
            else:  # nothing predicted to enlarge the front: the least dominated candidate
                eps = np.full(len(cand_z), np.inf)
                idx = np.flatnonzero(available)
                if len(base):
                    eps[idx] = np.min(np.max(cand_z[idx, None, :] - base[None, :, :], axis=2), axis=1)
                else:
                    eps[idx] = cand_z[idx].sum(axis=1)
                pick = int(np.argmin(eps))
            chosen.append(pick)
            available[pick] = False
            base = np.vstack([base, cand_z[pick]])
        return chosen

    # ---- loop -----------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> None:
        while ctx.used < self.initial and not ctx.done:
            batch = self.fresh_samples(ctx, min(self.batch_size, self.initial - ctx.used, ctx.remaining))
            if not batch:
                return
            ctx.evaluate(batch)
        budgeted = [o for o in ctx.objectives if o.budget is not None]
        while not ctx.done:
            archs, F = ctx.evaluated()
            feasible = ctx.feasible(archs)
            front_idx = np.flatnonzero(feasible)[pareto.pareto_mask(F[feasible])] \
                if feasible.any() else np.argsort(ctx.violation(archs))[:1]
            cands = self._pool(ctx, [archs[i] for i in front_idx])
            if not cands:
                return
            # targets: searched objectives (minimised), then budgeted metrics as costs
            cols = [F]
            for o in budgeted:
                v = np.array([ctx.metrics_of(a)[o.name] for a in archs], dtype=float)
                cols.append(o.to_min(v)[:, None])
            Y = np.hstack(cols)
            lo, hi = Y.min(axis=0), Y.max(axis=0)
            span = np.where(hi > lo, hi - lo, 1.0)
            mean, spread = self._fit_predict(ctx, archs, (Y - lo) / span, cands)
            m = F.shape[1]
            optimistic = mean[:, :m] - self.kappa * spread[:, :m]
            keep = np.ones(len(cands), dtype=bool)
            for j, o in enumerate(budgeted):  # predicted (mean) budget breakers are skipped
                limit = (o.to_min(o.budget) - lo[m + j]) / span[m + j]
                keep &= mean[:, m + j] <= limit
            if keep.any():
                cands = [c for c, k in zip(cands, keep) if k]
                optimistic = optimistic[keep]
            front_z = (F[front_idx] - lo[:m]) / span[:m] if feasible.any() else np.zeros((0, m))
            picks = self._select(front_z, optimistic, min(self.batch_size, ctx.remaining))
            ctx.evaluate([cands[i] for i in picks])
