"""Stages 1-3: profile a random set, fit the MLP ensemble, profile where it is unsure.

The sets are drawn from the seed, so a resumed run asks for the same
architectures and the store answers for those already measured. The held-out
set is measured once and never trained on: it is what the printed Spearman and
+-10% share, and the active stage's stopping rule, are computed on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from latency import metrics
from spaces import Arch, Space


@dataclass
class Sets:
    """The architectures of stages 1-3, disjoint."""

    train: list[Arch]
    holdout: list[Arch]
    pool: list[Arch]


def draw_sets(space: Space, initial: int, holdout: int, pool: int, seed: int,
              shots: list[Arch] | None = None) -> Sets:
    """Disjoint train / held-out / candidate-pool sets (distinct architectures): all random,
    or the training set drawn from ``shots`` (architectures reference devices measured)."""
    if shots:
        order = np.random.default_rng(seed).permutation(len(shots))[:initial]
        train = [shots[i] for i in sorted(order)]
        train += [a for a in space.sample_many(initial, rng=seed) if a not in train][:initial - len(train)]
    else:
        train = space.sample_many(initial, rng=seed)
    seen = {space.to_string(a) for a in train}

    def fresh(n: int, rng: int) -> list[Arch]:
        picked = [a for a in space.sample_many(n + len(seen), rng=rng)
                  if space.to_string(a) not in seen][:n]
        seen.update(space.to_string(a) for a in picked)
        return picked

    held = fresh(holdout, seed + 1)
    return Sets(train, held, fresh(pool, seed + 2))


def make_predictor_factory(space: Space, meter: Any, seed: int) -> Callable[[], Any]:
    """New MLP ensembles, labelled with the device whose measurements they learn."""
    from latency import predictors

    def make() -> Any:
        model = predictors.create("mlp", space, seed=seed)
        return model.set_device(meter.device_id, meter.label, meter.fingerprint, meter.job.batch,
                                "x".join(map(str, meter.job.input_shape)))
    return make


def factory_like(predictor: Any, space: Space, meter: Any, seed: int) -> Callable[[], Any]:
    """New, unfitted predictors of ``predictor``'s kind and settings (a transfer predictor
    keeps its fitted reference devices), labelled with the device -- so active profiling
    and the budget loop refit what stage 2 chose; the MLP ensemble when that kind cannot
    be rebuilt from its settings."""
    from latency import predictors

    def make() -> Any:
        try:
            model = predictors.create(predictor.kind, space, **predictor.config)
            if predictor.kind == "transfer":
                model.set_references(predictor.references)
        except Exception:  # noqa: BLE001 - an exotic kind: fall back to the ensemble
            return make_predictor_factory(space, meter, seed)()
        return model.set_device(meter.device_id, meter.label, meter.fingerprint, meter.job.batch,
                                "x".join(map(str, meter.job.input_shape)))
    return make


def heldout_metrics(predictor: Any, archs: list[Arch], ms: np.ndarray) -> dict[str, float]:
    """Spearman, +-5/10% shares and MAPE of the predictor on measured held-out archs."""
    pred = np.asarray(predictor.predict(archs), dtype=float).reshape(-1)
    out = metrics.summary(pred, ms)
    return {k: float(out[k]) for k in ("n", "spearman", "within10", "within5", "mape")}


def metrics_line(values: dict[str, float]) -> str:
    return (f"held-out n={int(values['n'])}: Spearman {values['spearman']:.3f}, "
            f"within +-10% {100 * values['within10']:.0f}%, within +-5% {100 * values['within5']:.0f}%, "
            f"MAPE {values['mape']:.1f}%")
