"""Real latency of architectures on the run's device, always through the measurement store.

Every number the pipeline uses -- the predictor's training set, its held-out
set, the actively chosen architectures and the audit of the chosen networks --
is measured with the same protocol (interleaved rounds, see devices.timing),
committed to the store group by group as it is taken, and read back from it. So
a killed run never re-measures what it stored, and the audit compares the
predictor with numbers of exactly the kind it was trained on.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from spaces import Arch, Space
from spaces.errors import HwnasError


class MeasurementMissing(HwnasError):
    """An architecture could not be measured (the others were stored)."""


class DeviceMeter:
    """Measures arch strings of one space on one device into one store."""

    def __init__(self, space: Space, device: str, store: Any, *, quick: bool = False,
                 group: int = 10, progress: bool = True) -> None:
        import devices
        from hwnas.executors import ProfileJob

        self.space, self.device, self.store, self.progress = space, device, store, progress
        self.plan = devices.TimingPlan.quick() if quick else devices.TimingPlan()
        self.job = ProfileJob(space, device, self.plan, group=group)
        # the fingerprint identifies the rows this device owns in the store (also on resume)
        profiler = devices.get(device, precision=self.job.precision, plan=self.plan)
        try:
            self.fingerprint = dict(profiler.fingerprint())
        finally:
            profiler.close()  # every Profiler has one (devices.base)
        self.device_id = str(self.fingerprint["id"])
        self.label = str(self.fingerprint.get("label") or device)

    def stored(self) -> dict[str, float]:
        """Arch string -> latency (ms) of every row this device has for the space, with the
        machine's drift between groups taken out (``latency.store.drift_corrected``: each
        group timed a fixed reference network too), so numbers taken minutes apart share
        one scale."""
        from latency.store import drift_corrected

        frame = self.store.frame(space=self.space.key, device=self.device_id, batch=self.job.batch,
                                 input_shape=self.job.input_shape)
        return dict(zip(frame["arch"].astype(str), drift_corrected(frame)))

    def measure(self, archs: Sequence[Arch], desc: str = "profile") -> np.ndarray:
        """Latency (ms) of each arch, measuring only those the store lacks."""
        from tqdm import tqdm

        from hwnas.executors.local import LocalExecutor

        strings = [self.space.to_string(a) for a in archs]
        bar = tqdm(total=len(set(strings)), desc=f"{desc} on {self.device}", unit="arch",
                   disable=not self.progress, dynamic_ncols=True, leave=False)

        def on_group(event: Any) -> None:
            bar.n = event.done
            if event.latencies:
                bar.set_postfix_str(f"last {np.median(event.latencies):.3f} ms", refresh=False)
            bar.refresh()

        try:
            report = LocalExecutor().profile(self.job, strings, self.store, on_group=on_group)
        finally:
            bar.close()
        report.raise_for_failures()
        values = self.stored()
        missing = [s for s in strings if s not in values]
        if missing:
            raise MeasurementMissing(f"{len(missing)} architecture(s) have no stored measurement "
                                     f"after profiling; first: {missing[0]}")
        return np.asarray([values[s] for s in strings], dtype=float)
