"""Picklable job descriptions and the code that runs them on a worker.

Executors move *descriptions*, never live objects: an evaluator holds
datasets, tensors and ONNX Runtime sessions that cannot (or must not) be
pickled, so a worker rebuilds it from an :class:`EvaluatorRecipe` and keeps it
for the next chunk; a profiler is rebuilt from a :class:`ProfileJob` inside
its :class:`DeviceWorker`. The same functions run in-process for the local
executor, so the local and Ray executors differ only in transport, which is
what makes their results identical.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from hwnas.executors.base import CRASH, INPUT, Outcome
from spaces import Arch, Space
from spaces.errors import HwnasError

# Evaluators a worker process keeps built (most recent first out): enough for a
# search and a resumed one, small enough that a long-lived worker does not grow.
KEEP_EVALUATORS = 2


@dataclass(frozen=True)
class EvaluatorRecipe:
    """How to rebuild an evaluator anywhere: ``build(metrics)``, a picklable callable
    (a module-level function or a ``functools.partial`` of one over plain settings).

    ``key`` names the recipe so a worker builds it once and reuses it; it is
    drawn at creation and survives pickling.
    """

    build: Callable[[tuple[str, ...]], Any]
    metrics: tuple[str, ...]
    key: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __call__(self) -> Any:
        return self.build(tuple(self.metrics))


_BUILT: "OrderedDict[str, Any]" = OrderedDict()


def evaluator_for(recipe: EvaluatorRecipe) -> Any:
    """The evaluator of ``recipe`` built in this process, building it on first use."""
    evaluator = _BUILT.get(recipe.key)
    if evaluator is not None:
        _BUILT.move_to_end(recipe.key)
        return evaluator
    evaluator = recipe()
    _BUILT[recipe.key] = evaluator
    while len(_BUILT) > KEEP_EVALUATORS:
        _, old = _BUILT.popitem(last=False)
        old.close()
    return evaluator


def forget(key: str) -> None:
    """Close and drop the evaluator built from recipe ``key`` in this process, if any."""
    evaluator = _BUILT.pop(key, None)
    if evaluator is not None:
        evaluator.close()


def _crash_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).strip()


def evaluate_chunk(recipe: EvaluatorRecipe, archs: Sequence[Arch]) -> list[Outcome]:
    """Evaluate a chunk; an :class:`HwnasError` fails only the architectures it belongs to.

    The chunk is evaluated as one batch (evaluators batch on purpose); if that
    raises an HwnasError, each arch is retried alone to find which one is bad.
    Other exceptions are bugs and propagate (an executor records them as
    CRASH, with the traceback, and does not retry them).
    """
    archs = list(archs)
    keys = [f"{a.space}:{','.join(map(str, a.choices))}" for a in archs]
    try:
        evaluator = evaluator_for(recipe)
    except HwnasError as error:  # e.g. the dataset is missing on this worker
        return [Outcome(k, error=str(error), kind=INPUT) for k in keys]
    keys = [_arch_key(evaluator.space, a) for a in archs]
    start = time.perf_counter()
    try:
        rows = evaluator.evaluate_many(archs)
    except HwnasError as error:
        if len(archs) == 1:
            return [Outcome(keys[0], error=str(error), kind=INPUT)]
        return [o for a in archs for o in evaluate_chunk(recipe, [a])]
    per_arch = (time.perf_counter() - start) / max(len(archs), 1)
    return [Outcome(k, dict(r), seconds=per_arch) for k, r in zip(keys, rows)]


def _arch_key(space: Space, arch: Arch) -> str:
    try:
        return space.to_string(arch)
    except HwnasError:  # an invalid arch may have no string form
        return f"{arch.space}:{','.join(map(str, arch.choices))}"


# ---- profiling -------------------------------------------------------------------------

@dataclass(frozen=True)
class ProfileJob:
    """What a device worker needs to measure arch strings: the space (pickled by value:
    its name and constructor options, a few hundred bytes), the device spec, the
    timing plan and the measurement settings. ``group`` archs are timed together,
    interleaved (see devices.timing), and committed together."""

    space: Space
    device: str
    plan: Any = None  # devices.TimingPlan; None = the device's default protocol
    precision: str = "fp32"
    batch: int = 1
    input_size: int | None = None
    group: int = 10

    def __post_init__(self) -> None:
        from devices.registry import parse

        parse(self.device)  # an unknown spec fails here, before any worker starts
        if self.group < 1 or self.batch < 1:
            raise HwnasError("--group and --batch must be at least 1")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.space.input_shape(self.input_size))


@dataclass(frozen=True)
class GroupResult:
    """One measured group: an Outcome per arch string (value = Measurement dict), plus
    which process and host measured it and that device's fingerprint."""

    outcomes: list[Outcome]
    fingerprint: dict[str, Any]
    pid: int
    node: str


class DeviceWorker:
    """Builds and times networks on one device, one group at a time.

    It is a plain class so the local executor uses it directly; the Ray executor
    turns it into an actor pinned to a node that offers the device's resource.
    Bad input comes back as data (``error`` / INPUT outcomes), never as an
    exception, so a retry policy never retries it.
    """

    def __init__(self, job: ProfileJob) -> None:
        self.job = job
        self.error = ""
        self.profiler: Any = None
        try:
            import devices

            settings = {"plan": job.plan} if job.plan is not None else {}
            self.profiler = devices.get(job.device, precision=job.precision, **settings)
            self._fingerprint = self.profiler.fingerprint()
        except HwnasError as error:
            self.error = str(error)
            self._fingerprint = {}

    def info(self) -> dict[str, Any]:
        """Fingerprint (or the error that prevents profiling), process id and host."""
        return {"fingerprint": dict(self._fingerprint), "error": self.error,
                "pid": os.getpid(), "node": socket.gethostname()}

    def measure(self, arch_strings: Sequence[str]) -> GroupResult:
        """Time the group interleaved; an arch that cannot be built or timed fails alone."""
        outcomes: dict[str, Outcome] = {}
        parsed: list[tuple[str, Arch]] = []
        for text in arch_strings:
            try:
                parsed.append((text, self.job.space.from_string(text)))
            except HwnasError as error:
                outcomes[text] = Outcome(text, error=str(error), kind=INPUT)
        if self.error:
            outcomes.update({t: Outcome(t, error=self.error, kind=INPUT) for t, _ in parsed})
        elif parsed:
            outcomes.update(self._time(parsed))
        return GroupResult([outcomes[t] for t in arch_strings], dict(self._fingerprint),
                           os.getpid(), socket.gethostname())

    def _time(self, parsed: list[tuple[str, Arch]]) -> dict[str, Outcome]:
        start = time.perf_counter()
        try:
            modules = [self.job.space.build(a, input_size=self.job.input_size) for _, a in parsed]
            results = self.profiler.measure_many(modules, self.job.input_shape, self.job.batch)
        except HwnasError as error:
            if len(parsed) == 1:
                return {parsed[0][0]: Outcome(parsed[0][0], error=str(error), kind=INPUT)}
            out: dict[str, Outcome] = {}
            for item in parsed:  # find the culprit; the others are timed alone
                out.update(self._time([item]))
            return out
        per_arch = (time.perf_counter() - start) / len(parsed)
        return {t: Outcome(t, m.to_dict(), seconds=per_arch) for (t, _), m in zip(parsed, results)}

    def close(self) -> None:
        close = getattr(self.profiler, "close", None)
        if callable(close):
            close()


def crash_outcomes(keys: Sequence[str], error: BaseException | str, kind: str = CRASH) -> list[Outcome]:
    """The same failure for every key (a chunk whose task raised or whose worker was lost)."""
    text = error if isinstance(error, str) else _crash_text(error)
    return [Outcome(k, error=text, kind=kind) for k in keys]
