"""The pipeline's stages as objects, and which of them a run folder has finished.

``STAGES`` (in :mod:`hwnas.pipeline.runner`) is the only place the order is
written. A stage either ``run`` s -- doing its work, writing its files and
returning a small JSON record -- or, when ``stages.json`` says it finished,
``restore`` s the state from that record, the run folder and the store.

``stages.json`` maps a stage name to its record. A stage is written there only
after all its outputs are on disk, and the file is replaced atomically, so a
kill at any moment leaves either the old or the new record -- never a stage
marked done whose files are missing. Within a stage, work is also kept as it is
done (measurements are committed to the store per group, each trained network's
weights and file are saved, the budget loop records every round), so resuming
an unfinished stage repeats only what was in flight.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from hwnas.pipeline.state import PipelineState
from spaces.core import atomic_write
from spaces.core.errors import DamagedFile


StageLogError = DamagedFile  # stages.json is unreadable: the run folder was damaged by hand.


class Stage:
    """One step of the pipeline (see the module docstring)."""

    name = ""

    def title(self, state: PipelineState) -> str:
        raise NotImplementedError

    def run(self, state: PipelineState) -> dict[str, Any]:
        raise NotImplementedError

    def restore(self, state: PipelineState, info: dict[str, Any]) -> None:
        raise NotImplementedError


class StageLog:
    """Finished stages of one run folder."""

    def __init__(self, folder: str | Path, names: Iterable[str]) -> None:
        self.path = Path(folder) / "stages.json"
        self.names = tuple(names)
        self._done: dict[str, Any] = {}
        if self.path.is_file():
            try:
                text = self.path.read_text(encoding="utf-8")
                if not text.strip():
                    raise StageLogError(f"{self.path} is empty; the run's stage record was damaged")
                self._done = json.loads(text)
            except (OSError, ValueError) as error:
                raise StageLogError(f"cannot read {self.path}: {error}") from None
            if not isinstance(self._done, dict):
                raise StageLogError(f"{self.path} is not a stage record")
            unknown = sorted(set(self._done) - set(self.names))
            if unknown:
                raise StageLogError(f"{self.path} records stage(s) {', '.join(unknown)} this "
                                    f"version of hwnas does not have; start a new run")

    def done(self, stage: str) -> bool:
        return stage in self._done

    def info(self, stage: str) -> dict[str, Any]:
        return dict(self._done.get(stage) or {})

    def finish(self, stage: str, info: dict[str, Any] | None = None) -> None:
        if stage not in self.names:
            raise ValueError(f"unknown stage {stage!r}")
        self._done[stage] = info or {}
        atomic_write(self.path, json.dumps(self._done, indent=2, default=str))

    def finished(self) -> list[str]:
        return [s for s in self.names if s in self._done]
