"""A deterministic stand-in device for pipeline tests: latency = OFFSET + SCALE * MACs.

Real CPU timings on a shared 2-core test machine move by tens of percent, so the
budget loop's logic (miss -> refit -> search again -> meet) is tested on a device
whose every "measurement" is exact: a torch module costs its counted MACs, an
exported ONNX file the MACs stamped in its hwnas metadata (every file hwnas
exports carries them). Everything else -- the timing protocol, the store, the
fingerprint, the pipeline -- is the real code.
"""

from __future__ import annotations

from typing import Any

import devices
from devices.base import Profiler

SPEC = "test:macs"
OFFSET_MS, SCALE_MS_PER_MAC = 0.01, 1e-7
# a second device, for transfer between devices: slower per MAC, smaller fixed cost
SPEC2 = "test:macs2"
OFFSET2_MS, SCALE2_MS_PER_MAC = 0.004, 1.6e-7


def latency_of(macs: float, offset: float = OFFSET_MS, scale: float = SCALE_MS_PER_MAC) -> float:
    return offset + scale * float(macs)


class _Constant:
    def __init__(self, ms: float) -> None:
        self.ms = ms

    def time_once(self) -> float:
        return self.ms

    def time_block(self, k: int) -> float:
        return self.ms * k

    def close(self) -> None:
        pass


class MacsProfiler(Profiler):
    backend, target = "test", "macs"
    measures_onnx = True
    offset, scale = OFFSET_MS, SCALE_MS_PER_MAC

    def __init__(self, index: int | None = None, **settings: Any) -> None:
        super().__init__(None, **settings)

    @property
    def spec(self) -> str:
        return f"{self.backend}:{self.target}"

    def _fingerprint_fields(self) -> dict[str, Any]:
        return {"model": f"{self.offset} ms + {self.scale} ms/MAC"}

    def _prepare(self, module: Any, input_shape: tuple[int, ...], batch: int) -> _Constant:
        from spaces.flops import count_cost

        return _Constant(latency_of(count_cost(module, input_shape).macs, self.offset, self.scale) * batch)

    def _prepare_onnx(self, model: bytes, input_shape: tuple[int, ...], batch: int) -> _Constant:
        import onnx

        from hwnas import onnx_meta

        meta = onnx_meta.read_metadata(onnx.load_model_from_string(model))
        return _Constant(latency_of(meta["macs"], self.offset, self.scale) * batch)


class OtherMacsProfiler(MacsProfiler):
    target = "macs2"
    offset, scale = OFFSET2_MS, SCALE2_MS_PER_MAC


devices.register(SPEC, MacsProfiler)
devices.register(SPEC2, OtherMacsProfiler)
