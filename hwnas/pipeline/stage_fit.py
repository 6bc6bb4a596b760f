"""Stage 2: fit the latency predictor (or load the one given) and judge it on held-out
architectures it never saw.

Alone, the predictor is an MLP ensemble fitted on the first measurements. When the
store holds reference devices (:mod:`hwnas.pipeline.references`), the transfer
predictor is fitted too, both are scored on the same held-out set, printed side by
side, and the better one (share within +-10%, then Spearman) is kept -- chosen by
evidence, not by assumption. Which references were used, and why, is printed and
saved (``references.json``, and inside the transfer predictor's file).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from hwnas.pipeline.latency_model import heldout_metrics, make_predictor_factory, metrics_line
from hwnas.pipeline.stages import Stage
from hwnas.pipeline.state import PipelineState
from spaces.core import atomic_write

PREDICTOR = "predictor.pt"
REFERENCES = "references.json"


def fit_transfer(state: PipelineState, usable: list[Any]) -> Any:
    """The transfer predictor on the usable references (their predictors, fitted once when
    the run started) and this device's training measurements, labelled with this device."""
    from hwnas.pipeline.references import fit_reference_predictors
    from latency import predictors

    fitted = state.reference_predictors or fit_reference_predictors(
        state.meter.store, state.space, usable, state.meter.job.input_shape, state.settings.seed)
    model = predictors.create("transfer", state.space, seed=state.settings.seed,
                              references={r.key: fitted[r.key] for r in usable})
    model.fit(state.archs, state.ms)
    meter = state.meter
    return model.set_device(meter.device_id, meter.label, meter.fingerprint, meter.job.batch,
                            "x".join(map(str, meter.job.input_shape)))


class FitStage(Stage):
    name = "fit"

    def title(self, state: PipelineState) -> str:
        if state.settings.predictor:
            return f"load the fitted predictor {state.settings.predictor}"
        what = "the MLP ensemble" + (" and the transfer predictor" if state.references else "")
        return f"fit {what} on {len(state.sets.train)} measurements"

    def run(self, state: PipelineState) -> dict[str, Any]:
        from latency import predictors

        s = state.settings
        info: dict[str, Any] = {"predictor": PREDICTOR}
        if s.predictor:
            state.predictor = predictors.load(s.predictor, space=state.space,
                                              device=state.meter.device_id)
            state.archs, state.ms = [], state.train_ms
        else:
            state.archs, state.ms = list(state.sets.train), state.train_ms
            make = make_predictor_factory(state.space, state.meter, s.seed)
            state.predictor = make().fit(state.archs, state.ms)
            if state.references:
                info.update(self._compare(state))
        state.predictor.save(state.path(PREDICTOR))
        state.heldout = heldout_metrics(state.predictor, state.sets.holdout, state.holdout_ms)
        state.say("  " + metrics_line(state.heldout))
        info.update(heldout=state.heldout, kind=state.predictor.kind)
        return info

    def _compare(self, state: PipelineState) -> dict[str, Any]:
        """Judge the references, fit transfer, keep the better predictor on held-out."""
        from hwnas.pipeline.references import judge

        own = {state.space.to_string(a): float(v) for a, v in
               zip([*state.sets.train, *state.sets.holdout], [*state.train_ms, *state.holdout_ms])}
        refs = judge(state.meter.store, state.space, state.references, own)
        usable = [r for r in refs if r.used]
        table = pd.DataFrame([{"reference": r.label, "rows": r.rows, "overlap": r.overlap,
                               "Spearman": r.spearman, "used": "yes" if r.used else "no"}
                              for r in refs])
        state.say(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        record: dict[str, Any] = {"references": [r.to_json() for r in refs],
                                  "notices": list(state.reference_notices)}
        if not usable:
            record["chosen"] = "mlp"
            record["why"] = ("no reference shares at least 10 measured architectures with "
                             "this device: the plain ensemble is used")
            state.say(f"  {record['why']}")
        else:
            ensemble = state.predictor
            transfer = fit_transfer(state, usable)
            scores = {"mlp": heldout_metrics(ensemble, state.sets.holdout, state.holdout_ms),
                      "transfer": heldout_metrics(transfer, state.sets.holdout, state.holdout_ms)}
            side = pd.DataFrame([{"predictor": k, "held-out Spearman": v["spearman"],
                                  "within +-10%": v["within10"], "MAPE %": v["mape"]}
                                 for k, v in scores.items()])
            state.say(side.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            best = max(scores, key=lambda k: (scores[k]["within10"], scores[k]["spearman"]))
            state.predictor = transfer if best == "transfer" else ensemble
            record.update(chosen=best, scores=scores,
                          why=f"{best} is better on the held-out set "
                              f"({100 * scores[best]['within10']:.0f}% within +-10%)")
            state.say(f"  kept the {best} predictor: {record['why']}")
        atomic_write(state.path(REFERENCES), json.dumps(record, indent=2))
        return {"references": record}

    def restore(self, state: PipelineState, info: dict[str, Any]) -> None:
        from latency import predictors

        state.predictor = predictors.load(state.path(PREDICTOR), space=state.space)
        state.archs = [] if state.settings.predictor else list(state.sets.train)
        state.ms = state.train_ms
        state.heldout = dict(info["heldout"])
        state.say("  " + metrics_line(state.heldout))
