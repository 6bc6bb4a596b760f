"""The ray executor on a small local Ray instance: profiling streams into the store, a
search equals the local one, dead workers are retried, bad jobs are not (issue 10).

Skipped when Ray is not installed (the ``ray`` extra); one Ray instance serves the module.
"""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import devices  # noqa: E402
import spaces  # noqa: E402
from hwnas import executors  # noqa: E402
from hwnas.evaluators.latency_sources import TableLatency  # noqa: E402
from hwnas.evaluators.tabular import TabularEvaluator  # noqa: E402
from hwnas.executors import (CRASH, INPUT, EvaluationFailed, EvaluatorRecipe,  # noqa: E402
                             ExecutorError, ExecutorUnavailable, ParallelEvaluator, ProfileJob)
from hwnas.executors.ray_executor import RayExecutor  # noqa: E402
from hwnas.objectives import parse_objectives  # noqa: E402
from hwnas.strategies.evolution import RegularizedEvolution  # noqa: E402
from hwnas.strategies.random_search import RandomSearch  # noqa: E402
from latency.store import MeasurementStore  # noqa: E402
from spaces import Arch  # noqa: E402
from spaces.errors import HwnasError  # noqa: E402

pytestmark = pytest.mark.slow
# A small NB201 network and the quick timing plan: the protocol, not the numbers.
SMALL_NB201 = {"C": 4, "N": 1}


@pytest.fixture(scope="module")
def executor():
    ex = RayExecutor(num_cpus=2, object_store_mb=100, resources={"device:torch:cpu": 1})
    assert ex.parallelism == 2 and ray.is_initialized()
    yield ex
    ex.close()
    assert not ray.is_initialized()


# ---- evaluator builders: module level, so workers rebuild them from a pickled reference ----

def nb201_tabular(metrics: tuple[str, ...]) -> TabularEvaluator:
    space = spaces.get("nb201")
    latency = TableLatency(space, "gold_6226") if "latency_ms" in metrics else None
    return TabularEvaluator(space, metrics, latency=latency)


def fbnetv2_train(metrics: tuple[str, ...]):
    from hwnas.evaluators import datasets
    from hwnas.evaluators.train import TrainEvaluator

    space = spaces.get("fbnetv2", preset="tiny")
    data = datasets.load("digits", space.default_input_size, space.in_channels, max_samples=400)
    return TrainEvaluator(space, metrics, data, epochs=2, batch_size=16)


def crash_once(marker: str, metrics: tuple[str, ...]) -> TabularEvaluator:
    """Kills its worker process the first time (a segfault, an OOM kill), works after."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return nb201_tabular(metrics)


class _Picky(TabularEvaluator):
    """Fails one architecture for a real reason (or with a bug) and logs every call."""

    def __init__(self, space, metrics, log: str, bad: Arch, bug: bool) -> None:
        super().__init__(space, metrics)
        self.log, self.bad, self.bug = log, bad, bug

    def _accuracy_many(self, archs):
        with open(self.log, "a") as fh:
            fh.write(f"{len(archs)}\n")
        if self.bad in archs:
            if self.bug:
                raise ZeroDivisionError("a bug, not bad input")
            raise HwnasError("this architecture cannot be trained here")
        return super()._accuracy_many(archs)


def picky(log: str, bad: Arch, bug: bool, metrics: tuple[str, ...]) -> _Picky:
    return _Picky(spaces.get("nb201"), metrics, log, bad, bug)


def _history(space, build, executor, strategy, metrics, budget):
    inner = build(tuple(metrics))
    evaluator = ParallelEvaluator(inner, build, executor) if executor else inner
    objectives = parse_objectives(metrics, [])
    try:
        result = strategy.run(space, evaluator, objectives, budget)
    finally:
        evaluator.close()
    return result.history.drop(columns=["eval_s", "time_s"])


# ---- profiling ---------------------------------------------------------------------------

def _job(group: int = 5) -> ProfileJob:
    return ProfileJob(spaces.get("nb201", **SMALL_NB201), "torch:cpu", devices.TimingPlan.quick(),
                      group=group)


def test_profiles_20_archs_into_the_store_and_resumes(executor, tmp_path):
    job = _job()
    archs = [job.space.to_string(a) for a in job.space.sample_many(20, 0)]
    with MeasurementStore(tmp_path / "lat.sqlite") as store:
        events = []
        report = executor.profile(job, archs, store, on_group=events.append)
        frame = store.frame(space=job.space.key)
        assert report.measured == 20 and not report.failed and report.skipped == 0
        assert [e.added for e in events] == [0, 5, 5, 5, 5]  # a start event, then each group
        assert [e.done for e in events] == [0, 5, 10, 15, 20] and events[-1].total == 20
        assert sorted(frame["arch"]) == sorted(archs) and frame["arch"].is_unique
        assert (frame["latency_ms"] > 0).all() and len(store) == 20
        (fid,) = report.fingerprints
        assert set(frame["device_id"]) == {fid}
        again = executor.profile(job, archs, store)
        assert again.measured == 0 and again.skipped == 20 and len(store) == 20


def test_killed_device_worker_is_restarted_and_nothing_is_lost(executor, tmp_path):
    job = _job(group=4)
    archs = [job.space.to_string(a) for a in job.space.sample_many(12, 1)]
    killed = []

    def kill_after_first(event) -> None:
        if event.added and not killed:  # group 1 is committed; 2 and 3 are in flight there
            os.kill(event.pid, signal.SIGKILL)
            killed.append(event.pid)

    with MeasurementStore(tmp_path / "lat.sqlite") as store:
        report = executor.profile(job, archs, store, on_group=kill_after_first)
        frame = store.frame(space=job.space.key)
    assert killed and not report.failed and report.measured == 12
    assert sorted(frame["arch"]) == sorted(archs) and frame["arch"].is_unique
    pids = {pid for _, pid in report.workers}
    assert killed[0] in pids and len(pids) == 2  # the restarted actor measured the rest


def test_device_without_a_node_is_one_sentence(executor, tmp_path):
    job = ProfileJob(spaces.get("nb201", **SMALL_NB201), "ort:cpu", group=5)
    with MeasurementStore(tmp_path / "lat.sqlite") as store, \
            pytest.raises(ExecutorError, match="no node of the Ray cluster offers resource "
                                               "'device:ort:cpu'"):
        executor.profile(job, ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"], store)


# ---- candidate evaluation ----------------------------------------------------------------

@pytest.mark.parametrize("strategy", [RegularizedEvolution(seed=3, batch_size=8, population=12),
                                      RandomSearch(seed=3, batch_size=10)],
                         ids=["evolution", "random"])
def test_tabular_search_history_equals_local(executor, strategy):
    space = spaces.get("nb201")
    metrics = ["accuracy", "latency_ms"]
    local = _history(space, nb201_tabular, None, strategy, metrics, 40)
    remote = _history(space, nb201_tabular, executor, strategy, metrics, 40)
    assert len(local) == 40 and local["arch"].is_unique
    assert local.equals(remote), (local.compare(remote) if local.shape == remote.shape else remote)


def test_train_search_history_equals_local(executor):
    space = spaces.get("fbnetv2", preset="tiny")
    metrics = ["accuracy", "params"]
    local = _history(space, fbnetv2_train, None, RandomSearch(seed=0, batch_size=2), metrics, 2)
    remote = _history(space, fbnetv2_train, executor, RandomSearch(seed=0, batch_size=2), metrics, 2)
    assert local.equals(remote), local.compare(remote)
    assert local["accuracy"].nunique() > 1  # really trained, not a constant


def test_worker_killed_mid_task_is_retried(executor, tmp_path):
    marker = tmp_path / "crashed-once"
    recipe = EvaluatorRecipe(functools.partial(crash_once, str(marker)), ("accuracy",))
    archs = spaces.get("nb201").sample_many(3, 5)
    outcomes = executor.map_evaluate(recipe, archs)
    assert marker.exists()  # the first attempt really died
    assert all(o.ok for o in outcomes)
    expected = nb201_tabular(("accuracy",)).evaluate_many(archs)
    assert [o.value for o in outcomes] == expected


@pytest.mark.parametrize("bug,kind", [(False, INPUT), (True, CRASH)])
def test_failing_job_is_recorded_not_retried(executor, tmp_path, bug, kind):
    space = spaces.get("nb201")
    bad = space.sample(7)
    log = tmp_path / "calls.log"
    recipe = EvaluatorRecipe(functools.partial(picky, str(log), bad, bug), ("accuracy",))
    (outcome,) = executor.map_evaluate(recipe, [bad])
    assert outcome.kind == kind and not outcome.ok
    assert ("cannot be trained here" if not bug else "ZeroDivisionError") in outcome.error
    assert log.read_text().split() == ["1"]  # ran once: no retry of a job that raised


def test_parallel_evaluator_reports_a_failed_candidate(executor, tmp_path):
    space = spaces.get("nb201")
    bad = space.sample(7)
    build = functools.partial(picky, str(tmp_path / "calls.log"), bad, False)
    evaluator = ParallelEvaluator(build(("accuracy",)), build, executor)
    good = space.sample_many(5, 8)
    with pytest.raises(EvaluationFailed, match=r"evaluating \|.*\| failed: this architecture "
                                               r"cannot be trained here"):
        evaluator.evaluate_many([*good, bad])
    assert len(evaluator.evaluate_many(good)) == 5


# ---- connecting --------------------------------------------------------------------------

def test_unreachable_address_is_one_sentence_and_quick(monkeypatch):
    """Quick by construction, not by a wall-clock bound (which a loaded machine breaks): one
    socket probe with the given timeout answers before Ray's own connect, which retries for
    minutes, is ever called."""
    import socket

    from hwnas.executors import ray_executor

    timeouts = []
    real = socket.create_connection

    def spy(target, timeout=None, *args, **kwargs):
        timeouts.append(timeout)
        return real(target, timeout, *args, **kwargs)

    def never(self, address):
        raise AssertionError("Ray's own connect was called")

    monkeypatch.setattr(ray_executor.socket, "create_connection", spy)
    monkeypatch.setattr(RayExecutor, "_connect", never)
    with pytest.raises(ExecutorUnavailable, match=r"cannot reach the Ray cluster at "
                                                  r"ray://127\.0\.0\.1:9 \("):
        executors.get("ray", address="ray://127.0.0.1:9", connect_timeout_s=2)
    assert timeouts == [2]

    def silent(target, timeout=None, *args, **kwargs):
        raise socket.timeout("timed out")

    monkeypatch.setattr(ray_executor.socket, "create_connection", silent)
    with pytest.raises(ExecutorUnavailable, match=r"no answer within 2 s"):
        executors.get("ray", address="ray://127.0.0.1:9", connect_timeout_s=2)
