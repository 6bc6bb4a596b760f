"""Stage 4: the closed loop that makes a budget hold when measured.

Per round, for every latency budget not yet settled:

1. the engine chooses a network for the *target* ``budget / (1 + margin)`` with the
   current predictor (its prediction is recorded before anything is measured);
2. the network is trained alone and exported as the file that would ship
   (``candidates.prepare``), and all of the round's new files are timed interleaved
   on the device (``DeviceMeter.measure_files``); each measurement goes into the store
   and is stamped into its file;
3. the audit judges each candidate (``audit.judge``): the budget is settled when the
   file meets it (``measured * (1 + margin) <= budget``) and the prediction was within
   the tolerance (or the engine offered a network it had already measured);
4. if any candidate missed, the predictor is refitted on everything stored (but the
   held-out set) and later rounds search with it; a network that broke its budget is
   never offered again for that budget (the supernet steps to a cheaper neighbour).

After ``max_rounds``, each budget is answered by the most accurate measured
candidate -- of any budget, any round -- that meets it; if none does, by the
fastest one, labelled ``meets_budget = False`` and reported in one line.
Every round is recorded in ``loop.json`` as it finishes, so a resumed run
continues with the next round.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from hwnas.pipeline.audit import audit_text, budget_margin, judge, refit
from hwnas.pipeline.candidates import Candidate, build_module, prepare
from hwnas.pipeline.engines import make_engine
from hwnas.pipeline.measuring import NetworkToTime
from hwnas.pipeline.stages import Stage
from hwnas.pipeline.state import PipelineState
from spaces.core import atomic_write

LOOP = "loop.json"
TIMING = "timing.json"  # a candidate file's Measurement, beside it
REFIT = "predictor_refit.pt"
CHOICE_COLUMNS = ("budget_ms", "arch", "accuracy", "predicted_ms", "measured_ms", "error",
                  "meets_budget", "rounds", "margin", "macs", "params", "network")


def _load_loop(state: PipelineState) -> dict[str, Any]:
    path = state.path(LOOP)
    if not path.is_file():
        return {"rounds_done": 0, "rows": [], "refits": [], "predictor": None}
    from hwnas.pipeline.stages import StageLogError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise ValueError("not a loop record")
    except (OSError, ValueError) as error:
        raise StageLogError(f"cannot read {path}: {error}") from None
    return data


def _settled(rows: list[dict[str, Any]], budget: float) -> bool:
    mine = [r for r in rows if r["budget_ms"] == budget]
    if not mine:
        return False
    last = mine[-1]
    return bool(last["meets_budget"] and (not last["missed"] or last["repeated"]))


def choose_per_budget(rows: list[dict[str, Any]], budgets: list[float], margin: float,
                      tolerance: float) -> pd.DataFrame:
    """One row per budget: the most accurate measured candidate (of any budget and round)
    that meets it, else the fastest candidate, not meeting it."""
    measured = {}
    for r in rows:  # first time each network was proposed: its prediction before measuring
        measured.setdefault(r["arch"], r)
    out = []
    for budget in budgets:
        pool = [dict(r, **judge(r["predicted_ms"], r["measured_ms"], budget, margin, tolerance))
                for r in measured.values()]
        fits = [r for r in pool if r["meets_budget"]]
        if fits:
            best = max(fits, key=lambda r: (r["accuracy"], -r["measured_ms"]))
        else:
            best = min(pool, key=lambda r: r["measured_ms"])
        out.append({"budget_ms": budget, "arch": best["arch"], "accuracy": best["accuracy"],
                    "predicted_ms": best["predicted_ms"], "measured_ms": best["measured_ms"],
                    "error": best["error"], "meets_budget": bool(best["meets_budget"]),
                    "rounds": len({r["round"] for r in rows if r["budget_ms"] == budget}),
                    "margin": margin, "macs": best["macs"], "params": best["params"],
                    "network": best["network"]})
    return pd.DataFrame(out, columns=list(CHOICE_COLUMNS))


class BudgetStage(Stage):
    name = "budgets"

    def title(self, state: PipelineState) -> str:
        s = state.settings
        how = "inherit weights" if s.engine in ("oneshot", "instanas") else "train alone"
        return (f"per budget: search ({s.engine}) -> {how} -> export -> time the file -> "
                f"audit (up to {s.max_rounds} rounds) for {', '.join(f'{b:.4g}' for b in state.budgets)} ms")

    def run(self, state: PipelineState) -> dict[str, Any]:
        from latency import predictors

        s = state.settings
        loop = _load_loop(state)
        state.margin = budget_margin(state.meter.reference_drift(), s.margin)
        state.say(f"  margin {100 * state.margin:.1f}% ("
                  + ("given" if s.margin is not None else "the host's drift measured on the "
                     "reference network over this run") + "): a network meets budget B when its "
                  f"file measures at most B / {1 + state.margin:.3f}")
        if loop["predictor"]:
            state.predictor = predictors.load(state.path(loop["predictor"]), space=state.space)
        engine = make_engine(state)
        rows: list[dict[str, Any]] = list(loop["rows"])
        measured = {r["arch"]: r for r in rows}
        for rnd in range(int(loop["rounds_done"]) + 1, s.max_rounds + 1):
            budgets = [b for b in state.budgets if not _settled(rows, b)]
            if not budgets:
                break
            targets = [b / (1.0 + state.margin) for b in budgets]
            avoid = [{r["arch"] for r in rows if r["budget_ms"] == b and not r["meets_budget"]}
                     for b in budgets]
            choices = engine.choose(targets, state.predictor, avoid)
            fresh = self._make_real(state, [c.arch for c in choices], measured)
            new_rows = []
            for budget, choice in zip(budgets, choices):
                text = state.space.to_string(choice.arch)
                info = measured[text]
                verdict = judge(choice.predicted_ms, info["measured_ms"], budget, state.margin,
                                s.audit_tolerance)
                new_rows.append({**info, "budget_ms": budget, "round": rnd,
                                 "target_ms": choice.target_ms, "predicted_ms": choice.predicted_ms,
                                 "expected_ms": choice.expected_ms, "how": choice.extra.get("how"),
                                 "repeated": text not in fresh, **verdict, "refit": False})
            rows += new_rows
            misses = [r for r in new_rows if r["missed"] or not r["meets_budget"]]
            if misses:
                model, record = refit(state)
                record["round"] = rnd
                loop["refits"].append(record)
                state.say(f"  round {rnd}: {len(misses)} candidate(s) missed the tolerance or the "
                          f"budget; {record['message']}")
                if model is not None:
                    model.save(state.path(REFIT))
                    state.predictor, loop["predictor"] = model, REFIT
                    for r in new_rows:
                        r["refit"] = True
            loop.update(rounds_done=rnd, rows=rows)
            atomic_write(state.path(LOOP), json.dumps(loop, indent=2, default=str))
        return self._finish(state, loop)

    def restore(self, state: PipelineState, info: dict[str, Any]) -> None:
        from latency import predictors

        loop = _load_loop(state)
        state.margin = float(info["margin"])
        if loop["predictor"]:
            state.predictor = predictors.load(state.path(loop["predictor"]), space=state.space)
        self._finish(state, loop)

    # ---- pieces -------------------------------------------------------------------------
    def _make_real(self, state: PipelineState, archs: list[Any],
                   measured: dict[str, dict[str, Any]]) -> set[str]:
        """Train, export and time the networks this run has not measured yet; returns the
        arch strings made real now. A file's measurement is kept beside it
        (``timing.json``) as soon as it is taken, so a resumed run never times it again."""
        from tqdm import tqdm

        from devices import Measurement
        from hwnas.export import latency_fields, stamp

        todo: dict[str, Any] = {}
        for arch in archs:
            text = state.space.to_string(arch)
            if text not in measured and text not in todo:
                todo[text] = arch
        candidates: list[Candidate] = []
        for arch in tqdm(list(todo.values()), desc="train + export", unit="net",
                         disable=not state.progress, dynamic_ncols=True, leave=False):
            candidates.append(prepare(state, arch))
        kept = {c.arch_string: Measurement.from_dict(json.loads((c.folder / TIMING).read_text()))
                for c in candidates if (c.folder / TIMING).is_file()}
        fresh = [c for c in candidates if c.arch_string not in kept]
        timed = state.meter.measure_files(
            [NetworkToTime(c.arch, c.onnx, lambda c=c: build_module(state, c)) for c in fresh])
        on = "file" if state.meter.measures_files else "module"
        for c, m in zip(fresh, timed):
            atomic_write(c.folder / TIMING, json.dumps(m.to_dict()))
            stamp(c.onnx, latency_fields(m, state.meter.label, state.meter.device_id, on))
            kept[c.arch_string] = m
        for c in candidates:
            m = kept[c.arch_string]
            measured[c.arch_string] = {
                "arch": c.arch_string, "accuracy": c.accuracy, "measured_ms": float(m.latency_ms),
                "median_ms": float(m.median_ms), "block_calls": int(m.block_calls),
                "reference_ms": m.reference_ms, "macs": c.macs, "params": c.params,
                "network": str(c.folder.relative_to(state.run_path))}
        return set(todo)

    def _finish(self, state: PipelineState, loop: dict[str, Any]) -> dict[str, Any]:
        s = state.settings
        rows = loop["rows"]
        audit = pd.DataFrame(rows)
        state.candidates = audit
        atomic_write(state.path("audit.csv"), audit.to_csv(index=False))
        state.choices = choose_per_budget(rows, state.budgets, state.margin, s.audit_tolerance)
        atomic_write(state.path("history.csv"), state.choices.to_csv(index=False))
        state.refits = sum(1 for r in loop["refits"] if r.get("refitted"))
        state.say(audit_text(audit, s.audit_tolerance))
        for row in state.choices.itertuples():
            if not row.meets_budget:
                state.say(f"  budget {row.budget_ms:.4g} ms NOT met after {row.rounds} round(s): "
                          f"the fastest network measured {row.measured_ms:.4g} ms "
                          f"(needs <= {row.budget_ms / (1 + state.margin):.4g} ms with the "
                          f"{100 * state.margin:.1f}% margin)")
        return {"margin": state.margin, "rounds": int(loop["rounds_done"]),
                "candidates": len({r["arch"] for r in rows}), "refits": state.refits,
                "met": int(state.choices["meets_budget"].sum()), "budgets": len(state.budgets)}
