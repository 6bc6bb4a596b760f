"""Stage 2: fit the MLP-ensemble latency predictor (or load the one given) and judge it
on the held-out architectures it never saw."""

from __future__ import annotations

from typing import Any

from hwnas.pipeline.latency_model import heldout_metrics, make_predictor_factory, metrics_line
from hwnas.pipeline.stages import Stage
from hwnas.pipeline.state import PipelineState

PREDICTOR = "predictor.pt"


class FitStage(Stage):
    name = "fit"

    def title(self, state: PipelineState) -> str:
        if state.settings.predictor:
            return f"load the fitted predictor {state.settings.predictor}"
        return f"fit the MLP-ensemble latency predictor on {len(state.sets.train)} measurements"

    def run(self, state: PipelineState) -> dict[str, Any]:
        from latency import predictors

        s = state.settings
        if s.predictor:
            state.predictor = predictors.load(s.predictor, space=state.space,
                                              device=state.meter.device_id)
            state.archs, state.ms = [], state.train_ms
        else:
            state.archs, state.ms = list(state.sets.train), state.train_ms
            make = make_predictor_factory(state.space, state.meter, s.seed)
            state.predictor = make().fit(state.archs, state.ms)
        state.predictor.save(state.path(PREDICTOR))
        state.heldout = heldout_metrics(state.predictor, state.sets.holdout, state.holdout_ms)
        state.say("  " + metrics_line(state.heldout))
        return {"heldout": state.heldout, "predictor": PREDICTOR}

    def restore(self, state: PipelineState, info: dict[str, Any]) -> None:
        from latency import predictors

        state.predictor = predictors.load(state.path(PREDICTOR), space=state.space)
        state.archs = [] if state.settings.predictor else list(state.sets.train)
        state.ms = state.train_ms
        state.heldout = dict(info["heldout"])
        state.say("  " + metrics_line(state.heldout))
