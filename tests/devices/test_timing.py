"""The interleaved protocol, checked with fake runners that record the call order."""

import time
from types import SimpleNamespace

import pytest

from devices import InvalidSetting, TimingPlan
from devices.timing import run_interleaved


class FakeClock:
    """Stands in for time.perf_counter: advances only when a fake call "runs"."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeRunner:
    def __init__(self, name, log, ms=1.0, clock=None):
        self.name, self.log, self.ms, self.clock = name, log, ms, clock

    def time_once(self):
        self.log.append(self.name)
        if self.clock is not None:
            self.clock.now += self.ms / 1e3
        return self.ms

    def close(self):
        pass


def test_rounds_interleave_networks_and_rotate_the_starting_one():
    log = []
    runners = [FakeRunner(n, log) for n in "abc"]
    plan = TimingPlan(rounds=3, calls=4, turn_warmup=1, warmup_iters=2, warmup_s=0.0)
    raw = run_interleaved(runners, plan)
    assert log[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up, per network
    timed = log[6:]
    turns = [timed[i:i + 5] for i in range(0, len(timed), 5)]  # 1 untimed + 4 timed each
    assert [t[0] for t in turns] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(set(t)) == 1 for t in turns)
    for r in raw:
        assert [len(x) for x in r.rounds_ms] == [4, 4, 4]
        assert r.warmup_iters == 2 + 3  # warm-up calls plus one untimed call per turn


def test_warm_up_honours_both_count_and_time(monkeypatch):
    """On a fake clock (each call takes exactly 1/64 s), so the machine's load cannot
    change how many calls the warm-up makes."""
    import devices.timing

    clock = FakeClock()
    monkeypatch.setattr(devices.timing, "time", SimpleNamespace(perf_counter=clock,
                                                                thread_time=time.thread_time))
    log = []
    raw = run_interleaved([FakeRunner("a", log, ms=1000 / 64, clock=clock)],
                          TimingPlan(rounds=1, calls=1, turn_warmup=0, warmup_iters=2,
                                     warmup_s=0.125))
    assert raw[0].warmup_iters == 8  # time, not count, ended the warm-up: 8 x 1/64 s
    assert raw[0].warmup_s == 0.125
    log.clear()
    raw = run_interleaved([FakeRunner("a", log)],
                          TimingPlan(rounds=1, calls=1, turn_warmup=0, warmup_iters=7, warmup_s=0.0))
    assert raw[0].warmup_iters == 7


def test_time_cap_cuts_turns_short_but_keeps_min_calls():
    log = []
    slow = FakeRunner("slow", log, ms=100.0)
    fast = FakeRunner("fast", log, ms=0.1)
    plan = TimingPlan(rounds=2, calls=40, turn_warmup=0, warmup_iters=0, warmup_s=0.0,
                      max_s=0.5, min_calls=3)
    slow_raw, fast_raw = run_interleaved([slow, fast], plan)
    assert [len(r) for r in slow_raw.rounds_ms] == [3, 3]  # 250 ms budget per turn, min 3 calls
    assert [len(r) for r in fast_raw.rounds_ms] == [40, 40]


def test_progress_callback_sees_every_turn():
    seen = []
    run_interleaved([FakeRunner(n, []) for n in "ab"], TimingPlan.quick(rounds=3),
                    on_turn=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(1, 7)]


@pytest.mark.parametrize("field,value", [("rounds", 0), ("calls", 0), ("threads", 0),
                                         ("warmup_s", -1.0), ("statistic", "p101")])
def test_bad_settings_are_refused(field, value):
    with pytest.raises(InvalidSetting):
        TimingPlan(**{field: value})


def test_updated_ignores_none_and_refuses_unknown_fields():
    plan = TimingPlan().updated(rounds=7, calls=None)
    assert (plan.rounds, plan.calls) == (7, 40)
    with pytest.raises(InvalidSetting, match="unknown timing setting"):
        TimingPlan().updated(round=3)


class BlockRunner(FakeRunner):
    """A fake network whose calls cost ``ms`` and which times blocks itself."""

    def __init__(self, name, log, ms):
        super().__init__(name, log, ms=ms)
        self.blocks = []

    def time_block(self, k):
        self.blocks.append(k)
        self.log.extend([self.name] * k)
        return self.ms * k


@pytest.mark.parametrize("call_ms,block_ms,expected", [(0.03, 1.0, 34), (0.25, 1.0, 4),
                                                       (1.5, 1.0, 1), (0.03, 0.0, 1),
                                                       (0.0001, 1.0, 1000)])
def test_block_size_makes_a_sample_last_at_least_the_target(call_ms, block_ms, expected):
    from devices.timing import block_size

    k = block_size(call_ms, block_ms, max_block=1000)
    assert k == expected
    if block_ms and k < 1000:
        assert k * call_ms >= block_ms and (k - 1) * call_ms < block_ms or k == 1


def test_short_calls_are_timed_in_blocks_and_reported_per_call():
    log = []
    fast, slow = BlockRunner("fast", log, ms=0.02), BlockRunner("slow", log, ms=3.0)
    plan = TimingPlan(rounds=2, calls=5, turn_warmup=1, warmup_iters=4, warmup_s=0.0,
                      block_ms=1.0)
    fast_raw, slow_raw = run_interleaved([fast, slow], plan)
    assert fast_raw.block_calls == 50 and slow_raw.block_calls == 1
    assert set(fast.blocks) == {50} and not slow.blocks  # k = 1 times single calls
    for raw, ms in ((fast_raw, 0.02), (slow_raw, 3.0)):
        samples = [s for r in raw.rounds_ms for s in r]
        assert len(samples) == 10 and samples == pytest.approx([ms] * 10)  # per-call means
    assert fast_raw.warmup_iters == 4 + 2 * 50  # warm-up calls + one untimed block per turn


def test_a_runner_without_a_block_timer_is_summed_call_by_call():
    from devices.timing import time_block

    log = []
    runner = FakeRunner("a", log, ms=0.1)
    assert time_block(runner, 7) == pytest.approx(0.7) and log == ["a"] * 7
