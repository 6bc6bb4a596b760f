"""Real latency of architectures and of shipped files on the run's device, through the store.

Every number the pipeline uses -- the predictor's training set, its held-out
set, the actively chosen architectures and the candidate networks of every
budget -- is measured with the same protocol (interleaved rounds of blocked calls,
see devices.timing), committed to the store group by group as it is taken, and
read back from it. So a killed run never re-measures what it stored, and the
predictor learns numbers of exactly the kind it is judged on.

Candidates are timed as the *files* that would ship (:meth:`DeviceMeter.measure_files`):
the exported ONNX bytes on ONNX Runtime devices, the trained module on torch devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from spaces import Arch, Space
from spaces.core.errors import StepFailed


MeasurementMissing = StepFailed  # An architecture could not be measured (the others were stored).


@dataclass(frozen=True)
class NetworkToTime:
    """One candidate as it ships: its arch, its ONNX file and how to rebuild its module
    (for devices that time torch modules)."""

    arch: Arch
    onnx_path: Path
    module: Callable[[], Any]


class DeviceMeter:
    """Measures architectures of one space on one device into one store."""

    def __init__(self, space: Space, device: str, store: Any, *, quick: bool = False,
                 group: int = 10, progress: bool = True, corrected: bool = False,
                 input_size: int | None = None) -> None:
        import devices
        from hwnas.executors import ProfileJob

        self.space, self.device, self.store, self.progress = space, device, store, progress
        self.corrected = corrected
        self.plan = devices.TimingPlan.quick() if quick else devices.TimingPlan()
        self.job = ProfileJob(space, device, self.plan, group=group, input_size=input_size)
        # the fingerprint identifies the rows this device owns in the store (also on resume)
        profiler = devices.get(device, precision=self.job.precision, plan=self.plan)
        try:
            self.fingerprint = dict(profiler.fingerprint())
        finally:
            profiler.close()
        self.device_id = str(self.fingerprint["id"])
        self.label = str(self.fingerprint.get("label") or device)

    def profiler(self) -> Any:
        import devices

        return devices.get(self.device, precision=self.job.precision, plan=self.plan)

    def frame(self) -> Any:
        """This device's rows of the space in the store (oldest first)."""
        return self.store.frame(space=self.space.key, device=self.device_id, batch=self.job.batch,
                                input_shape=self.job.input_shape)

    def stored(self, archs: Sequence[Arch] | None = None) -> dict[Arch, float]:
        """Latency (ms) of ``archs`` (every stored one when None) on this device, through
        the store's one reader: as measured, or with the drift between groups taken out
        when ``corrected`` (measured to add noise on ort:cpu, so off by default)."""
        return self.store.latencies(self.space, archs, self.device_id, batch=self.job.batch,
                                    input_shape=self.job.input_shape, corrected=self.corrected)

    def reference_drift(self) -> float | None:
        """How much the fixed reference network's latency moved over this device's stored
        groups: (max - min) / median, or None with fewer than 3 groups. It is the host's
        drift while measuring, which a later timing of the same file may also see."""
        frame = self.frame()
        if "reference_ms" not in frame:
            return None
        refs = frame["reference_ms"].dropna().astype(float)
        refs = refs[refs > 0].drop_duplicates()
        if len(refs) < 3:
            return None
        return float((refs.max() - refs.min()) / refs.median())

    def measure(self, archs: Sequence[Arch], desc: str = "profile") -> np.ndarray:
        """Latency (ms) of each arch, measuring only those the store lacks."""
        from tqdm import tqdm

        from hwnas.executors.local import LocalExecutor

        bar = tqdm(total=len(set(archs)), desc=f"{desc} on {self.device}", unit="arch",
                   disable=not self.progress, dynamic_ncols=True, leave=False)

        def on_group(event: Any) -> None:
            bar.n = event.done
            if event.latencies:
                bar.set_postfix_str(f"last {np.median(event.latencies):.3f} ms", refresh=False)
            bar.refresh()

        try:
            report = LocalExecutor().profile(self.job, archs, self.store, on_group=on_group)
        finally:
            bar.close()
        report.raise_for_failures()
        values = self.stored(archs)
        missing = [a for a in archs if a not in values]
        if missing:
            raise MeasurementMissing(f"{len(missing)} architecture(s) have no stored measurement "
                                     f"after profiling; first: {self.space.to_string(missing[0])}")
        return np.asarray([values[a] for a in archs], dtype=float)

    def measure_files(self, networks: Sequence[NetworkToTime]) -> list[Any]:
        """Time the candidates as they ship, interleaved in one group, and store each
        measurement under its arch (a row already stored for that arch is kept). Returns
        the Measurements, in order."""
        if not networks:
            return []
        profiler = self.profiler()
        try:
            if getattr(profiler, "measures_onnx", False):
                items: list[Any] = [n.onnx_path for n in networks]
            else:
                items = [n.module() for n in networks]
            measured = profiler.measure_many(items, self.job.input_shape, self.job.batch)
        finally:
            profiler.close()
        self.store.add_many([(self.space.key, self.space.to_string(n.arch), self.fingerprint, m)
                             for n, m in zip(networks, measured)])
        return measured

    @property
    def measures_files(self) -> bool:
        """True when candidates are timed as ONNX files (ort:*), False for torch modules."""
        import devices

        name, _ = devices.parse(self.device)
        return name.startswith("ort:")
