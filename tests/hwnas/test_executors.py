"""The executor layer without Ray: registry, CLI options, the local executor as reference,
the ParallelEvaluator wrapper, and what happens when Ray is missing (issue 10)."""

from __future__ import annotations

import argparse
import functools
import sys

import numpy as np
import pytest

import devices
import spaces
from hwnas import executors
from hwnas.cli import fail
from hwnas.evaluators.latency_sources import DeviceLatency, TableLatency
from hwnas.evaluators.tabular import TabularEvaluator
from hwnas.executors import (INPUT, EvaluationFailed, EvaluatorRecipe, ExecutorError,
                             ExecutorUnavailable, ParallelEvaluator, ProfileJob, parallel)
from hwnas.executors.local import LocalExecutor
from hwnas.executors.ray_executor import endpoint
from hwnas.executors.ray_profiling import device_resource, local_device_resources, uses_gpu
from hwnas.objectives import parse_objectives
from hwnas.strategies.evolution import RegularizedEvolution
from latency.store import MeasurementStore
from spaces import Arch
from spaces.errors import HwnasError, UnknownName


def nb201_tabular(metrics: tuple[str, ...]) -> TabularEvaluator:
    space = spaces.get("nb201")
    latency = TableLatency(space, "gold_6226") if "latency_ms" in metrics else None
    return TabularEvaluator(space, metrics, latency=latency)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    executors.add_arguments(parser)
    return parser.parse_args(argv)


# ---- registry and options ----------------------------------------------------------------

def test_registry_and_default():
    assert executors.names() == ["local", "ray"]
    assert isinstance(executors.from_args(_parse([])), LocalExecutor)
    with pytest.raises(UnknownName, match="unknown executor 'dask'; known: local, ray"):
        executors.from_args(_parse(["--executor", "dask"]))


def test_ray_address_without_ray_executor_is_refused():
    with pytest.raises(HwnasError, match="--ray-address needs --executor ray"):
        executors.from_args(_parse(["--ray-address", "auto"]))


def test_missing_ray_is_one_sentence_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ExecutorUnavailable) as info:
        executors.from_args(_parse(["--executor", "ray"]))
    assert fail(str(info.value)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == ('hwnas: error: the ray executor needs Ray, which is not installed; '
                    'install the extra with pip install -e ".[ray]".')


@pytest.mark.parametrize("address,expected", [
    ("auto", None), ("ray://head:10001", ("head", 10001)), ("ray://head", ("head", 10001)),
    ("10.0.0.5:6379", ("10.0.0.5", 6379)), ("head", ("head", 6379)),
])
def test_addresses(address, expected):
    assert endpoint(address) == expected


def test_bad_address_is_one_sentence():
    with pytest.raises(ExecutorUnavailable, match="is not auto, HOST:PORT or ray://HOST:PORT"):
        endpoint("head:port")


@pytest.mark.parametrize("spec,resource,gpu", [
    ("cpu", "device:torch:cpu", False), ("ort:cpu", "device:ort:cpu", False),
    ("ort:cuda", "device:ort:cuda", True), ("cuda", "device:torch:cuda:0", True),
    ("tensorrt:1", "device:tensorrt:1", True),
])
def test_device_resources(spec, resource, gpu):
    assert device_resource(spec) == resource and uses_gpu(spec) is gpu


def test_a_local_instance_advertises_the_devices_that_run_here():
    here = local_device_resources()
    assert here["device:torch:cpu"] == 1
    assert set(here) == {f"device:{s.spec}" for s in devices.available() if s.available}


# ---- the local executor ------------------------------------------------------------------

def test_local_map_evaluate_equals_the_evaluator_and_isolates_a_bad_arch():
    space = spaces.get("nb201")
    archs = space.sample_many(6, 0)
    recipe = EvaluatorRecipe(nb201_tabular, ("accuracy", "latency_ms"))
    bad = Arch("nb201", (9, 0, 0, 0, 0, 0))
    with LocalExecutor() as ex:
        outcomes = ex.map_evaluate(recipe, [*archs[:3], bad, *archs[3:]])
        ex.release(recipe)
    expected = nb201_tabular(recipe.metrics).evaluate_many(archs)
    assert [o.value for o in outcomes if o.ok] == expected
    failed = outcomes[3]
    assert failed.kind == INPUT and "out of range" in failed.error
    assert [o.key for o in outcomes if o.ok] == [space.to_string(a) for a in archs]


def _history(evaluator, seed=2):
    objectives = parse_objectives(["accuracy", "latency_ms"], [])
    strategy = RegularizedEvolution(seed=seed, batch_size=6, population=8)
    result = strategy.run(evaluator.space, evaluator, objectives, 30)
    return result.history.drop(columns=["eval_s", "time_s"])


def test_parallel_evaluator_gives_the_local_history():
    plain = nb201_tabular(("accuracy", "latency_ms"))
    wrapped = ParallelEvaluator(nb201_tabular(("accuracy", "latency_ms")), nb201_tabular,
                                LocalExecutor())
    assert wrapped.describe() == plain.describe()
    assert wrapped.best_possible() == plain.best_possible()
    history = _history(plain)
    assert history.equals(_history(wrapped))
    last_batch = int((history["batch"] == history["batch"].max()).sum())
    assert len(wrapped.last_seconds) == last_batch and wrapped.queries == 30
    wrapped.close()


def test_parallel_is_a_no_op_for_the_local_executor():
    evaluator = nb201_tabular(("accuracy",))
    assert parallel(evaluator, nb201_tabular, LocalExecutor()) is evaluator


def _failing_build(metrics):
    class Failing(TabularEvaluator):
        def _accuracy_many(self, archs):
            raise HwnasError("no table row for this cell")
    return Failing(spaces.get("nb201"), metrics)


def test_failed_candidate_raises_one_sentence():
    wrapped = ParallelEvaluator(nb201_tabular(("accuracy",)), _failing_build, LocalExecutor())
    archs = spaces.get("nb201").sample_many(3, 0)
    with pytest.raises(EvaluationFailed, match=r"evaluating \|.*\| failed \(3 of 3 in this "
                                               r"batch failed\): no table row for this cell"):
        wrapped.evaluate_many(archs)


def test_live_latency_stays_on_the_driver():
    space = spaces.get("nb201", C=4, N=1)
    profiler = devices.get("torch:cpu", plan=devices.TimingPlan.quick())
    inner = TabularEvaluator(space, ["accuracy", "latency_ms"], latency=DeviceLatency(space, profiler))
    build = functools.partial(_small_tabular, 4)
    wrapped = ParallelEvaluator(inner, build, LocalExecutor())
    assert wrapped.local_metrics == ("latency_ms",) and wrapped.recipe.metrics == ("accuracy",)
    archs = space.sample_many(3, 0)
    rows = wrapped.evaluate_many(archs)
    assert [r["accuracy"] for r in rows] == list(inner._accuracy_many(archs))
    assert all(r["latency_ms"] > 0 for r in rows)


def _small_tabular(C: int, metrics: tuple[str, ...]) -> TabularEvaluator:
    assert "latency_ms" not in metrics  # live latency must never be rebuilt on a worker
    return TabularEvaluator(spaces.get("nb201", C=C, N=1), metrics)


# ---- local profiling ---------------------------------------------------------------------

def _job() -> ProfileJob:
    return ProfileJob(spaces.get("nb201", C=4, N=1), "torch:cpu", devices.TimingPlan.quick(),
                      group=3)


def test_local_profile_commits_each_group_and_resumes_after_a_kill(tmp_path):
    job = _job()
    archs = [job.space.to_string(a) for a in job.space.sample_many(7, 0)]
    with MeasurementStore(tmp_path / "lat.sqlite") as store:
        def die_after_first(event):
            if event.added:  # the driver is killed right after group 1 is committed
                raise KeyboardInterrupt
            assert event.done == 0 and event.total == 7  # the start event comes first

        with pytest.raises(KeyboardInterrupt):
            LocalExecutor().profile(job, archs, store, on_group=die_after_first)
        assert len(store) == 3  # group 1 survived the kill
        report = LocalExecutor().profile(job, [*archs, "not-an-arch", archs[0]], store)
        assert report.skipped == 3 and report.measured == 4 and len(store) == 7
        assert [o.key for o in report.failed] == ["not-an-arch"]
        assert report.failed[0].kind == INPUT
        with pytest.raises(ExecutorError, match=r"1 architecture\(s\) could not be measured "
                                                r"\(the others were stored\); first, not-an-arch: "
                                                r"invalid nb201 architecture"):
            report.raise_for_failures()
        assert sorted(store.frame()["arch"]) == sorted(archs)
        assert np.all(store.frame()["latency_ms"] > 0)


def test_local_profile_unavailable_device_is_one_sentence(tmp_path):
    if "tensorrt" in {s.spec for s in devices.available() if s.available}:
        pytest.skip("TensorRT runs here")
    job = ProfileJob(spaces.get("nb201", C=4, N=1), "tensorrt", group=3)
    with MeasurementStore(tmp_path / "lat.sqlite") as store:
        with pytest.raises(HwnasError, match="tensorrt"):
            LocalExecutor().profile(job, ["x"], store)
        assert len(store) == 0
