"""``hwnas profile --active``: measure where the MLP ensemble is unsure, until its held-out
share within +-10% reaches the target or ``-n`` measurements are spent.

The loop is :func:`latency.active.active_profile`, the same driver the pipeline's
stage 3 runs; this module only draws the held-out / initial / pool sets, measures
through the verb's executor (local or Ray) and reads back through the store's one
reader (:meth:`latency.store.MeasurementStore.latencies`).
"""

from __future__ import annotations

import argparse
from typing import Any, Callable


def check(args: argparse.Namespace) -> None:
    from latency.active import RULES
    from latency.predictors import predictor_class
    from spaces.errors import HwnasError, UnknownName

    if args.num is None:
        raise HwnasError("--active needs -n N, the number of architectures to measure after the "
                         "initial and held-out ones")
    for name, least in (("pool", 1), ("initial", predictor_class("mlp").min_train), ("holdout", 2),
                        ("per_round", 1)):
        if getattr(args, name) < least:
            raise HwnasError(f"--{name.replace('_', '-')} must be at least {least}, "
                             f"got {getattr(args, name)}")
    if not 0 < args.target <= 1:
        raise HwnasError(f"--target is a share between 0 and 1, got {args.target}")
    if args.near_ms is not None and args.near_ms <= 0:
        raise HwnasError(f"--near-ms must be a positive latency, got {args.near_ms}")
    if args.choose not in RULES:
        raise UnknownName("active-profiling rule", args.choose, RULES)


def run(args: argparse.Namespace, space: Any, job: Any, executor: Any, store: Any,
        measure_missing: Callable[..., Any]) -> int:
    """Measure a random held-out and initial set, then rounds chosen by the ensemble's
    relative spread, each committed to the store like any profiling group. Stored rows are
    reused: the choices are deterministic (seeded sampling and training), so re-running
    after a kill replays them from the store and measures only what is missing."""
    import numpy as np
    import torch

    from latency import predictors
    from latency.active import active_profile
    from latency.store import shape_key
    from spaces.errors import HwnasError

    # The small ensemble fits fastest on one thread (here, with the other core busy, a
    # 400-step fit took 2.1 s on one and 6.5 s on two); profilers set their own while timing.
    torch.set_num_threads(1)
    if args.archs:
        from hwnas.cli.profile_cmd import read_archs

        listed = read_archs(space, args.archs)
        archs = [listed[i] for i in np.random.default_rng(args.seed).permutation(len(listed))]
    else:
        archs = space.sample_many(args.holdout + args.initial + args.pool, args.seed)
    hold, init = archs[:args.holdout], archs[args.holdout:args.holdout + args.initial]
    pool = archs[args.holdout + args.initial:]
    if not pool:
        raise HwnasError(f"no architectures left for the pool after {args.holdout} held-out and "
                         f"{args.initial} initial ones")
    reports: list[Any] = []
    device: dict[str, Any] = {}

    def measure(chosen: list[Any]) -> np.ndarray:
        report = measure_missing(args, executor, job, store, chosen)
        reports.append(report)
        device.update(next(iter(report.fingerprints.values())))
        # the store's one reader, as the pipeline reads it (raw by default)
        stored = store.latencies(space, chosen, device["id"], batch=args.batch,
                                 input_shape=job.input_shape)
        return np.array([stored.get(a, np.nan) for a in chosen], dtype=np.float64)

    def usable(chosen: list[Any], ms: np.ndarray) -> tuple[list[Any], np.ndarray]:
        ok = np.isfinite(ms) & (ms > 0)
        return [a for a, good in zip(chosen, ok) if good], ms[ok]

    measured = measure(hold + init)
    hold_archs, hold_ms = usable(hold, measured[:len(hold)])
    init_archs, init_ms = usable(init, measured[len(hold):])
    if len(hold_archs) < 2 or len(init_archs) < predictors.predictor_class("mlp").min_train:
        raise HwnasError("too few of the held-out / initial architectures could be measured "
                         "to start active profiling")
    print(f"active profiling ({args.choose}) on {device.get('label')}: {len(init_archs)} initial, "
          f"{len(hold_archs)} held out, budget {args.num} more from a pool of {len(pool)}, "
          f"{args.per_round} per round, target ±10% share {args.target:.0%}")
    print(f"{'measured':>8} {'spearman':>9} {'±10%':>6} {'MAPE %':>7} {'seconds':>8}", flush=True)

    def show(r: Any) -> None:
        print(f"{r.measured:>8} {r.spearman:>9.3f} {r.within10:>6.1%} {r.mape:>7.2f} {r.seconds:>8.1f}",
              flush=True)

    outcome = active_profile(
        space, lambda: predictors.create("mlp", space, seed=args.seed), measure, init_archs, init_ms,
        pool, (hold_archs, hold_ms), batch=args.per_round, n_measurements=args.num,
        target_within10=args.target, near_ms=args.near_ms, rule=args.choose, seed=args.seed,
        on_round=show)
    now = sum(r.measured for r in reports)
    before = sum(r.skipped for r in reports)
    last = outcome.rounds[-1]
    verdict = "reached" if outcome.reached_target else "did not reach"
    print(f"{verdict} the ±10% target ({last.within10:.1%} vs {args.target:.0%}) with "
          f"{len(outcome.archs)} training + {len(hold_archs)} held-out measurements; {now} measured "
          f"now, {before} already stored, in {store.path}")
    if args.save:
        outcome.predictor.set_device(device["id"], device.get("label"), store.fingerprint(device["id"]),
                                     batch=args.batch, input_shape=shape_key(job.input_shape))
        print(f"saved the mlp predictor (trained on {len(outcome.archs)}) to "
              f"{outcome.predictor.save(args.save)}")
    if args.export:
        print(f"exported {store.export(args.export)}")
    for report in reports:
        report.raise_for_failures()
    return 0
