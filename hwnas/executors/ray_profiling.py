"""Profiling on Ray: one actor per device, measurements streamed back and committed by the driver.

Why one actor per device, and a Ray custom resource per device
(``{"device:ort:cuda": 1}`` on the node that has it): two measurements on one
device at the same time share its cores, caches, memory bandwidth and clock
(turbo and power limits depend on how many units are busy), so each times
the other's load as well as its own network. The numbers then depend on what
happened to be co-scheduled, are inflated, and are not reproducible. A
resource of 1 per device lets Ray place at most one profiling actor on it,
and an actor runs one method at a time, so exactly one measurement runs per
device; the device node is where the actor lands, so a GPU box profiles the
GPU specs.

Fault handling: the actor is restarted after its process dies
(``max_restarts``) and the calls it had in flight are replayed
(``max_task_retries``); bad input comes back as data and is never retried;
a group whose actor is gone for good is reported as lost, and re-running the
command measures it (everything committed is skipped).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Callable, Sequence

from hwnas.executors.base import LOST, ExecutorError
from hwnas.executors.jobs import DeviceWorker, ProfileJob, crash_outcomes
from spaces import Arch
from hwnas.executors.profiling import (GroupEvent, ProfileReport, commit, pending, split, started,
                                       unique)

RESOURCE_PREFIX = "device:"
# Groups queued per actor: one measuring, one waiting, so the device is never idle
# while the driver commits; a dying actor replays at most this many.
PIPELINE_DEPTH = 2


def device_resource(spec: str) -> str:
    """Ray resource naming a device: ``ort:cuda`` -> ``device:ort:cuda``, ``cpu`` ->
    ``device:torch:cpu``, ``cuda`` -> ``device:torch:cuda:0`` (spec aliases resolved)."""
    from devices.registry import canonical, parse

    return RESOURCE_PREFIX + canonical(*parse(spec))


def uses_gpu(spec: str) -> bool:
    from devices.registry import parse

    return not parse(spec)[0].endswith(":cpu")


def local_device_resources() -> dict[str, float]:
    """One unit of ``device:<spec>`` for every device that runs on this machine
    (what a local Ray instance advertises, and what ``ray start --resources`` should say)."""
    import devices

    return {RESOURCE_PREFIX + s.spec: 1.0 for s in devices.available() if s.available}


def _actor_options(job: ProfileJob, resource: str, max_restarts: int,
                   max_task_retries: int) -> dict[str, Any]:
    options: dict[str, Any] = {"resources": {resource: 1}, "max_restarts": max_restarts,
                               "max_task_retries": max_task_retries, "max_concurrency": 1}
    if uses_gpu(job.device):
        # Ray hides every GPU from an actor that asks for no "GPU" resource; the device
        # resource already gives exclusivity and the spec names the index, so keep them visible.
        options["num_cpus"] = 1
        options["runtime_env"] = {"env_vars": {"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1"}}
    else:
        # Reserve the cores being timed so Ray schedules no other task onto them.
        threads = getattr(job.plan, "threads", 1) if job.plan is not None else 1
        options["num_cpus"] = max(1, int(threads))
    return options


def profile_on_ray(ray: Any, job: ProfileJob, archs: "Sequence[Arch | str]", store: Any, *,
                   max_restarts: int = 3, max_task_retries: int = 3, max_actors: int | None = None,
                   on_group: Callable[[GroupEvent], None] | None = None) -> ProfileReport:
    """Measure ``archs`` on every node offering the device's resource.

    Actors whose devices share a fingerprint (identical boxes) share one queue of
    groups; a device with another fingerprint gets the full list, since its
    latencies are a different table.
    """
    strings = unique(job, archs)
    report = ProfileReport(requested=len(strings))
    resource = device_resource(job.device)
    units = int(ray.cluster_resources().get(resource, 0))
    if units < 1:
        raise ExecutorError(f"no node of the Ray cluster offers resource {resource!r}; start the "
                            f"node that has the device with ray start --resources="
                            f"'{{\"{resource}\": 1}}'")
    wanted = max(1, math.ceil(len(strings) / job.group))
    count = max(1, min(units, wanted, max_actors or units))
    actor_class = ray.remote(DeviceWorker)
    options = _actor_options(job, resource, max_restarts, max_task_retries)
    actors = [actor_class.options(**options).remote(job) for _ in range(count)]
    try:
        try:
            infos = ray.get([a.info.remote() for a in actors])
        except ray.exceptions.RayError as error:
            raise ExecutorError(f"the device worker for {job.device} could not start: "
                                f"{str(error).strip().splitlines()[0]}") from None
        errors = [i["error"] for i in infos if i["error"]]
        if errors:
            raise ExecutorError(errors[0])
        queues: dict[str, deque[list[str]]] = {}
        owner: dict[int, str] = {}
        for index, info in enumerate(infos):
            fp = info["fingerprint"]
            owner[index] = fp["id"]
            if fp["id"] not in queues:
                report.fingerprints[fp["id"]] = fp
                todo = pending(store, job, fp, strings)
                report.skipped += len(strings) - len(todo)
                queues[fp["id"]] = deque(split(todo, job.group))
        if on_group is not None:
            on_group(started(report, infos[0]["fingerprint"], job))
        _drain(ray, actors, owner, queues, store, job, report, on_group)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
    return report


def _drain(ray: Any, actors: list[Any], owner: dict[int, str], queues: dict[str, deque],
           store: Any, job: ProfileJob, report: ProfileReport,
           on_group: Callable[[GroupEvent], None] | None) -> None:
    """Keep every actor ``PIPELINE_DEPTH`` groups busy; commit each result as it arrives."""
    in_flight: dict[Any, tuple[int, list[str]]] = {}
    dead: set[int] = set()

    def feed(index: int) -> None:
        queue = queues[owner[index]]
        while queue and index not in dead and sum(
                1 for i, _ in in_flight.values() if i == index) < PIPELINE_DEPTH:
            group = queue.popleft()
            in_flight[actors[index].measure.remote(group)] = (index, group)

    for index in range(len(actors)):
        feed(index)
    while in_flight:
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        index, group = in_flight.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except ray.exceptions.RayActorError as error:
            # The actor died more often than max_restarts: its groups are lost; another
            # actor with the same device takes the rest of the queue, if there is one.
            dead.add(index)
            report.processed += len(group)
            report.failed.extend(crash_outcomes(group, f"device worker lost: {error}".splitlines()[0],
                                                LOST))
            continue
        except ray.exceptions.RayTaskError as error:  # a bug while measuring: not retried
            report.processed += len(group)
            report.failed.extend(crash_outcomes(group, str(error)))
            feed(index)
            continue
        event = commit(store, job, result, report)
        if on_group is not None:
            on_group(event)
        feed(index)
    for queue in queues.values():  # every actor of a device died: what it never got
        for group in queue:
            report.failed.extend(crash_outcomes(group, "no live device worker left", LOST))
        queue.clear()
