"""The timing protocol shared by every backend: warm-up, interleaved rounds, pooled samples.

Why interleaved: on a shared machine the speed drifts over seconds, so timing
network A for two seconds and then network B for two seconds mixes "A vs B"
with "then vs now". Here every network of a batch is called a few dozen times
in turn, round after round, and each network's samples are pooled over the
rounds; a slow phase of the machine then hits every network alike and the low
percentile of the pooled samples is reproducible (DESIGN.md, "Devices").

Protocol, per batch of networks (each already built/exported/compiled once):

1. warm-up, per network: call it until at least ``warmup_iters`` calls *and*
   ``warmup_s`` seconds have passed (stopping early only at ``warmup_max_s``);
2. ``rounds`` rounds; in each, every network gets one turn (the starting
   network rotates between rounds so no network always follows the same one):
   ``turn_warmup`` untimed calls (caches were filled by the previous network),
   then ``calls`` timed calls, cut short once the turn has used its share of
   ``max_s`` (the per-network time cap) but never below ``min_calls``;
3. the garbage collector is off while timing, so a collection never lands in
   one network's sample.

Clocks: every timed call is read by the runner's clock (wall clock on CPU,
CUDA events on GPU) and, on CPU backends, also by the calling thread's CPU
time. ``clock="cpu"`` reports the latter: with one intra-op thread the whole
inference runs on the calling thread, and its CPU time does not grow when
other processes preempt us, which on an oversubscribed machine is most of the
noise (a 12 ms torch network read 25-35 ms p10 wall vs 12-15 ms CPU time under
a load of 6 on 2 cores). It needs ``threads=1``; the default stays ``wall``
because latency is wall-clock time.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Protocol, Sequence

from devices.errors import InvalidSetting
from devices.measurement import check_statistic


CLOCKS = ("wall", "cpu")


class Runner(Protocol):
    """One prepared network: each call of ``time_once`` runs one inference and returns
    its latency in ms (wall clock on CPU, CUDA events on GPU)."""

    def time_once(self) -> float: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class TimingPlan:
    """Settings of the protocol in this module's docstring; defaults suit 1-100 ms CPU nets."""

    threads: int = 1
    rounds: int = 5
    calls: int = 40
    turn_warmup: int = 2
    min_calls: int = 3
    max_s: float = 30.0
    warmup_iters: int = 10
    warmup_s: float = 0.2
    warmup_max_s: float = 5.0
    statistic: str = "p10"
    clock: str = "wall"
    reference: bool = True  # time devices.reference's network in every group (drift)

    def __post_init__(self) -> None:
        check_statistic(self.statistic)
        if self.clock not in CLOCKS:
            raise InvalidSetting(f"unknown clock {self.clock!r}; use {' or '.join(CLOCKS)}")
        if self.clock == "cpu" and self.threads != 1:
            raise InvalidSetting("clock 'cpu' (the calling thread's CPU time) needs threads=1")
        for name in ("threads", "rounds", "calls", "min_calls"):
            if getattr(self, name) < 1:
                raise InvalidSetting(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("turn_warmup", "warmup_iters"):
            if getattr(self, name) < 0:
                raise InvalidSetting(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("max_s", "warmup_s", "warmup_max_s"):
            if getattr(self, name) < 0:
                raise InvalidSetting(f"{name} must not be negative, got {getattr(self, name)}")

    @classmethod
    def quick(cls, **overrides: object) -> "TimingPlan":
        """A few calls only: for tests and smoke runs, not for numbers you keep."""
        base = dict(rounds=2, calls=5, turn_warmup=1, min_calls=2, warmup_iters=2, warmup_s=0.0,
                    warmup_max_s=1.0, max_s=5.0)
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]

    def updated(self, **overrides: object) -> "TimingPlan":
        """Copy with the given fields changed (None values are ignored)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidSetting(f"unknown timing setting(s) {', '.join(unknown)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class RawTiming:
    """What the loop recorded for one network, before statistics."""

    rounds_ms: list[list[float]]
    warmup_iters: int
    warmup_s: float
    timing_s: float
    cpu_rounds_ms: list[list[float]] = field(default_factory=list)


def _warm_up(runner: Runner, plan: TimingPlan) -> tuple[int, float]:
    start = time.perf_counter()
    calls = 0
    while True:
        elapsed = time.perf_counter() - start
        if calls >= plan.warmup_iters and elapsed >= plan.warmup_s:
            break
        if calls >= 1 and elapsed >= plan.warmup_max_s:
            break
        runner.time_once()
        calls += 1
    return calls, time.perf_counter() - start


def run_interleaved(runners: Sequence[Runner], plan: TimingPlan,
                    on_turn: Callable[[int, int], None] | None = None,
                    cpu_clock: bool = True) -> list[RawTiming]:
    """Time ``runners`` with the interleaved protocol; ``on_turn(done, total)`` reports progress.
    ``cpu_clock`` also reads the thread's CPU time around each call (CPU backends)."""
    n = len(runners)
    raw = [RawTiming([[] for _ in range(plan.rounds)], 0, 0.0, 0.0,
                     [[] for _ in range(plan.rounds)] if cpu_clock else []) for _ in runners]
    thread_time = time.thread_time
    turn_budget_ms = plan.max_s * 1e3 / plan.rounds
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for runner, record in zip(runners, raw):
            record.warmup_iters, record.warmup_s = _warm_up(runner, plan)
        done = 0
        for rnd in range(plan.rounds):
            for k in range(n):
                i = (k + rnd) % n
                runner, record = runners[i], raw[i]
                started = time.perf_counter()
                for _ in range(plan.turn_warmup):
                    runner.time_once()
                record.warmup_iters += plan.turn_warmup
                samples = record.rounds_ms[rnd]
                cpu_samples = record.cpu_rounds_ms[rnd] if cpu_clock else None
                spent = 0.0
                while len(samples) < plan.calls and (len(samples) < plan.min_calls
                                                      or spent < turn_budget_ms):
                    cpu_start = thread_time()
                    ms = runner.time_once()
                    if cpu_samples is not None:
                        cpu_samples.append((thread_time() - cpu_start) * 1e3)
                    samples.append(ms)
                    spent += ms
                record.timing_s += time.perf_counter() - started
                done += 1
                if on_turn is not None:
                    on_turn(done, n * plan.rounds)
    finally:
        if gc_was_enabled:
            gc.enable()
    return raw
