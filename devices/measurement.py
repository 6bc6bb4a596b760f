"""The result of timing one network: every sample plus the statistics derived from it.

All samples are kept (not only a summary) so any statistic can be recomputed
later and so stores can be audited; ``latency_ms`` is the one number the rest
of hwnas uses, and ``statistic`` says which statistic it is.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from devices.errors import InvalidSetting

_PERCENTILE = re.compile(r"^p(\d{1,2})$")


def check_statistic(name: str) -> str:
    """Accept ``median``, ``mean``, ``min`` or ``pNN`` (0 < NN < 100); anything else
    is an :class:`InvalidSetting` so a typo never silently reports the wrong number."""
    if name in ("median", "mean", "min"):
        return name
    match = _PERCENTILE.match(name)
    if match and 0 < int(match.group(1)) < 100:
        return name
    raise InvalidSetting(f"unknown statistic {name!r}; use median, mean, min or pNN such as p10")


def statistic_of(samples: Sequence[float] | np.ndarray, name: str) -> float:
    """Compute a named statistic of samples (``pNN`` uses linear interpolation)."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    if name == "median":
        return float(np.median(values))
    if name == "mean":
        return float(values.mean())
    if name == "min":
        return float(values.min())
    return float(np.percentile(values, int(check_statistic(name)[1:])))


@dataclass
class Measurement:
    """Timing of one network at one batch size and input shape on one device.

    ``samples_ms`` are per-call latencies of the whole batch (each the mean of a
    block of ``block_calls`` back-to-back calls, see :mod:`devices.timing`), pooled over
    ``rounds`` interleaved rounds (see :mod:`devices.timing`), read from
    ``clock``: ``wall`` (perf_counter, or CUDA events on GPU) or ``cpu`` (the
    calling thread's CPU time, which a shared machine's other processes cannot
    inflate by preempting us; valid for one thread only). The same calls read
    from the other clock are kept in ``aux_samples_ms``. ``round_cv`` is the
    spread of the reported statistic between rounds, i.e. how much the machine
    drifted while this network was measured.

    Spread: ``cv`` is the classical std/mean of all samples (inflated by the rare
    multi-millisecond stalls of a shared machine); ``robust_cv`` is the
    normal-consistent IQR over the median, (p75 - p25) / (1.349 * median), which
    ignores those stalls; ``round_cv`` is std/mean of the reported statistic
    computed per round.
    """

    latency_ms: float
    statistic: str
    samples_ms: list[float]
    clock: str
    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    p10_ms: float
    p90_ms: float
    cv: float
    robust_cv: float
    round_cv: float
    n_samples: int
    rounds: int
    warmup_iters: int
    warmup_s: float
    batch: int
    input_shape: tuple[int, ...]
    device: str = ""
    threads: int | None = None
    precision: str = "fp32"
    setup_s: float = 0.0
    timing_s: float = 0.0
    reference_ms: float | None = None  # the group's reference network (devices.reference)
    block_calls: int = 1  # calls per sample: each sample is the mean of a block of this many
    aux_samples_ms: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_samples(cls, rounds_ms: Sequence[Sequence[float]], statistic: str, *, batch: int,
                     input_shape: Sequence[int], warmup_iters: int, warmup_s: float,
                     clock: str = "wall", aux_rounds_ms: dict[str, Sequence[Sequence[float]]] | None = None,
                     **meta: Any) -> "Measurement":
        """Pool per-round samples of the reported ``clock`` and derive every statistic from
        them; ``aux_rounds_ms`` are the same calls timed by other clocks (kept, not used)."""
        check_statistic(statistic)
        aux = {name: [float(round(s, 6)) for r in rounds for s in r]
               for name, rounds in (aux_rounds_ms or {}).items()}
        pooled = np.asarray([s for r in rounds_ms for s in r], dtype=np.float64)
        if pooled.size == 0:
            raise InvalidSetting("a measurement needs at least one sample")
        mean = float(pooled.mean())
        std = float(pooled.std(ddof=1)) if pooled.size > 1 else 0.0
        median = float(np.median(pooled))
        q25, q75 = np.percentile(pooled, [25, 75])
        per_round = [statistic_of(r, statistic) for r in rounds_ms if len(r)]
        round_cv = (float(np.std(per_round, ddof=1) / np.mean(per_round))
                    if len(per_round) > 1 else 0.0)
        return cls(
            latency_ms=statistic_of(pooled, statistic), statistic=statistic,
            samples_ms=[float(round(s, 6)) for s in pooled], clock=clock, aux_samples_ms=aux,
            median_ms=median, mean_ms=mean, std_ms=std,
            min_ms=float(pooled.min()), p10_ms=float(np.percentile(pooled, 10)),
            p90_ms=float(np.percentile(pooled, 90)),
            cv=std / mean if mean > 0 else math.nan,
            robust_cv=float((q75 - q25) / (1.349 * median)) if median > 0 else math.nan,
            round_cv=round_cv,
            n_samples=int(pooled.size), rounds=len(per_round), warmup_iters=int(warmup_iters),
            warmup_s=float(warmup_s), batch=int(batch), input_shape=tuple(int(d) for d in input_shape),
            **meta)

    def samples_of(self, clock: str) -> list[float]:
        """Samples read from ``clock`` (empty if that clock was not recorded)."""
        return list(self.samples_ms) if clock == self.clock else list(self.aux_samples_ms.get(clock, []))

    def restat(self, statistic: str) -> "Measurement":
        """The same samples reported with another statistic (no re-timing)."""
        out = Measurement.from_dict(self.to_dict())
        out.statistic = check_statistic(statistic)
        out.latency_ms = statistic_of(self.samples_ms, statistic)
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Measurement":
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["input_shape"] = tuple(values.get("input_shape", ()))
        return cls(**values)

    def __repr__(self) -> str:
        return (f"Measurement({self.latency_ms:.3f} ms {self.statistic}, median {self.median_ms:.3f}, "
                f"cv {self.cv:.1%}, {self.clock} clock, n={self.n_samples}, batch {self.batch}, "
                f"input {'x'.join(map(str, self.input_shape))}, blocks of {self.block_calls}, "
                f"{self.device})")
