"""The executor contract: run batches of independent jobs, here or on a cluster.

Two kinds of batch exist in hwnas: candidate evaluations (a strategy's
proposed batch) and profiling groups (networks timed on one device). Both are
independent jobs, so one interface serves both; ``local`` runs them in this
process, ``ray`` spreads them over a Ray cluster. A job's result is an
:class:`Outcome`, never a raised exception, so one bad architecture is
reported with its message while the rest of the batch still comes back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from spaces import Arch
from spaces.core.errors import StepFailed, Unavailable

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    from hwnas.executors.jobs import EvaluatorRecipe, ProfileJob
    from hwnas.executors.profiling import GroupEvent, ProfileReport

# Outcome kinds. INPUT: the job itself is bad (an HwnasError: invalid arch, missing
# data); retrying cannot help. CRASH: a bug raised some other exception. LOST: the
# worker died more often than the retry limit allows.
OK, INPUT, CRASH, LOST = "ok", "input", "crash", "lost"


# An executor cannot do its work (cluster unreachable, workers lost, a job failed).
ExecutorError = StepFailed


# The requested executor cannot start here (Ray missing, address unreachable).
ExecutorUnavailable = Unavailable


# A candidate could not be evaluated for a reason retrying cannot fix.
EvaluationFailed = StepFailed


@dataclass(frozen=True)
class Outcome:
    """Result of one job: ``value`` on success, else ``error`` (one sentence) and its ``kind``.

    ``key`` is the architecture's string form, so outcomes can be matched and
    reported without the space; ``seconds`` is worker-side wall time.
    """

    key: str
    value: dict[str, Any] | None = None
    error: str = ""
    kind: str = OK
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind == OK


class Executor(ABC):
    """Runs evaluation chunks and profiling groups; see :mod:`hwnas.executors`."""

    name: ClassVar[str] = ""
    #: True when jobs leave this process, i.e. when wrapping an evaluator pays off.
    distributed: ClassVar[bool] = False

    @property
    def parallelism(self) -> int:
        """How many jobs can run at once (CPUs of the cluster, 1 in-process)."""
        return 1

    @abstractmethod
    def map_evaluate(self, recipe: "EvaluatorRecipe", archs: Sequence[Arch]) -> list[Outcome]:
        """Evaluate ``archs`` with the evaluator ``recipe`` builds; one Outcome per arch, in order."""

    @abstractmethod
    def profile(self, job: "ProfileJob", archs: "Sequence[Arch | str]", store: Any,
                on_group: "Callable[[GroupEvent], None] | None" = None) -> "ProfileReport":
        """Measure every arch not yet in ``store`` on ``job.device``, committing each
        group to ``store`` as soon as it is measured (a kill loses only groups in flight)."""

    def release(self, recipe: "EvaluatorRecipe") -> None:
        """Forget evaluators built from ``recipe`` where this executor can reach them."""

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        """Release workers and connections; idempotent."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
