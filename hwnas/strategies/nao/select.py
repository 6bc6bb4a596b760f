"""Which of NAO's proposals to evaluate: greedy predicted-hypervolume gain.

NAO evaluates every architecture its gradient step decodes; here a step
proposes more than a batch (several seeds, budgets and step sizes), and the
controller's own heads rank them: each pick adds the most hypervolume to the
evaluated front if the prediction is right, then counts as part of the front
for the next pick, so one batch spreads along the front instead of piling
onto one region.
"""

from __future__ import annotations

import numpy as np

from hwnas import pareto


def by_hypervolume_gain(evaluated: np.ndarray, predicted: np.ndarray, k: int,
                        margin: float = 0.1) -> list[int]:
    """Indices of ``k`` rows of ``predicted`` (n x m, minimisation), greedily.

    Objectives are normalised to the evaluated range, reference point
    ``1 + margin`` (the benchmark's convention). When no candidate is predicted
    to enlarge the front, the least dominated one (smallest additive epsilon
    to the front) is taken, so the batch is always filled.
    """
    lo, hi = evaluated.min(axis=0), evaluated.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    base = (evaluated - lo) / span
    base = base[pareto.pareto_mask(base)]
    cand = (predicted - lo) / span
    ref = np.full(base.shape[1], 1.0 + margin)
    chosen: list[int] = []
    free = np.ones(len(cand), dtype=bool)
    for _ in range(min(k, len(cand))):
        current = pareto.hypervolume(base, ref)
        idx = np.flatnonzero(free)
        gains = np.array([pareto.hypervolume(np.vstack([base, cand[i]]), ref) - current for i in idx])
        if gains.max() > 1e-12:
            pick = int(idx[int(np.argmax(gains))])
        else:
            eps = np.min(np.max(cand[idx, None, :] - base[None, :, :], axis=2), axis=1)
            pick = int(idx[int(np.argmin(eps))])
        chosen.append(pick)
        free[pick] = False
        base = np.vstack([base, cand[pick]])
    return chosen
