"""The whole pipeline in one run folder: profile -> fit -> active profiling near the budgets ->
per budget search / train / export / time the file / audit, in rounds -> export.

Nothing is simulated: latencies are measured on the device (and stored), the
predictor learns from those measurements, the engines search with the
predictor's latency, and every chosen network is trained alone, exported and
its *file* timed; a budget counts as met only on that measurement.

Every input is checked before the run folder is written (:class:`Pipeline`), the
stages run in the order of :data:`STAGES`, and each finished stage is recorded
(``stages.json``) so ``--resume`` continues where a run stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from hwnas.pipeline.settings import ONESHOT_ENGINES, BadSetting, PipelineSettings
from hwnas.pipeline.stage_active import ActiveStage
from hwnas.pipeline.stage_budgets import BudgetStage
from hwnas.pipeline.stage_export import FRONT_COLUMNS, ExportStage
from hwnas.pipeline.stage_fit import FitStage
from hwnas.pipeline.stage_instanas import InstaNASStage
from hwnas.pipeline.stage_profile import ProfileStage
from hwnas.pipeline.stages import Stage, StageLog
from hwnas.pipeline.state import PipelineState
from spaces.errors import HwnasError

STAGES: tuple[Stage, ...] = (ProfileStage(), FitStage(), ActiveStage(), BudgetStage(), ExportStage())
#: stages only some engines run, after the common ones
ENGINE_STAGES: dict[str, tuple[Stage, ...]] = {"instanas": (InstaNASStage(),)}
STAGE_NAMES = tuple(stage.name for stage in STAGES) + tuple(
    stage.name for extra in ENGINE_STAGES.values() for stage in extra)


def stages_for(settings: PipelineSettings) -> tuple[Stage, ...]:
    """The stages a run of these settings goes through, in order."""
    return STAGES + ENGINE_STAGES.get(settings.engine, ())

__all__ = ["FRONT_COLUMNS", "Pipeline", "PipelineResult", "STAGES", "run_pipeline"]


@dataclass
class PipelineResult:
    """What a pipeline run produced: the front as a table and where everything is."""

    run_dir: Path
    front: pd.DataFrame       # one row per budget: FRONT_COLUMNS (onnx relative to run_dir)
    chosen: pd.DataFrame      # the same choices with their network folders
    audit: pd.DataFrame       # every candidate of every round: predicted vs measured
    heldout: dict[str, Any]   # the predictor's held-out figures (after active profiling)
    refitted: bool            # the budget loop refitted the predictor
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def paths(self) -> dict[str, Path]:
        names = {"config": "config.json", "store": "lat.sqlite", "predictor": "predictor.pt",
                 "predictor_refit": "predictor_refit.pt", "chosen": "history.csv",
                 "front": "pareto.csv", "pareto_plot": "pareto.png", "audit": "audit.csv",
                 "audit_plot": "audit.png", "loop": "loop.json"}
        out = {k: self.run_dir / v for k, v in names.items() if (self.run_dir / v).exists()}
        out.update({f"onnx_{int(r.k)}": self.run_dir / str(r.onnx) for r in self.front.itertuples()})
        return out


class Pipeline:
    """One run of the pipeline; ``run()`` executes the stages not yet finished."""

    def __init__(self, settings: PipelineSettings, out: str | Path | None = None,
                 resume: bool = False, progress: bool = True,
                 log: Callable[[str], None] | None = None) -> None:
        import spaces
        from hwnas.evaluators import datasets
        from hwnas.pipeline.choosing import split_budgets
        from hwnas.pipeline.floor import check_reachable
        from hwnas.pipeline.measuring import DeviceMeter
        from hwnas.runs import RunFolder, RunFolderError, default_run_dir
        from latency.store import MeasurementStore

        if resume and out is None:
            raise RunFolderError("--resume needs --out RUN_DIR, the run to continue")
        self.run_dir = RunFolder(out or default_run_dir())
        self.progress = progress
        self._log = log or logging.getLogger(__name__).info
        self.settings = settings
        # everything that can fail on bad input fails here, before the folder is touched
        self.space = spaces.get(settings.space, **settings.space_kwargs)
        if settings.engine == "supernet" and settings.space != "fbnetv2":
            raise BadSetting(f"the supernet engine searches the fbnetv2 space only; use "
                             f"--strategy nao for {settings.space!r}")
        split_budgets(settings)
        self.input_size = int(settings.input_size or self.space.default_input_size)
        self.data = datasets.load(settings.dataset, self.input_size, self.space.in_channels,
                                  root=settings.data_root, max_samples=settings.max_samples,
                                  seed=settings.seed)
        if settings.engine in ONESHOT_ENGINES:
            self._check_oneshot(settings)
        # a given store that is not one (corrupt, foreign, unwritable) fails before the folder
        self.store = MeasurementStore(settings.db) if settings.db else None
        # an unknown or unavailable device fails here (one sentence), not mid-run
        self.meter = DeviceMeter(self.space, settings.device, None, quick=settings.quick_timing,
                                 input_size=self.input_size,
                                 progress=progress, corrected=settings.drift_correction)
        if settings.predictor:
            self._check_predictor(settings.predictor)
        from hwnas.pipeline import references

        self.references, self.notices = references.candidates(
            self.store, self.space, self.meter.device_id, self.meter.job.batch,
            self.meter.job.input_shape)
        if settings.references and self.store is None:
            raise BadSetting("--references chooses reference devices of a measurement store: "
                             "give the store with --db")
        self.references = references.restrict(self.references, settings.references,
                                               settings.db)
        if settings.predictor:
            self.references = []  # a given predictor is used as it is
        self.config = {"pipeline": settings.to_json(), "space": self.space.key}
        if resume and (self.run_dir / "config.json").is_file():
            self.run_dir.check_resumable(self.config)
            # every file the resumed stages read parses now, before anything is written
            check_resume_files(self.run_dir, StageLog(self.run_dir.path, STAGE_NAMES))
        elif not resume:
            self.run_dir.check_new()
            check_reachable(settings, self.space, self.meter, self.input_size, self.data.num_classes)
        self.run_dir.check_writable()  # a full disk or a file in its place fails now
        self.resume = resume
        self.seconds: dict[str, float] = {}

    def _check_oneshot(self, settings: PipelineSettings) -> None:
        """The space has a one-shot supernet, the sampler exists, a given checkpoint is one
        of this space, input size and dataset: all before the run folder is touched."""
        from hwnas.oneshot import make_supernet
        from hwnas.oneshot.checkpoint import check_compatible, objective_name, read_meta
        from hwnas.oneshot.samplers import SAMPLERS

        SAMPLERS.get(settings.sampler)  # an unknown name: one sentence with the known ones
        if settings.search_strategy is not None:
            from hwnas import strategies

            strategies.get(settings.search_strategy)  # an unknown name: one sentence
            if settings.search_strategy == "enas" and not settings.supernet_ckpt \
                    and settings.sampler != "enas":
                raise BadSetting("--search-strategy enas samples from the controller ENAS trains "
                                 "with the supernet: add --sampler enas (or pass a --supernet-ckpt "
                                 "trained with it)")
        supernet = make_supernet(self.space, self.data.num_classes, self.input_size)
        if settings.supernet_ckpt:
            if not Path(settings.supernet_ckpt).is_file():
                raise BadSetting(f"--supernet-ckpt {settings.supernet_ckpt} not found")
            meta = read_meta(settings.supernet_ckpt)
            check_compatible(meta, supernet, self.data.name, settings.supernet_ckpt)
            trained = objective_name(meta)
            if trained != "labels":
                raise BadSetting(f"--supernet-ckpt {settings.supernet_ckpt} was trained with the "
                                 f"{trained} objective, so its classifier is not one the pipeline "
                                 f"can ship; rank it with hwnas explore --evaluator "
                                 f"{'smash' if trained == 'smash' else 'oneshot'}")

    def _check_predictor(self, path: str) -> None:
        """A given predictor must load, be of this space and of this device."""
        from latency import predictors
        from latency.predictors import PredictorMismatch

        if not Path(path).is_file():
            raise BadSetting(f"predictor file {path} not found")
        try:
            predictors.load(path, space=self.space, device=self.meter.device_id)
        except PredictorMismatch as error:
            if "device" not in str(error):
                raise
            trained = (predictors.read_file(path)["meta"].get("device") or {}).get("label")
            raise BadSetting(f"--predictor {path} was trained on {trained!r}, not on this run's "
                             f"device {self.meter.label!r}; the pipeline's predictor must have "
                             f"learnt the device it times: fit one on it (hwnas predictor fit "
                             f"--device ...) or leave --predictor out") from None

    def say(self, text: str = "") -> None:
        self._log(text)

    def run(self) -> PipelineResult:
        import torch

        from hwnas.pipeline.latency_model import draw_sets
        from latency.store import MeasurementStore

        torch.set_num_threads(1)
        fresh = not self.resume or not (self.run_dir / "config.json").is_file()
        self.run_dir.start(self.config, resume=self.resume)
        try:
            store = self.store if self.store is not None else MeasurementStore(self.run_dir / "lat.sqlite")
        except HwnasError:
            if fresh:  # nothing ran: leave no half-made run folder behind
                self.run_dir.discard_start()
            raise
        self.meter.store = store
        stages = StageLog(self.run_dir.path, STAGE_NAMES)
        s = self.settings
        if self.resume and stages.finished():
            self.say(f"resuming {self.run_dir.path}: finished stages {', '.join(stages.finished())}")
        self.say(f"hwnas pipeline: {self.space.key} on {s.dataset}, device {self.meter.label}, "
                 f"engine {s.engine}, run folder {self.run_dir.path}")
        state = PipelineState(s, self.space, self.input_size, self.data, self.meter,
                              self.run_dir.path, self.say, self.progress)
        state.references, state.reference_notices = self.references, self.notices
        initial = s.initial_for(bool(self.references))
        shots = None
        if self.references:
            from hwnas.pipeline.references import (designed_shots, fit_reference_predictors,
                                                   shot_pool)

            state.reference_predictors = fit_reference_predictors(
                store, self.space, self.references, self.meter.job.input_shape, s.seed)
            pool = shot_pool(store, self.space, self.references, initial)
            shots = designed_shots(self.space, state.reference_predictors, pool, initial, s.seed)
            self.say(f"reference devices in the store: "
                     f"{', '.join(f'{r.label} ({r.rows})' for r in self.references)}; the "
                     f"{initial} first measurements are chosen among what they measured, to "
                     f"spread their predicted latencies")
        for notice in self.notices:
            self.say(f"  {notice}")
        state.sets = draw_sets(self.space, initial, s.holdout, s.pool, s.seed, shots)
        stages_run = stages_for(s)
        for number, stage in enumerate(stages_run, 1):
            start = time.perf_counter()
            self.say(f"\n[{number}/{len(stages_run)}] {stage.title(state)}")
            if stages.done(stage.name):
                self.say("  (stored)")
                stage.restore(state, stages.info(stage.name))
            else:
                stages.finish(stage.name, stage.run(state))
            self.seconds[stage.name] = time.perf_counter() - start
        total = sum(self.seconds.values())
        self.say(f"\ndone in {total:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
                 + ")")
        self.say(f"run folder: {self.run_dir.path}")
        return PipelineResult(self.run_dir.path, state.front, state.choices, state.candidates,
                              state.heldout, state.refits > 0, dict(self.seconds))


def check_resume_files(run_dir: Any, stages: StageLog) -> None:
    """Parse every file the finished stages of ``run_dir`` are restored from (and the
    budget loop's record and caches), so a damaged file fails in one sentence naming it
    before the resumed run writes anything."""
    from hwnas.evaluators.cache import read_cache
    from hwnas.pipeline.stage_export import FRONT_COLUMNS
    from hwnas.pipeline.stage_fit import PREDICTOR
    from hwnas.pipeline.stages import StageLogError
    from hwnas.runs import read_json, read_table
    from latency import predictors

    folder = run_dir.path
    loop = folder / "loop.json"
    if loop.is_file():
        data = read_json(loop, "budget loop's record")
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise StageLogError(f"{loop} is not a budget-loop record; it was damaged")
        if data.get("predictor"):
            predictors.read_file(folder / str(data["predictor"]))
    if stages.done("fit"):
        predictors.read_file(folder / PREDICTOR)
    if stages.done("export"):
        read_table(folder / "pareto.csv", FRONT_COLUMNS)
    for name in ("history.csv", "audit.csv"):
        if (folder / name).is_file():
            read_table(folder / name)
    for cache in folder.glob("*.jsonl"):
        read_cache(cache)
    for record in [*folder.glob("networks/*/timing.json"), *folder.glob("networks/*/result.json")]:
        read_json(record, "record of a candidate network")


def run_pipeline(settings: PipelineSettings | None = None, out: str | Path | None = None,
                 resume: bool = False, progress: bool = True) -> PipelineResult:
    """Run (or resume) the pipeline with ``settings`` (default: the embedded run)."""
    return Pipeline(settings or PipelineSettings(), out, resume, progress).run()
