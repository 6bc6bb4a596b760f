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

Blocks: a sample is the mean of ``k`` back-to-back calls, timed as one block
(as torch.utils.benchmark's blocked autorange does). ``k`` is chosen per
network from its warm-up so that a block lasts at least ``block_ms`` (k = 1 for
networks slower than that). Why: a single call of a 20-50 us network mostly
measures call overhead and timer jitter (25% CV measured on fbnetv2:tiny), and
the 10th percentile of such samples keeps the lucky calls -- it sat 5-30% below
what a call costs, the more the smaller the network (DESIGN.md). The p10 of
1-ms blocks is both reproducible and what back-to-back calls cost. ``k`` is
recorded with the measurement (``block_calls``); ``turn_warmup`` and
``calls``/``min_calls`` count blocks.

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
import math
import time
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Protocol, Sequence

from devices.errors import InvalidSetting
from devices.measurement import check_statistic


CLOCKS = ("wall", "cpu")


class Runner(Protocol):
    """One prepared network: each call of ``time_once`` runs one inference and returns
    its latency in ms (wall clock on CPU, CUDA events on GPU). A runner may also offer
    ``time_block(k)``: the total ms of ``k`` back-to-back inferences read by one pair of
    clock readings (see :func:`time_block`)."""

    def time_once(self) -> float: ...

    def close(self) -> None: ...


def time_block(runner: Runner, k: int) -> float:
    """Total ms of ``k`` back-to-back calls: the runner's own block timer when it has one
    (one pair of clock readings / CUDA events around all calls), else the sum of
    ``k`` single timings."""
    if k == 1:
        return runner.time_once()
    block = getattr(runner, "time_block", None)
    if block is not None:
        return float(block(k))
    return float(sum(runner.time_once() for _ in range(k)))


def block_size(call_ms: float, block_ms: float, max_block: int) -> int:
    """Calls per block so that one block lasts at least ``block_ms`` (1 when blocking is
    off or a call is already that long), at most ``max_block``."""
    if block_ms <= 0 or not call_ms > 0 or call_ms >= block_ms:
        return 1
    return int(min(max_block, math.ceil(block_ms / call_ms)))


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
    block_ms: float = 1.0   # a timed sample lasts at least this long (k calls); 0: single calls
    max_block: int = 1000   # at most this many calls per block

    def __post_init__(self) -> None:
        check_statistic(self.statistic)
        if self.clock not in CLOCKS:
            raise InvalidSetting(f"unknown clock {self.clock!r}; use {' or '.join(CLOCKS)}")
        if self.clock == "cpu" and self.threads != 1:
            raise InvalidSetting("clock 'cpu' (the calling thread's CPU time) needs threads=1")
        for name in ("threads", "rounds", "calls", "min_calls", "max_block"):
            if getattr(self, name) < 1:
                raise InvalidSetting(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("turn_warmup", "warmup_iters"):
            if getattr(self, name) < 0:
                raise InvalidSetting(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("max_s", "warmup_s", "warmup_max_s", "block_ms"):
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
    block_calls: int = 1  # calls per timed sample; every sample is a per-call mean


def _warm_up(runner: Runner, plan: TimingPlan) -> tuple[int, float, int]:
    """(calls, seconds, block size): warm up by count and time, then choose ``k`` from the
    median of the last warm-up calls (the first ones still fill caches)."""
    start = time.perf_counter()
    calls = 0
    seen: list[float] = []
    while True:
        elapsed = time.perf_counter() - start
        if calls >= max(plan.warmup_iters, 1) and elapsed >= plan.warmup_s:
            break
        if calls >= 1 and elapsed >= plan.warmup_max_s:
            break
        seen.append(runner.time_once())
        calls += 1
    typical = float(sorted(seen[-20:])[len(seen[-20:]) // 2])
    return calls, time.perf_counter() - start, block_size(typical, plan.block_ms, plan.max_block)


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
            record.warmup_iters, record.warmup_s, record.block_calls = _warm_up(runner, plan)
        done = 0
        for rnd in range(plan.rounds):
            for j in range(n):
                i = (j + rnd) % n
                runner, record = runners[i], raw[i]
                k = record.block_calls
                started = time.perf_counter()
                for _ in range(plan.turn_warmup):
                    time_block(runner, k)
                record.warmup_iters += plan.turn_warmup * k
                samples = record.rounds_ms[rnd]
                cpu_samples = record.cpu_rounds_ms[rnd] if cpu_clock else None
                spent = 0.0
                while len(samples) < plan.calls and (len(samples) < plan.min_calls
                                                      or spent < turn_budget_ms):
                    cpu_start = thread_time()
                    block = time_block(runner, k)
                    if cpu_samples is not None:
                        cpu_samples.append((thread_time() - cpu_start) * 1e3 / k)
                    samples.append(block / k)
                    spent += block
                record.timing_s += time.perf_counter() - started
                done += 1
                if on_turn is not None:
                    on_turn(done, n * plan.rounds)
    finally:
        if gc_was_enabled:
            gc.enable()
    return raw
