"""The ``Profiler`` base class: one backend on one device, measuring ``nn.Module`` s.

Subclasses only say how to turn a module into a :class:`~devices.timing.Runner`
(``_prepare``) and what identifies their hardware (``_fingerprint_fields``);
warm-up, interleaving, statistics and fingerprints live here so every backend
follows the same protocol (see :mod:`devices.timing`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from devices.allocator import steady_malloc
from devices.errors import InvalidSetting
from devices.fingerprint import cpu_info, fingerprint_id, short_cpu_name
from devices.measurement import Measurement
from devices.timing import RawTiming, Runner, TimingPlan, run_interleaved


class Profiler(ABC):
    """Measures networks on one backend/device with a fixed :class:`TimingPlan`.

    Protocol (details in :mod:`devices.timing`):

    * each network is prepared once before timing (ORT: one in-memory ONNX export
      and one session with all graph optimisations; TensorRT: one engine) with a
      pre-allocated input, and run once so failures surface before timing;
    * a fixed intra-op thread count (default 1 on CPU) for the whole measurement;
    * warm-up by count *and* time per network, then ``rounds`` interleaved rounds
      of ``calls`` timed calls per network (cut short by a per-network time cap),
      samples pooled over the rounds, garbage collector off;
    * CPU: wall clock (``perf_counter``) around each call, plus the thread's CPU
      time; CUDA: CUDA events recorded around each call after a synchronize;
      ORT on GPU: IO binding with pre-allocated device buffers;
    * every sample is kept; the reported ``latency_ms`` is ``plan.statistic``
      (pooled p10 by default, see DESIGN.md "Devices") of ``plan.clock``.

    ``measure_many`` is the main entry point on shared CPUs: it times a batch of
    networks in interleaved rounds so that drift of the machine hits them all
    alike. ``measure`` is ``measure_many`` of one network.
    """

    backend: str = ""
    target: str = ""
    uses_gpu: bool = False
    measures_onnx: bool = False  # can time an ONNX model's own bytes (a file that ships)

    def __init__(self, index: int | None = None, plan: TimingPlan | None = None,
                 precision: str = "fp32", **settings: Any) -> None:
        self.index = index
        self.plan = (plan or TimingPlan()).updated(**settings)
        if precision not in ("fp32", "fp16"):
            raise InvalidSetting(f"precision must be fp32 or fp16, got {precision!r}")
        self.requested_precision = precision
        if self.uses_gpu and self.plan.clock != "wall":
            raise InvalidSetting(f"{self.spec} is timed with CUDA events; clock must be 'wall'")
        self._fingerprint: dict[str, Any] | None = None
        self.malloc = steady_malloc()  # see devices.allocator: no page faults while timing

    # ---- availability -----------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls, index: int | None) -> str | None:
        """One sentence saying why this backend cannot run here, or None if it can."""
        return None

    # ---- identity ---------------------------------------------------------------------
    @property
    def spec(self) -> str:
        base = f"{self.backend}:{self.target}" if self.target else self.backend
        return base if self.index is None else f"{base}:{self.index}"

    @property
    def precision(self) -> str:
        """The precision numbers are actually measured in (a backend may fall back to fp32)."""
        return self.requested_precision

    def _fingerprint_fields(self) -> dict[str, Any]:
        """Backend-specific fields (GPU, library versions); the base adds host and settings."""
        return {}

    def fingerprint(self) -> dict[str, Any]:
        """Hardware, library versions, precision and threads, plus ``id`` and ``label``."""
        if self._fingerprint is None:
            fp: dict[str, Any] = {"backend": self.backend, "target": self.target or None,
                                  "spec": self.spec, "precision": self.precision}
            fp.update(cpu_info())
            if not self.uses_gpu:
                fp["threads"] = self.plan.threads
                fp["clock"] = self.plan.clock
                fp["malloc"] = self.malloc
            # what a stored number means: the statistic of blocks at least this long
            fp["timing"] = {"statistic": self.plan.statistic, "block_ms": self.plan.block_ms}
            fp.update(self._fingerprint_fields())
            fp["id"] = fingerprint_id(fp)
            fp["label"] = self._label(fp)
            self._fingerprint = fp
        return dict(self._fingerprint)

    def _label(self, fp: dict[str, Any]) -> str:
        if self.uses_gpu:
            return f"{self.spec}/{fp['precision']}@{fp.get('gpu_model', '?')}"
        clock = "" if self.plan.clock == "wall" else f"-{self.plan.clock}clock"
        return f"{self.spec}/{self.plan.threads}t{clock}@{short_cpu_name(str(fp.get('cpu_model', '?')))}"

    @property
    def fingerprint_id(self) -> str:
        return self.fingerprint()["id"]

    @property
    def label(self) -> str:
        return self.fingerprint()["label"]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} [{self.fingerprint_id}]>"

    # ---- measuring --------------------------------------------------------------------
    @abstractmethod
    def _prepare(self, module: "torch.nn.Module", input_shape: tuple[int, ...],  # noqa: F821
                 batch: int) -> Runner:
        """Export/compile ``module`` once and return a runner with a pre-allocated input;
        it must have run the network once (so failures surface here, not while timing)."""

    @contextmanager
    def _timing_scope(self) -> Iterator[None]:
        """Process-wide settings held while preparing and timing (e.g. torch threads)."""
        yield

    def _prepare_onnx(self, model: bytes, input_shape: tuple[int, ...], batch: int) -> Runner:
        """Like ``_prepare`` for an ONNX model's bytes; only backends that run ONNX have it."""
        raise InvalidSetting(f"{self.spec} times torch modules, not ONNX files; time an ONNX "
                             f"file on an ONNX Runtime device such as ort:cpu")

    def _prepare_network(self, network: Any, shape: tuple[int, ...], batch: int) -> Runner:
        from devices.onnx_export import is_onnx, onnx_bytes

        if is_onnx(network):
            if not self.measures_onnx:
                return self._prepare_onnx(b"", shape, batch)  # raises: says what to use
            return self._prepare_onnx(onnx_bytes(network), shape, batch)
        if not callable(getattr(network, "forward", None)):
            raise InvalidSetting(f"{self.spec} measures a torch.nn.Module or an ONNX model (a "
                                 f".onnx path, its bytes or an onnx.ModelProto), not "
                                 f"{type(network).__name__}")
        return self._prepare(network, shape, batch)

    def measure(self, network: Any, input_shape: Sequence[int] | None = None,
                batch: int = 1) -> Measurement:
        """Time one network (see :mod:`devices.timing` for the protocol): an ``nn.Module``,
        or on backends with ``measures_onnx`` an ONNX model -- its path, bytes or proto --
        whose input shape is read from the file when not given."""
        return self.measure_many([network], input_shape, batch)[0]

    def measure_many(self, modules: Sequence[Any], input_shape: Sequence[int] | None = None,
                     batch: int = 1,
                     on_turn: Callable[[int, int], None] | None = None) -> list[Measurement]:
        """Time a batch of networks in interleaved rounds; one Measurement per network, in order.

        ``input_shape`` excludes the batch dimension, e.g. ``(3, 32, 32)``; for ONNX models
        it may be None (read from the first model's input).
        """
        if input_shape is None:
            from devices.onnx_export import is_onnx, onnx_bytes, onnx_input_shape

            first = modules[0] if modules else None
            if first is None or not is_onnx(first):
                raise InvalidSetting("give the input shape (without the batch) of the networks")
            input_shape = onnx_input_shape(onnx_bytes(first))
        shape = tuple(int(d) for d in input_shape)
        if batch < 1:
            raise InvalidSetting(f"batch must be at least 1, got {batch}")
        if not shape or min(shape) < 1:
            raise InvalidSetting(f"input shape must be positive dimensions, got {shape}")
        if not modules:
            return []
        runners: list[Runner] = []
        setup: list[float] = []
        with self._timing_scope():
            try:
                for module in modules:
                    start = time.perf_counter()
                    runners.append(self._prepare_network(module, shape, batch))
                    setup.append(time.perf_counter() - start)
                # the reference is an image network: only image-shaped inputs get one
                use_reference = self.plan.reference and len(shape) == 3
                timed = runners + ([self._reference_runner(shape, batch)] if use_reference else [])
                raw = run_interleaved(timed, self.plan, on_turn, cpu_clock=not self.uses_gpu)
            finally:
                for runner in runners:
                    runner.close()
        reference_ms = None
        if len(timed) > len(runners):
            reference_ms = self._measurement(raw[-1], 0.0, batch, shape).latency_ms
        return [self._measurement(r, s, batch, shape, reference_ms) for r, s in zip(raw, setup)]

    def _reference_runner(self, shape: tuple[int, ...], batch: int) -> Runner:
        """The reference network prepared once per input shape and batch, and kept."""
        cache = self.__dict__.setdefault("_references", {})
        key = (shape, batch)
        if key not in cache:
            from devices.reference import reference_network

            cache[key] = self._prepare(reference_network(shape[0]), shape, batch)
        return cache[key]

    def close(self) -> None:
        """Release what the profiler keeps between batches (the reference networks)."""
        for runner in self.__dict__.pop("_references", {}).values():
            runner.close()

    def _measurement(self, raw: RawTiming, setup_s: float, batch: int,
                     shape: tuple[int, ...], reference_ms: float | None = None) -> Measurement:
        clocks = {"wall": raw.rounds_ms}
        if raw.cpu_rounds_ms:
            clocks["cpu"] = raw.cpu_rounds_ms
        reported = self.plan.clock
        return Measurement.from_samples(
            clocks[reported], self.plan.statistic, batch=batch, input_shape=shape,
            warmup_iters=raw.warmup_iters, warmup_s=raw.warmup_s, clock=reported,
            aux_rounds_ms={k: v for k, v in clocks.items() if k != reported}, device=self.spec,
            threads=self.plan.threads, precision=self.precision, setup_s=setup_s,
            timing_s=raw.timing_s, reference_ms=reference_ms, block_calls=raw.block_calls)
