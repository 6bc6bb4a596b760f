"""Which architectures to measure first on a new device, given devices already measured.

The transfer predictor models a new device's log latency as ``b + sum_r w_r log L_r(a)``
over the reference devices' predictors ``L_r``. With 10 measurements the weights are
estimated from 10 points in that R-dimensional feature space, so *where* the points lie
decides how well they are determined: 10 random architectures cluster around the
typical network and leave the fit to extrapolate to the fast and slow ends, which is
where rankings are decided. :func:`choose_shots` picks a D-optimal design instead:
greedily, the candidate whose reference features ``[1, z(a)]`` (standardised over the
pool) the current design explains least, i.e. the largest ``x^T (lambda I + X^T X)^-1 x``
-- which maximises ``det(lambda I + X^T X)``, the volume of information about ``(b, w)``.
It needs no measurement of the new device, only the references' predictions.

Measured on HELP's meta-test split, 5 seeds, test = every other architecture
(``benchmarks/predictor_accuracy.py``, ``benchmarks/transfer_shots.py``): with 10
measurements, designed shots from a pool of 2,000 lift the transfer predictor's mean
Spearman from 0.962 to 0.972 on NB201 (six devices) and from 0.957 to 0.968 on HELP's
three FBNet devices (0.929 -> 0.936 on all six); with 20 the gain is 0.003 / 0.001.
k-means centres in the same feature space did worse than random on FBNet, a maximin
spread half as well. HELP's own fixed 10 "hardware embedding" architectures do as well
as the design on its two spaces (0.973 / 0.969); the design needs no such list, so it
works for any space, any number of shots and any set of references, and continues from
what is already measured.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping, Sequence

import numpy as np

from latency.encoding import as_archs
from latency.predictors.base import Predictor, PredictorError
from spaces.arch import Arch
from spaces.base import Space

log = logging.getLogger(__name__)

POOL_SIZE = 2000
RIDGE = 0.1


def _reference_dict(references: "Mapping[str, Predictor] | Predictor") -> dict[str, Predictor]:
    refs = getattr(references, "references", references)
    if not isinstance(refs, Mapping) or not refs:
        raise PredictorError("choosing shots needs reference predictors (a dict of fitted predictors "
                             "or a TransferPredictor with references)")
    return dict(sorted(refs.items()))


def reference_features(references: "Mapping[str, Predictor] | Predictor",
                       archs: Sequence[Arch]) -> np.ndarray:
    """``(N, R)`` log latency predicted by each reference device (the transfer features)."""
    refs = _reference_dict(references)
    if not archs:
        return np.zeros((0, len(refs)))
    return np.log(np.stack([p.predict(archs) for p in refs.values()], 1))


def _unique(space: Space, archs: Iterable["Arch | str"]) -> list[Arch]:
    return list(dict.fromkeys(as_archs(space, archs)))


def choose_shots(space: Space, references: "Mapping[str, Predictor] | Predictor", k: int,
                 pool: "Sequence[Arch | str] | None" = None, *,
                 measured: "Sequence[Arch | str]" = (), seed: int = 0,
                 pool_size: int = POOL_SIZE, ridge: float = RIDGE) -> list[Arch]:
    """The ``k`` architectures of ``pool`` (default: ``pool_size`` sampled with ``seed``)
    to measure on a new device, D-optimal for the transfer predictor's mixture.

    ``references``: ``{name: fitted Predictor}`` of other devices of ``space``, or a
    :class:`~latency.predictors.transfer.TransferPredictor` holding them. ``measured``:
    architectures already measured on the new device; the design continues from them
    (they are never chosen again). Deterministic for a given pool. Returns fewer than
    ``k`` only when the pool has fewer new candidates (logged).
    """
    if int(k) < 1:
        raise PredictorError(f"the number of shots to choose must be at least 1, got {k}")
    refs = _reference_dict(references)
    for name, pred in refs.items():
        if pred.space.key != space.key:
            raise PredictorError(f"reference {name!r} is a predictor for space {pred.space.key}, "
                                 f"not {space.key}")
    candidates = _unique(space, space.sample_many(pool_size, seed) if pool is None else pool)
    done = _unique(space, measured)
    taken = set(done)
    candidates = [a for a in candidates if a not in taken]
    if not candidates:
        raise PredictorError("no candidate architectures to choose shots from: the pool is empty "
                             "or already measured")
    if len(candidates) < k:
        log.warning("only %d candidate architectures for %d shots; choosing all of them",
                    len(candidates), k)
    feats = reference_features(refs, candidates)
    mean, std = feats.mean(0), feats.std(0) + 1e-9
    design = np.concatenate([np.ones((len(candidates), 1)), (feats - mean) / std], 1)
    inverse = np.eye(design.shape[1]) / float(ridge)
    if done:  # the information already gathered: X^T X of what is measured
        prior = np.concatenate([np.ones((len(done), 1)),
                                (reference_features(refs, done) - mean) / std], 1)
        inverse = np.linalg.inv(float(ridge) * np.eye(design.shape[1]) + prior.T @ prior)
    chosen: list[int] = []
    free = np.ones(len(candidates), dtype=bool)
    for _ in range(min(int(k), len(candidates))):
        gain = np.einsum("ij,jk,ik->i", design, inverse, design)
        gain[~free] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        free[j] = False
        v = inverse @ design[j]  # Sherman-Morrison: add x_j x_j^T to the information
        inverse -= np.outer(v, v) / (1.0 + design[j] @ v)
    log.info("chose %d of %d candidate architectures to measure (D-optimal over %d reference "
             "devices, %d already measured)", len(chosen), len(candidates), len(refs), len(done))
    return [candidates[j] for j in chosen]
