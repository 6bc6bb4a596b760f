"""Where latency comes from: a measured table, a fitted predictor, or the live device.

All three answer a batch (``latency_ms(archs) -> ndarray``), so the live one
can time the batch in interleaved rounds, which is the only stable protocol
on a shared CPU (see the devices package).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spaces import Arch, Space
from spaces.errors import HwnasError


class LatencySource(ABC):
    """Latency in milliseconds of a batch of architectures of one space."""

    #: a lookup or a model answers in microseconds; live profiling takes seconds per network,
    #: so strategies that pre-screen many candidates only ask a cheap source
    cheap: bool = True

    def __init__(self, space: Space) -> None:
        self.space = space

    @abstractmethod
    def latency_ms(self, archs: Sequence[Arch]) -> np.ndarray:
        """One value per arch, in order."""

    def minimum(self) -> float | None:
        """Lowest latency in the space where known (for budget feasibility)."""
        return None

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-friendly identity (stored in config.json, compared on resume)."""

    def close(self) -> None:
        pass


class TableLatency(LatencySource):
    """A device column of a measured table (the HELP / HW-NAS-Bench NAS-Bench-201 table).

    Rows join on the space's benchmark index when it has one (NB201), else on
    the arch string (the FBNet table, whose 5,000 rows are a sample: an arch
    outside it is an error, not a guess).
    """

    def __init__(self, space: Space, device: str, path: str | Path | None = None) -> None:
        super().__init__(space)
        import pandas as pd
        from latency.shared_data import HELP_FBNET_LATENCY, HELP_NB201_LATENCY, data_file

        if path is None:
            known = {"nb201": HELP_NB201_LATENCY, "fbnet": HELP_FBNET_LATENCY}
            if space.name not in known:
                raise HwnasError(f"no latency table is bundled for space {space.key!r}; "
                                 f"use --predictor or --device")
            path = data_file(known[space.name])
        table = pd.read_csv(path)
        meta = {"arch_index", "arch_str", "sample_index", "op_idx_list"}
        devices = [c for c in table.columns if c not in meta]
        if device not in devices:
            raise HwnasError(f"latency table {Path(path).name} has no device {device!r}; "
                             f"known: {', '.join(devices)}")
        self.device, self.path = device, str(path)
        values = table[device].to_numpy(dtype=float)
        if "arch_index" in table.columns and hasattr(space, "index"):
            order = np.empty(len(table), dtype=float)
            order[table["arch_index"].to_numpy()] = values
            self._by_index = order
            self._by_key = None
        else:
            key_col = "arch_str" if "arch_str" in table.columns else "op_idx_list"
            self._by_index = None
            self._by_key = dict(zip(table[key_col].astype(str), values))
        self._min = float(np.nanmin(values))

    def latency_ms(self, archs: Sequence[Arch]) -> np.ndarray:
        if self._by_index is not None:
            return self._by_index[[self.space.index(a) for a in archs]]
        out = []
        for a in archs:
            key = self.space.to_string(a)
            if key not in self._by_key:
                raise HwnasError(f"architecture {key} is not in the latency table {self.path} "
                                 f"(it covers only a sample of the space)")
            out.append(self._by_key[key])
        return np.asarray(out, dtype=float)

    def minimum(self) -> float | None:
        return self._min

    def describe(self) -> dict[str, Any]:
        return {"kind": "table", "device": self.device, "table": Path(self.path).name}


class PredictorLatency(LatencySource):
    """A fitted latency predictor (``latency.predictors``), checked to match the space."""

    def __init__(self, space: Space, predictor: Any, path: str | Path | None = None) -> None:
        super().__init__(space)
        meta = getattr(predictor, "meta", {}) or {}
        meta_space = meta.get("space") if isinstance(meta, dict) else getattr(meta, "space", None)
        if meta_space is not None and meta_space not in (space.key, space.name):
            raise HwnasError(f"predictor {path or ''} was fitted on space {meta_space!r}, "
                             f"not {space.key!r}".replace("  ", " "))
        self.predictor, self.path = predictor, None if path is None else str(path)
        self._min: float | None = None

    @classmethod
    def load(cls, space: Space, path: str | Path) -> "PredictorLatency":
        if not Path(path).is_file():
            raise HwnasError(f"predictor file {path} not found")
        from latency import predictors

        return cls(space, predictors.load(path), path)

    def latency_ms(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.asarray(self.predictor.predict(list(archs)), dtype=float).reshape(-1)

    def minimum(self) -> float | None:
        if self._min is None:
            from hwnas.evaluators.base import coordinate_minimum

            self._min = coordinate_minimum(self.space, self.latency_ms)
        return self._min

    def describe(self) -> dict[str, Any]:
        meta = getattr(self.predictor, "meta", {}) or {}
        device = meta.get("device") if isinstance(meta, dict) else None
        return {"kind": "predictor", "path": self.path, "device": device}


class DeviceLatency(LatencySource):
    """Live profiling: build each network and time the whole batch interleaved on a device."""

    cheap = False

    def __init__(self, space: Space, device: str | Any, input_size: int | None = None,
                 num_classes: int | None = None, batch: int = 1) -> None:
        super().__init__(space)
        if isinstance(device, str):
            import devices

            device = devices.get(device)
        self.profiler = device
        self.input_size, self.num_classes, self.batch = input_size, num_classes, batch

    def latency_ms(self, archs: Sequence[Arch]) -> np.ndarray:
        modules = [self.space.build(a, self.num_classes, self.input_size).eval() for a in archs]
        shape = self.space.input_shape(self.input_size)
        results = self.profiler.measure_many(modules, shape, batch=self.batch)
        return np.asarray([r.latency_ms for r in results], dtype=float)

    def describe(self) -> dict[str, Any]:
        fp = self.profiler.fingerprint()
        return {"kind": "device", "device": getattr(self.profiler, "spec", None),
                "fingerprint": fp.get("id"), "label": fp.get("label"), "batch": self.batch}

    def close(self) -> None:
        close = getattr(self.profiler, "close", None)
        if callable(close):
            close()


def make_latency_source(space: Space, *, table: str | None = None, table_path: str | None = None,
                        predictor: str | None = None, device: str | None = None,
                        input_size: int | None = None,
                        num_classes: int | None = None) -> LatencySource | None:
    """The one latency source the options name (at most one may be given)."""
    given = [n for n, v in (("--device-table", table), ("--predictor", predictor),
                            ("--device", device)) if v]
    if len(given) > 1:
        raise HwnasError(f"give one latency source, not {' and '.join(given)}")
    if table:
        return TableLatency(space, table, table_path)
    if predictor:
        return PredictorLatency.load(space, predictor)
    if device:
        return DeviceLatency(space, device, input_size, num_classes)
    return None
