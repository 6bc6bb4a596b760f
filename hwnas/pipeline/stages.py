"""Which pipeline stages a run folder has finished, so ``--resume`` starts at the first unfinished one.

``stages.json`` maps a stage name to what it produced (counts, file names,
figures). A stage is written there only after all its outputs are on disk, and
the file is replaced atomically, so a kill at any moment leaves either the old
or the new record -- never a stage marked done whose files are missing.
Within a stage, work is also kept as it is done (measurements are committed to
the store per group, each retrained network's weights are saved), so resuming
an unfinished stage repeats only what was in flight.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hwnas.runs import _atomic_write
from spaces.errors import HwnasError

STAGES = ("profile", "fit", "active", "search", "retrain", "audit", "export")


class StageLogError(HwnasError):
    """stages.json is unreadable: the run folder was damaged by hand."""


class StageLog:
    """Finished stages of one run folder."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / "stages.json"
        self._done: dict[str, Any] = {}
        if self.path.is_file():
            try:
                self._done = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise StageLogError(f"cannot read {self.path}: {error}") from None
            if not isinstance(self._done, dict):
                raise StageLogError(f"{self.path} is not a stage record")

    def done(self, stage: str) -> bool:
        return stage in self._done

    def info(self, stage: str) -> dict[str, Any]:
        return dict(self._done.get(stage) or {})

    def finish(self, stage: str, info: dict[str, Any] | None = None) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        self._done[stage] = info or {}
        _atomic_write(self.path, json.dumps(self._done, indent=2, default=str))

    def finished(self) -> list[str]:
        return [s for s in STAGES if s in self._done]
