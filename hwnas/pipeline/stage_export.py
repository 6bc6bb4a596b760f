"""Stage 5: hand over one verified ONNX file per budget, with what it promises.

The file of each budget's network is the one the budget loop trained, exported,
checked and timed; here it is copied to ``front/<k>/model.onnx`` with the
budget's facts added to its metadata (``budget_ms``, ``meets_budget``,
``rounds``, the predicted latency) -- metadata only, so the stamped latency is
still a measurement of this graph. ``pareto.csv`` (paths relative to the run
folder), ``pareto.png``, ``audit.png`` and the final table follow.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from hwnas.pipeline.stages import Stage
from hwnas.pipeline.state import PipelineState
from spaces.core import atomic_write

FRONT_COLUMNS = ("k", "budget_ms", "arch", "accuracy", "predicted_ms", "measured_ms",
                 "meets_budget", "rounds", "margin", "macs", "params", "onnx")


class ExportStage(Stage):
    name = "export"

    def title(self, state: PipelineState) -> str:
        return f"export one verified, measured ONNX file per budget ({len(state.budgets)})"

    def run(self, state: PipelineState) -> dict[str, Any]:
        from hwnas.export import stamp

        s = state.settings
        rows = []
        for k, row in enumerate(state.choices.itertuples()):
            rel = f"front/{k}/model.onnx"
            target = state.path(rel)
            stamp(state.path(row.network) / "model.onnx",
                  {"budget_ms": float(row.budget_ms), "meets_budget": bool(row.meets_budget),
                   "rounds": int(row.rounds), "predicted_latency_ms": float(row.predicted_ms),
                   "accuracy": float(row.accuracy), "pipeline_run": str(state.run_path),
                   "metrics": {"budget_margin": float(row.margin)}}, target)
            record = {"space": state.space.key, "space_name": state.space.name,
                      "space_kwargs": s.space_kwargs, "arch": row.arch,
                      "choices": list(state.space.from_string(row.arch).choices),
                      "accuracy": float(row.accuracy), "budget_ms": float(row.budget_ms),
                      "measured_ms": float(row.measured_ms), "predicted_ms": float(row.predicted_ms),
                      "meets_budget": bool(row.meets_budget), "rounds": int(row.rounds),
                      "margin": float(row.margin), "num_classes": state.data.num_classes,
                      "input_size": state.input_size, "onnx": "model.onnx"}
            atomic_write(target.parent / "arch.json", json.dumps(record, indent=2))
            rows.append({"k": k, "budget_ms": row.budget_ms, "arch": row.arch,
                         "accuracy": row.accuracy, "predicted_ms": row.predicted_ms,
                         "measured_ms": row.measured_ms, "meets_budget": bool(row.meets_budget),
                         "rounds": int(row.rounds), "margin": row.margin, "macs": row.macs,
                         "params": row.params, "onnx": rel})
        state.front = pd.DataFrame(rows, columns=list(FRONT_COLUMNS))
        atomic_write(state.path("pareto.csv"), state.front.to_csv(index=False))
        self._plots(state)
        self._show(state)
        return {"front": len(rows), "met": int(state.front["meets_budget"].sum())}

    def restore(self, state: PipelineState, info: dict[str, Any]) -> None:
        state.front = pd.read_csv(state.path("pareto.csv"))
        self._show(state)

    @staticmethod
    def _plots(state: PipelineState) -> None:
        from hwnas import plots
        from hwnas.objectives import parse_objectives
        from hwnas.pipeline.audit import plot_audit

        s = state.settings
        holdout = pd.DataFrame({"measured_ms": state.holdout_ms,
                                "predicted_ms": state.predictor.predict(state.sets.holdout)})
        plot_audit(state.candidates, holdout, state.path("audit.png"), s.audit_tolerance,
                   f"{state.space.key} on {state.meter.label}")
        objectives = parse_objectives(["accuracy", "latency_ms"])
        table = state.candidates.drop_duplicates("arch").rename(columns={"measured_ms": "latency_ms"})
        plots.plot_front(table, objectives, state.path("pareto.png"),
                         f"{state.space.key} / {s.dataset} / {s.engine} / files measured on "
                         f"{state.meter.label}")

    @staticmethod
    def _show(state: PipelineState) -> None:
        show = state.front.copy()
        show["meets_budget"] = ["yes" if m else "NO" for m in show["meets_budget"]]
        state.say(show.drop(columns=["margin"]).to_string(
            index=False, float_format=lambda v: f"{v:.4g}"))
        state.say("  measured_ms: p10 of >=1 ms blocks of back-to-back calls of the file, "
                  "interleaved rounds; meets_budget: measured_ms * (1 + margin) <= budget_ms "
                  f"(margin {100 * float(state.front['margin'].iloc[0]):.1f}%)"
                  if len(state.front) else "  no budgets")
