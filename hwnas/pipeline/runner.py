"""The whole pipeline in one run folder: profile -> fit -> active profiling -> search ->
retrain + measure -> audit -> export, each stage resumable.

Nothing is simulated: latencies are measured on the device (and stored), the
predictor learns from those measurements, the engines search with the
predictor's latency, and every chosen network is trained alone, measured for
real and exported as a verified ONNX model.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from hwnas.pipeline.settings import BadSetting, PipelineSettings
from hwnas.pipeline.stages import StageLog

FRONT_COLUMNS = ("k", "arch", "accuracy", "measured_ms", "predicted_ms", "macs", "params", "onnx")


@dataclass
class PipelineResult:
    """What a pipeline run produced: the front as a table and where everything is."""

    run_dir: Path
    front: pd.DataFrame       # one row per exported network: FRONT_COLUMNS
    chosen: pd.DataFrame      # every chosen network (one per budget, deduplicated)
    audit: pd.DataFrame       # predicted vs measured latency of the chosen networks
    heldout: dict[str, Any]   # the predictor's held-out figures (after active profiling)
    refitted: bool            # the audit refitted the predictor
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def paths(self) -> dict[str, Path]:
        names = {"config": "config.json", "store": "lat.sqlite", "predictor": "predictor.pt",
                 "chosen": "history.csv", "front": "pareto.csv", "pareto_plot": "pareto.png",
                 "audit": "audit.csv", "audit_plot": "audit.png"}
        out = {k: self.run_dir / v for k, v in names.items() if (self.run_dir / v).exists()}
        out.update({f"onnx_{int(r.k)}": Path(r.onnx) for r in self.front.itertuples()})
        return out


class Pipeline:
    """One run of the pipeline; ``run()`` executes the stages not yet finished."""

    def __init__(self, settings: PipelineSettings, out: str | Path | None = None,
                 resume: bool = False, progress: bool = True,
                 log: Callable[[str], None] | None = None) -> None:
        import spaces
        from hwnas.pipeline.choosing import split_budgets
        from hwnas.runs import RunFolder, RunFolderError, default_run_dir

        if resume and out is None:
            raise RunFolderError("--resume needs --out RUN_DIR, the run to continue")
        self.run_dir = RunFolder(out or default_run_dir())
        self.progress = progress
        self._log = log or (lambda text: print(text, flush=True))
        self.settings = settings
        # everything that can fail on bad input fails here, before the folder is touched
        self.space = spaces.get(settings.space, **settings.space_kwargs)
        if settings.engine == "supernet" and settings.space != "fbnetv2":
            raise BadSetting(f"the supernet engine searches the fbnetv2 space only; use "
                             f"--strategy nao for {settings.space!r}")
        split_budgets(settings)
        if settings.predictor and not Path(settings.predictor).is_file():
            raise BadSetting(f"predictor file {settings.predictor} not found")
        from hwnas.evaluators import datasets
        from hwnas.pipeline.measuring import DeviceMeter

        self.input_size = self.space.default_input_size
        self.data = datasets.load(settings.dataset, self.input_size, self.space.in_channels,
                                  root=settings.data_root, max_samples=settings.max_samples,
                                  seed=settings.seed)
        from latency.store import MeasurementStore

        # a given store that is not one (corrupt, foreign, unwritable) fails before the folder
        self.store = MeasurementStore(settings.db) if settings.db else None
        # an unknown or unavailable device fails here (one sentence), not mid-run
        self.meter = DeviceMeter(self.space, settings.device, None, quick=settings.quick_timing,
                                 progress=progress)
        self.config = {"pipeline": settings.to_json(), "space": self.space.key}
        if resume and (self.run_dir / "config.json").is_file():
            self.run_dir.check_resumable(self.config)
        elif not resume:
            self.run_dir.check_new()
        self.resume = resume
        self.seconds: dict[str, float] = {}

    # ---- plumbing ---------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        self._log(text)

    def heading(self, number: int, title: str) -> None:
        self.say(f"\n[{number}/7] {title}")

    def _open(self) -> None:
        """The store, opened once the folder may be written."""
        from latency.store import MeasurementStore

        if self.store is None:
            self.store = MeasurementStore(self.run_dir / "lat.sqlite")
        self.meter.store = self.store
        self.stages = StageLog(self.run_dir.path)

    def run(self) -> PipelineResult:
        import torch

        torch.set_num_threads(1)
        self.run_dir.start(self.config, resume=self.resume)
        self._open()
        if self.resume and self.stages.finished():
            self.say(f"resuming {self.run_dir.path}: finished stages "
                     f"{', '.join(self.stages.finished())}")
        s = self.settings
        self.say(f"hwnas pipeline: {self.space.key} on {s.dataset}, device {self.meter.label}, "
                 f"engine {s.engine}, run folder {self.run_dir.path}")
        from hwnas.pipeline.latency_model import draw_sets

        self.sets = draw_sets(self.space, s.initial, s.holdout, s.pool, s.seed)
        steps = [("profile", self.stage_profile), ("fit", self.stage_fit),
                 ("active", self.stage_active), ("search", self.stage_search),
                 ("retrain", self.stage_retrain), ("audit", self.stage_audit),
                 ("export", self.stage_export)]
        for number, (name, step) in enumerate(steps, 1):
            start = time.perf_counter()
            step(number)
            self.seconds[name] = time.perf_counter() - start
        total = sum(self.seconds.values())
        self.say(f"\ndone in {total:.0f} s ("
                 + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()) + ")")
        self.say(f"run folder: {self.run_dir.path}")
        return PipelineResult(self.run_dir.path, self.front, self.chosen, self.audit,
                              self.stages.info("active").get("heldout")
                              or self.stages.info("fit").get("heldout", {}),
                              bool(self.stages.info("audit").get("refitted")), dict(self.seconds))

    # ---- stage 1 ----------------------------------------------------------------------
    def stage_profile(self, number: int) -> None:
        s = self.settings
        train = [] if s.predictor else self.sets.train
        self.heading(number, f"profile {len(train)} training + {len(self.sets.holdout)} held-out "
                             f"random architectures on {self.meter.label}")
        if self.stages.done("profile"):
            self.say("  (stored)")
        before = len(self.meter.stored())
        self.train_ms = self.meter.measure(train, "profile") if train else np.zeros(0)
        self.holdout_ms = self.meter.measure(self.sets.holdout, "held-out")
        if not self.stages.done("profile"):
            everything = np.concatenate([self.train_ms, self.holdout_ms])
            info = {"train": len(train), "holdout": len(self.sets.holdout),
                    "measured_now": len(self.meter.stored()) - before,
                    "min_ms": float(everything.min()), "median_ms": float(np.median(everything)),
                    "max_ms": float(everything.max()), "device": self.meter.label,
                    "device_id": self.meter.device_id, "store": str(self.store.path)}
            self.stages.finish("profile", info)
        info = self.stages.info("profile")
        self.say(pd.DataFrame([{"archs": info["train"] + info["holdout"],
                                "newly measured": info["measured_now"],
                                "min ms": info["min_ms"], "median ms": info["median_ms"],
                                "max ms": info["max_ms"], "store": info["store"]}])
                 .to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    # ---- stage 2 ----------------------------------------------------------------------
    def _predictor_path(self) -> Path:
        return self.run_dir / "predictor.pt"

    def stage_fit(self, number: int) -> None:
        from latency import predictors
        from hwnas.pipeline.latency_model import heldout_metrics, make_predictor_factory, metrics_line

        s = self.settings
        path = self._predictor_path()
        if s.predictor:
            self.heading(number, f"load the fitted predictor {s.predictor}")
        else:
            self.heading(number, f"fit the MLP-ensemble latency predictor on {len(self.sets.train)} "
                                 f"measurements")
        if self.stages.done("fit") and path.is_file():
            self.predictor = predictors.load(path, space=self.space)
        elif s.predictor:
            self.predictor = predictors.load(s.predictor, space=self.space, device=self.meter.device_id)
            self.predictor.save(path)
        else:
            make = make_predictor_factory(self.space, self.meter, s.seed)
            self.predictor = make().fit(self.sets.train, self.train_ms)
            self.predictor.save(path)
        metrics = heldout_metrics(self.predictor, self.sets.holdout, self.holdout_ms)
        if not self.stages.done("fit"):
            self.stages.finish("fit", {"heldout": metrics, "predictor": path.name})
        self.say("  " + metrics_line(metrics))

    # ---- stage 3 ----------------------------------------------------------------------
    def stage_active(self, number: int) -> None:
        from latency import predictors
        from hwnas.pipeline.latency_model import heldout_metrics, make_predictor_factory, metrics_line

        s = self.settings
        self.heading(number, f"profile where the predictor is unsure (target: {100 * s.target:.0f}% "
                             f"of held-out within +-10%, at most {s.active_budget} measurements)")
        self.active_archs = list(self.sets.train)
        self.active_ms = np.asarray(self.train_ms, dtype=float)
        if self.stages.done("active"):
            info = self.stages.info("active")
            extra = [self.space.from_string(a) for a in info.get("archs", [])]
            if extra:
                self.active_archs += extra
                self.active_ms = np.concatenate([self.active_ms, self.meter.measure(extra, "active")])
            self.predictor = predictors.load(self._predictor_path(), space=self.space)
            self.say(f"  (stored) {info.get('reason', '')}")
            self.say("  " + metrics_line(info["heldout"]))
            return
        fitted = self.stages.info("fit")["heldout"]
        reason = None
        if s.predictor:
            reason = "skipped: a fitted predictor was given"
        elif s.active_budget == 0:
            reason = "skipped: --active-budget 0"
        elif fitted["within10"] >= s.target:
            reason = f"skipped: the held-out share is already {100 * fitted['within10']:.0f}%"
        if reason is not None:
            self.stages.finish("active", {"reason": reason, "archs": [], "heldout": fitted, "rounds": []})
            self.say("  " + reason)
            return
        from tqdm import tqdm

        from latency.active import active_profile

        bar = tqdm(total=s.active_budget, desc="active profiling", unit="arch",
                   disable=not self.progress, dynamic_ncols=True, leave=False)
        start_n = len(self.sets.train)

        def on_round(r: Any) -> None:
            bar.n = min(s.active_budget, r.measured - start_n)
            bar.set_postfix_str(f"+-10% {100 * r.within10:.0f}%", refresh=False)
            bar.refresh()

        try:
            outcome = active_profile(
                self.space, make_predictor_factory(self.space, self.meter, s.seed),
                lambda archs: self.meter.measure(archs, "active"), self.sets.train, self.train_ms,
                self.sets.pool, (self.sets.holdout, self.holdout_ms), batch=s.active_batch,
                budget=s.active_budget, target_within10=s.target, strategy="diverse",
                seed=s.seed, on_round=on_round)
        finally:
            bar.close()
        self.predictor = outcome.predictor
        self.predictor.save(self._predictor_path())
        self.active_archs, self.active_ms = list(outcome.archs), np.asarray(outcome.ms, dtype=float)
        rounds = pd.DataFrame([{"measured": r.measured, "held-out Spearman": r.spearman,
                                "within +-10%": r.within10, "MAPE %": r.mape} for r in outcome.rounds])
        self.say(rounds.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        metrics = heldout_metrics(self.predictor, self.sets.holdout, self.holdout_ms)
        new = [self.space.to_string(a) for a in self.active_archs[len(self.sets.train):]]
        reason = ("reached the target" if outcome.reached_target
                  else "measurement budget spent before the target")
        self.stages.finish("active", {"reason": reason, "archs": new, "heldout": metrics,
                                      "rounds": rounds.to_dict("records")})
        self.say(f"  {reason}; {len(new)} measured by spread. " + metrics_line(metrics))

    # ---- stage 4 ----------------------------------------------------------------------
    def stage_search(self, number: int) -> None:
        from hwnas.pipeline.choosing import choose_nao, choose_supernet, latency_budgets

        s = self.settings
        profiled = np.concatenate([self.active_ms, self.holdout_ms])
        budgets = latency_budgets(s, profiled)
        self.heading(number, f"search with the {s.engine} under latency budgets "
                             f"{', '.join(f'{b:.3g}' for b in budgets)} ms"
                             + (f" and {', '.join(b for b in s.budgets if b.startswith('macs'))}"
                                if any(b.startswith("macs") for b in s.budgets) else ""))
        if self.stages.done("search"):
            self.picks = self.stages.info("search")["chosen"]
            self.say("  (stored)")
        else:
            from tqdm import tqdm

            if s.engine == "supernet":
                bar = tqdm(total=len(budgets), desc="supernet budgets", unit="budget",
                           disable=not self.progress, dynamic_ncols=True, leave=False)
                try:
                    self.picks = choose_supernet(self.space, self.data, self.input_size,
                                                 self.predictor, budgets, s,
                                                 on_budget=lambda row: bar.update(1))
                finally:
                    bar.close()
            else:
                self.picks = choose_nao(self.space, self.data, self.input_size, self.predictor,
                                        budgets, s, self.run_dir / "nao_cache.jsonl",
                                        progress=self.progress)
            self.stages.finish("search", {"budgets": budgets, "chosen": self.picks})
        table = pd.DataFrame(self.picks)[["budget_ms", "predicted_ms", "arch"]]
        self.say(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    # ---- stage 5 ----------------------------------------------------------------------
    def stage_retrain(self, number: int) -> None:
        from tqdm import tqdm

        from hwnas.pipeline.retraining import network_dir, retrain

        s = self.settings
        archs = list(dict.fromkeys(p["arch"] for p in self.picks))
        self.heading(number, f"retrain {len(archs)} chosen network(s) standalone ({s.retrain_epochs} "
                             f"epochs on {s.dataset}) and measure them on {self.meter.label}")
        results = []
        for i, text in enumerate(tqdm(archs, desc="retrain", unit="net", disable=not self.progress,
                                      dynamic_ncols=True, leave=False)):
            results.append(retrain(self.space, self.space.from_string(text),
                                   network_dir(self.run_dir.path, i), dataset=s.dataset,
                                   epochs=s.retrain_epochs, input_size=self.input_size, seed=s.seed,
                                   root=s.data_root, max_samples=s.max_samples))
        measured = self.meter.measure([self.space.from_string(a) for a in archs], "measure chosen")
        rows = []
        for i, (text, result, ms) in enumerate(zip(archs, results, measured)):
            arch = self.space.from_string(text)
            picks = [p for p in self.picks if p["arch"] == text]
            cost = self.space.cost(arch, self.input_size, self.data.num_classes)
            rows.append({"network": i, "arch": text,
                         "budget_ms": ";".join(f"{p['budget_ms']:.4g}" for p in picks),
                         "accuracy": float(result["accuracy"]), "measured_ms": float(ms),
                         "predicted_ms": float(self.predictor.predict([arch])[0]),
                         "macs": int(cost.macs), "params": int(cost.params),
                         "weights": result["weights"]})
        self.chosen = pd.DataFrame(rows)
        self.run_dir.write_history(self.chosen)
        if not self.stages.done("retrain"):
            self.stages.finish("retrain", {"networks": len(rows)})
        self.say(self.chosen.drop(columns=["weights"]).to_string(
            index=False, float_format=lambda v: f"{v:.3f}"))

    # ---- stage 6 ----------------------------------------------------------------------
    def stage_audit(self, number: int) -> None:
        from hwnas.pipeline.audit import audit_frame, audit_text, plot_audit
        from hwnas.pipeline.latency_model import heldout_metrics, make_predictor_factory, metrics_line

        s = self.settings
        self.heading(number, "audit: predicted vs measured latency of every chosen network")
        self.audit = audit_frame(self.chosen, s.audit_tolerance)
        self.audit.to_csv(self.run_dir / "audit.csv", index=False)
        holdout = pd.DataFrame({"measured_ms": self.holdout_ms,
                                "predicted_ms": self.predictor.predict(self.sets.holdout)})
        plot_audit(self.audit, holdout, self.run_dir / "audit.png", s.audit_tolerance,
                   f"{self.space.key} on {self.meter.label}")
        self.say(audit_text(self.audit, s.audit_tolerance))
        if self.stages.done("audit"):
            info = self.stages.info("audit")
            self.say(f"  (stored) {info.get('message', '')}")
            return
        missed = int(self.audit["missed"].sum())
        info: dict[str, Any] = {"missed": missed, "refitted": False}
        if missed:
            # the chosen networks' measurements are in the store (stage 5): refit on every
            # stored measurement of this device except the held-out set
            stored = self.meter.stored()
            held = {self.space.to_string(a) for a in self.sets.holdout}
            train = [(k, v) for k, v in stored.items() if k not in held]
            if len(train) < 10:
                info["message"] = (f"{missed} prediction(s) missed by more than "
                                   f"{100 * s.audit_tolerance:.0f}%, but the store holds only "
                                   f"{len(train)} measurement(s) besides the held-out set: too few "
                                   f"to refit (profile more: hwnas profile --active --db ...)")
                self.stages.finish("audit", info)
                self.say("  " + info["message"])
                return
            before = heldout_metrics(self.predictor, self.sets.holdout, self.holdout_ms)
            refit = make_predictor_factory(self.space, self.meter, s.seed)().fit(
                [self.space.from_string(k) for k, _ in train], np.asarray([v for _, v in train]))
            refit.save(self.run_dir / "predictor_refit.pt")
            after = heldout_metrics(refit, self.sets.holdout, self.holdout_ms)
            info.update(refitted=True, train=len(train), before=before, after=after,
                        message=(f"{missed} prediction(s) missed by more than "
                                 f"{100 * s.audit_tolerance:.0f}%: their measurements were added "
                                 f"to the store and the predictor refitted on {len(train)} "
                                 f"measurements -> predictor_refit.pt; held-out within +-10% "
                                 f"{100 * before['within10']:.0f}% -> {100 * after['within10']:.0f}%, "
                                 f"Spearman {before['spearman']:.3f} -> {after['spearman']:.3f}"))
        else:
            info["message"] = (f"every prediction within {100 * s.audit_tolerance:.0f}% of the "
                               f"measurement; no refit needed")
        self.stages.finish("audit", info)
        self.say("  " + info["message"])

    # ---- stage 7 ----------------------------------------------------------------------
    def stage_export(self, number: int) -> None:
        from tqdm import tqdm

        import devices
        from hwnas import pareto, plots
        from hwnas.export import export_arch
        from hwnas.objectives import parse_objectives

        s = self.settings
        objectives = parse_objectives(["accuracy", "latency_ms"])
        table = self.chosen.rename(columns={"measured_ms": "latency_ms"})
        front = pareto.front_of(table, objectives, feasible_only=False)
        front = front.sort_values("latency_ms").reset_index(drop=True)
        self.heading(number, f"export the {len(front)} front network(s) as verified ONNX models")
        profiler = devices.get(s.device, plan=self.meter.plan)
        rows = []
        try:
            for k, row in enumerate(tqdm(front.itertuples(), total=len(front), desc="export",
                                         unit="net", disable=not self.progress, leave=False)):
                target = self.run_dir / "front" / str(k) / "model.onnx"
                if not (self.stages.done("export") and target.is_file()):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    export_arch(self.space, row.arch, target, weights=row.weights,
                                num_classes=self.data.num_classes, input_size=self.input_size,
                                device=profiler, predictor=self.predictor, accuracy=row.accuracy,
                                space_kwargs=s.space_kwargs, seed=s.seed,
                                metadata={"trained_on": s.dataset, "pipeline_run": str(self.run_dir.path),
                                          "measured_ms_in_run": row.latency_ms})
                    (target.parent / "arch.json").write_text(json.dumps(
                        {"space": self.space.key, "arch": row.arch, "accuracy": row.accuracy,
                         "measured_ms": row.latency_ms, "predicted_ms": row.predicted_ms}, indent=2))
                rows.append({"k": k, "arch": row.arch, "accuracy": row.accuracy,
                             "measured_ms": row.latency_ms, "predicted_ms": row.predicted_ms,
                             "macs": row.macs, "params": row.params, "onnx": str(target)})
        finally:
            profiler.close()  # every Profiler has one (devices.base)
        self.front = pd.DataFrame(rows, columns=list(FRONT_COLUMNS))
        self.run_dir.write_front(self.front)
        plots.plot_front(table, objectives, self.run_dir / "pareto.png",
                         f"{self.space.key} / {s.dataset} / {s.engine} / measured on {self.meter.label}")
        if not self.stages.done("export"):
            self.stages.finish("export", {"front": len(rows)})
        self.say(self.front.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def run_pipeline(settings: PipelineSettings | None = None, out: str | Path | None = None,
                 resume: bool = False, progress: bool = True) -> PipelineResult:
    """Run (or resume) the pipeline with ``settings`` (default: the embedded run)."""
    return Pipeline(settings or PipelineSettings(), out, resume, progress).run()
