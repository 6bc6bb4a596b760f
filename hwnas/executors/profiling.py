"""Driver-side profiling bookkeeping shared by every executor: what is left, commit, report.

Only the driver writes the store: workers return Measurement dicts and the
driver commits each group with ``MeasurementStore.add_many`` the moment it
arrives. One writer keeps SQLite simple on a cluster (workers need no shared
file system), and because every finished group is committed at once, a killed
worker or driver loses only the groups in flight; re-running the command
skips everything stored (resume).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from hwnas.executors.base import ExecutorError, Outcome
from hwnas.executors.jobs import GroupResult, ProfileJob
from spaces import Arch


@dataclass(frozen=True)
class GroupEvent:
    """Progress after one committed group (for progress bars and logs); one event with
    nothing added comes first, once the devices and what they still lack are known."""

    label: str
    added: int
    latencies: list[float]
    failed: int
    pid: int  # the measuring process (0 in the start event)
    node: str
    done: int  # archs finished (stored before, measured or failed), over every device
    total: int  # archs requested times devices profiled


@dataclass
class ProfileReport:
    """What a profiling run did, per device fingerprint and in total."""

    requested: int
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: int = 0
    processed: int = 0
    measured: int = 0
    latencies: list[float] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    workers: set[tuple[str, int]] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.requested * max(1, len(self.fingerprints))

    @property
    def done(self) -> int:
        return self.skipped + self.processed

    @property
    def labels(self) -> list[str]:
        return [str(fp.get("label") or fid) for fid, fp in self.fingerprints.items()]

    def raise_for_failures(self) -> None:
        """One sentence about the failures (after everything else was committed)."""
        if not self.failed:
            return
        first = self.failed[0]
        raise ExecutorError(f"{len(self.failed)} architecture(s) could not be measured "
                            f"(the others were stored); first, {first.key}: "
                            f"{first.error.strip().splitlines()[-1] if first.error else first.kind}")


def split(items: Sequence[Any], size: int) -> list[list[Any]]:
    """Consecutive groups of at most ``size`` items."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def unique(job: ProfileJob, archs: Sequence["Arch | str"]) -> list[str]:
    """The store keys of ``archs``, once each: Arch objects are written in the space's
    string form here, at the boundary to workers and the store; strings (read from a
    user's file) pass as they are, so a malformed one fails alone, on the worker."""
    return list(dict.fromkeys(job.space.to_string(a) if isinstance(a, Arch) else str(a)
                              for a in archs))


def pending(store: Any, job: ProfileJob, fingerprint: dict[str, Any],
            arch_strings: Sequence[str]) -> list[str]:
    """The arch strings not yet stored for this device, batch and input shape (resume)."""
    stored = store.stored_archs(job.space.key, fingerprint["id"], job.batch, job.input_shape)
    return [s for s in arch_strings if s not in stored]


def started(report: ProfileReport, fingerprint: dict[str, Any], job: ProfileJob) -> GroupEvent:
    """The event sent before the first group: nothing added yet, ``done`` = already stored
    (so a progress bar can start at the resume point)."""
    return GroupEvent(str(fingerprint.get("label") or fingerprint.get("id") or job.device), 0, [],
                      0, 0, "", report.done, report.total)


def commit(store: Any, job: ProfileJob, result: GroupResult, report: ProfileReport) -> GroupEvent:
    """Store the group's measurements in one transaction and account for them."""
    fp = result.fingerprint
    good = [o for o in result.outcomes if o.ok]
    added = store.add_many([(job.space.key, o.key, fp, o.value) for o in good]) if good else 0
    latencies = [float(o.value["latency_ms"]) for o in good]
    failed = [o for o in result.outcomes if not o.ok]
    report.measured += added
    report.latencies.extend(latencies)
    report.failed.extend(failed)
    report.processed += len(result.outcomes)
    report.workers.add((result.node, result.pid))
    return GroupEvent(str(fp.get("label") or fp.get("id") or job.device), added, latencies,
                      len(failed), result.pid, result.node, report.done, report.total)
