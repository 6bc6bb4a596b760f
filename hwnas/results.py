"""Come back to a finished run: ``hwnas.load_run(dir)`` reads what a run folder holds.

A pipeline run gives its :class:`~hwnas.pipeline.PipelineResult` (the per-budget front,
every audited candidate, the predictor's held-out figures); a single search gives a
:class:`SearchRun` (history, front, best architecture, objectives). Nothing is
resumed, recomputed or written: it only reads. Paths inside run files are relative
to the run folder; ``paths`` resolves them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hwnas.runs import RunFolder, RunFolderError


@dataclass
class SearchRun:
    """A single search's run folder, as read."""

    run_dir: Path
    config: dict[str, Any]
    history: pd.DataFrame
    front: pd.DataFrame
    best: dict[str, Any] | None
    objectives: list[Any] = field(default_factory=list)

    @property
    def paths(self) -> dict[str, Path]:
        names = {"config": "config.json", "history": "history.csv", "front": "pareto.csv",
                 "pareto_plot": "pareto.png", "best": "best/arch.json", "onnx": "best/model.onnx"}
        return {k: self.run_dir / v for k, v in names.items() if (self.run_dir / v).exists()}


def _csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise RunFolderError(f"{path} does not exist: the run has not got that far")
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{path} is not a readable table ({type(error).__name__})") from None


def is_pipeline(config: dict[str, Any]) -> bool:
    return "pipeline" in config


def load_run(path: str | Path) -> Any:
    """The result object of the run in ``path`` (see the module docstring)."""
    folder = RunFolder(path)
    config = folder.read_config()
    run_dir = folder.path
    if is_pipeline(config):
        from hwnas.pipeline import PipelineResult

        stages_path = run_dir / "stages.json"
        try:
            stages = json.loads(stages_path.read_text(encoding="utf-8")) if stages_path.is_file() else {}
        except ValueError:
            raise RunFolderError(f"{stages_path} is not valid JSON") from None
        heldout = (stages.get("active") or {}).get("heldout") or (stages.get("fit") or {}).get("heldout", {})
        return PipelineResult(run_dir, _csv(run_dir / "pareto.csv"), _csv(run_dir / "history.csv"),
                              _csv(run_dir / "audit.csv"), dict(heldout),
                              bool((stages.get("budgets") or {}).get("refits")))
    from hwnas.objectives import Objective

    objectives = [Objective.from_json(o) for o in config.get("objectives", [])]
    history = folder.read_history()
    front = _csv(run_dir / "pareto.csv") if (run_dir / "pareto.csv").is_file() else history.iloc[:0]
    return SearchRun(run_dir, config, history, front, folder.read_best(), objectives)
