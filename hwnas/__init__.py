"""hwnas: hardware-aware, multi-objective neural architecture search.

Kept import-light (no torch at import time) so the CLI starts quickly; ``hwnas.search``
imports the pipeline when called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from hwnas.pipeline import PipelineResult

__version__ = "0.1.0"


def search(out: str | os.PathLike[str] | None = None, *, resume: bool = False,
           progress: bool = True, space: str | None = None, preset: str | None = None,
           dataset: str | None = None, data_root: str | None = None,
           max_samples: int | None = None, device: str | None = None,
           strategy: str | None = None, sweep: int | None = None,
           budgets: list[str] | None = None, db: str | None = None, predictor: str | None = None,
           initial: int | None = None, holdout: int | None = None,
           active_measurements: int | None = None, active_batch: int | None = None,
           target: float | None = None, pool: int | None = None, queries: int | None = None,
           epochs: int | None = None, search_epochs: int | None = None,
           retrain_epochs: int | None = None, audit_tolerance: float | None = None,
           max_rounds: int | None = None, margin: float | None = None,
           drift_correction: bool | None = None, supernet: str | None = None,
           seed: int | None = None, quick_timing: bool | None = None) -> PipelineResult:
    """Run the whole pipeline (profile -> predictor -> search per budget with a measured
    closed loop -> verified ONNX files) in the run folder ``out`` and return its
    :class:`hwnas.pipeline.PipelineResult` (``.front``, ``.audit``, ``.paths``).

    An argument left at None takes the embedded default (or, with ``resume=True``, the
    run's stored value):

    * what: ``space`` ("fbnetv2"), ``preset`` ("tiny"), ``dataset`` ("digits"),
      ``data_root``, ``max_samples``;
    * where: ``device`` ("ort:cpu"), ``db`` (a measurement store to reuse and extend),
      ``predictor`` (a fitted predictor file: skips fitting and active profiling);
    * budgets: ``sweep`` (3 budgets spread over the measured range) or ``budgets``
      (["latency_ms<=0.05", "macs<=1M"]), ``max_rounds`` (3 search-measure rounds per
      budget), ``margin`` (the share a file must stay under its budget by; default the
      host's measured drift), ``audit_tolerance`` (0.10: a prediction further off
      refits the predictor);
    * measurements: ``initial`` (40 random archs), ``holdout`` (30), ``active_measurements``
      (60), ``active_batch`` (15), ``target`` (0.9 of held-out within +-10%), ``pool``
      (2000 candidates), ``drift_correction`` (False), ``quick_timing`` (False);
    * search: ``strategy`` ("supernet" for fbnetv2, else "nao"), ``supernet``, ``queries``
      and ``epochs`` (NAO), ``search_epochs`` (2), ``retrain_epochs`` (5), ``seed`` (0).
    """
    from hwnas.pipeline import search as run

    given = {k: v for k, v in locals().items()
             if k not in ("out", "resume", "progress", "run") and v is not None}
    return run(out, resume=resume, progress=progress, **given)


def load_run(path: str | os.PathLike[str]) -> Any:
    """A finished (or interrupted) run folder's result, read without resuming anything:
    a :class:`hwnas.pipeline.PipelineResult` for pipeline runs, a
    :class:`hwnas.results.SearchRun` for single searches."""
    from hwnas.results import load_run as load

    return load(path)
