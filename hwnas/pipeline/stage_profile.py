"""Stage 1: measure random training and held-out architectures; fix the latency budgets.

The budgets are fixed here, from the first measurements (explicit ``--budget
latency_ms<=X``, else ``--sweep`` budgets spread geometrically inside the
measured range), so that active profiling (stage 3) can spend its measurements
near them: that is where the engines will decide.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hwnas.pipeline.choosing import latency_budgets
from hwnas.pipeline.stages import Stage
from hwnas.pipeline.state import PipelineState


class ProfileStage(Stage):
    name = "profile"

    def _train(self, state: PipelineState) -> list[Any]:
        return [] if state.settings.predictor else list(state.sets.train)

    def title(self, state: PipelineState) -> str:
        return (f"profile {len(self._train(state))} training + {len(state.sets.holdout)} held-out "
                f"random architectures on {state.meter.label}")

    def _measure(self, state: PipelineState) -> None:
        train = self._train(state)
        state.train_ms = state.meter.measure(train, "profile") if train else np.zeros(0)
        state.holdout_ms = state.meter.measure(state.sets.holdout, "held-out")

    def run(self, state: PipelineState) -> dict[str, Any]:
        before = len(state.meter.stored())
        self._measure(state)
        everything = np.concatenate([state.train_ms, state.holdout_ms])
        state.budgets = latency_budgets(state.settings, everything)
        info = {"train": len(self._train(state)), "holdout": len(state.sets.holdout),
                "measured_now": len(state.meter.stored()) - before,
                "min_ms": float(everything.min()), "median_ms": float(np.median(everything)),
                "max_ms": float(everything.max()), "device": state.meter.label,
                "device_id": state.meter.device_id, "store": str(state.meter.store.path),
                "budgets": state.budgets,
                "train_archs": [state.space.to_string(a) for a in self._train(state)],
                "holdout_archs": [state.space.to_string(a) for a in state.sets.holdout]}
        self._show(state, info)
        return info

    def restore(self, state: PipelineState, info: dict[str, Any]) -> None:
        self._measure(state)  # the store answers: nothing is timed again
        state.budgets = [float(b) for b in info["budgets"]]
        self._show(state, info)

    @staticmethod
    def _show(state: PipelineState, info: dict[str, Any]) -> None:
        state.say(pd.DataFrame([{"archs": info["train"] + info["holdout"],
                                 "newly measured": info["measured_now"],
                                 "min ms": info["min_ms"], "median ms": info["median_ms"],
                                 "max ms": info["max_ms"], "store": info["store"]}])
                  .to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        state.say(f"  latency budgets: {', '.join(f'{b:.4g}' for b in state.budgets)} ms")
