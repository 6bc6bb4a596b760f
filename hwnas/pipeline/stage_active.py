"""Stage 3: measure where the predictor is unsure *and* near the budgets.

Candidates are scored by the ensemble's relative spread times their distance to
the nearest latency budget (``latency.active.near_weight``) and spread out
(``diverse``): the engines choose networks just under each budget, so that is
where a wrong prediction costs a round. Stops when the held-out share within
+-10% reaches the target or the measurement budget is spent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hwnas.pipeline.latency_model import factory_like, heldout_metrics, metrics_line
from hwnas.pipeline.stage_fit import PREDICTOR
from hwnas.pipeline.stages import Stage
from hwnas.pipeline.state import PipelineState

RULE = "diverse"


class ActiveStage(Stage):
    name = "active"

    def title(self, state: PipelineState) -> str:
        s = state.settings
        return (f"profile where the predictor is unsure, near the budgets (target: "
                f"{100 * s.target:.0f}% of held-out within +-10%, at most {s.active_measurements} "
                f"measurements)")

    def run(self, state: PipelineState) -> dict[str, Any]:
        s = state.settings
        fitted = state.heldout
        reason = None
        if s.predictor:
            reason = "skipped: a fitted predictor was given"
        elif s.active_measurements == 0:
            reason = "skipped: --active-measurements 0"
        elif fitted["within10"] >= s.target:
            reason = f"skipped: the held-out share is already {100 * fitted['within10']:.0f}%"
        if reason is not None:
            state.say("  " + reason)
            return {"reason": reason, "archs": [], "heldout": fitted, "rounds": [], "rule": RULE}
        from tqdm import tqdm

        from latency.active import active_profile

        bar = tqdm(total=s.active_measurements, desc="active profiling", unit="arch",
                   disable=not state.progress, dynamic_ncols=True, leave=False)
        start_n = len(state.archs)

        def on_round(r: Any) -> None:
            bar.n = min(s.active_measurements, r.measured - start_n)
            bar.set_postfix_str(f"+-10% {100 * r.within10:.0f}%", refresh=False)
            bar.refresh()

        try:
            outcome = active_profile(
                state.space, factory_like(state.predictor, state.space, state.meter, s.seed),
                lambda archs: state.meter.measure(archs, "active"), state.archs, state.ms,
                state.sets.pool, (state.sets.holdout, state.holdout_ms), batch=s.active_batch,
                n_measurements=s.active_measurements, target_within10=s.target, rule=RULE,
                near_ms=state.budgets or None, seed=s.seed, on_round=on_round)
        finally:
            bar.close()
        state.predictor = outcome.predictor
        state.predictor.save(state.path(PREDICTOR))
        state.archs, state.ms = list(outcome.archs), np.asarray(outcome.ms, dtype=float)
        rounds = pd.DataFrame([{"measured": r.measured, "held-out Spearman": r.spearman,
                                "within +-10%": r.within10, "MAPE %": r.mape} for r in outcome.rounds])
        state.say(rounds.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        state.heldout = heldout_metrics(state.predictor, state.sets.holdout, state.holdout_ms)
        new = [state.space.to_string(a) for a in state.archs[start_n:]]
        reason = ("reached the target" if outcome.reached_target
                  else "measurement budget spent before the target")
        state.say(f"  {reason}; {len(new)} measured by spread near the budgets. "
                  + metrics_line(state.heldout))
        return {"reason": reason, "archs": new, "heldout": state.heldout, "rule": RULE,
                "rounds": rounds.to_dict("records")}

    def restore(self, state: PipelineState, info: dict[str, Any]) -> None:
        from latency import predictors

        extra = [state.space.from_string(a) for a in info.get("archs", [])]
        if extra:
            state.archs = state.archs + extra
            state.ms = np.concatenate([state.ms, state.meter.measure(extra, "active")])
        state.predictor = predictors.load(state.path(PREDICTOR), space=state.space)
        state.heldout = dict(info["heldout"])
        state.say(f"  {info.get('reason', '')}")
        state.say("  " + metrics_line(state.heldout))
