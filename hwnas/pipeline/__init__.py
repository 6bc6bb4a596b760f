"""The card's whole pipeline as one call: measured latency -> predictor -> search under
budgets -> measured audit -> verified ONNX. See :func:`search`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hwnas.pipeline.runner import STAGES, Pipeline, PipelineResult, run_pipeline
from hwnas.pipeline.settings import BadSetting, PipelineSettings

__all__ = ["BadSetting", "Pipeline", "PipelineResult", "PipelineSettings", "STAGES", "run_pipeline",
           "search", "stored_settings"]


def stored_settings(out: str | Path | None) -> dict[str, Any] | None:
    """The settings a pipeline run folder was started with (None if it has none)."""
    if out is None:
        return None
    path = Path(out) / "config.json"
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("pipeline") or {}) or None
    except (OSError, ValueError):
        return None  # RunFolder reports a damaged config with its own sentence


def search(out: str | Path | None = None, *, resume: bool = False, progress: bool = True,
           **settings: Any) -> PipelineResult:
    """Run the pipeline from Python; keyword arguments are :class:`PipelineSettings` fields
    (``space``, ``preset``, ``dataset``, ``device``, ``strategy``, ``sweep``, ``budgets``,
    ``db``, ``predictor``, ...). With ``resume=True`` the settings not given are the run's."""
    merged = PipelineSettings.merged(settings, stored_settings(out) if resume else None)
    return Pipeline(merged, out, resume, progress).run()
