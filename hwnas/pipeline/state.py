"""What the pipeline's stages hand each other, in one explicit object.

Each stage reads what earlier stages left here and writes its own outputs here
(and to the run folder); nothing travels through attributes of a runner. A resumed
run rebuilds the same state from the run folder and the store, stage by stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from hwnas.pipeline.settings import PipelineSettings
from spaces import Arch, Space


@dataclass
class PipelineState:
    """The run's settings and resources, then every stage's outputs."""

    settings: PipelineSettings
    space: Space
    input_size: int
    data: Any                          # hwnas.evaluators.datasets split (train/val tensors)
    meter: Any                         # hwnas.pipeline.measuring.DeviceMeter
    run_path: Path
    say: Callable[[str], None]
    progress: bool = True
    # stage 1
    references: list[Any] = field(default_factory=list)   # references.Reference candidates
    reference_notices: list[str] = field(default_factory=list)
    reference_predictors: dict[str, Any] = field(default_factory=dict)  # fitted, per series
    sets: Any = None                   # latency_model.Sets: train / holdout / pool
    train_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    holdout_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    budgets: list[float] = field(default_factory=list)   # latency budgets (ms)
    # stage 2-3
    predictor: Any = None
    archs: list[Arch] = field(default_factory=list)      # what the predictor was fitted on
    ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    heldout: dict[str, float] = field(default_factory=dict)
    # stage 4
    margin: float = 0.0
    candidates: pd.DataFrame | None = None   # every network searched, trained and measured
    choices: pd.DataFrame | None = None      # one row per budget: the network that answers it
    refits: int = 0
    # the one-shot engine's inherited weights: arch -> export_train.TrainedNet (else None:
    # every chosen network is trained alone)
    inherit: Callable[[Arch], Any] | None = None
    # how chosen networks got their weights (None: trained alone), asked when needed: the
    # one-shot engine's recipe names its checkpoint's hash, known once it is trained
    recipe: Callable[[], str] | None = None
    # run folders whose networks/ of the same recipe this run may copy
    # (a second device reusing a checkpoint: the files are the same, only their timing differs)
    shared_runs: list[Path] = field(default_factory=list)
    # stage 5
    front: pd.DataFrame | None = None

    def path(self, name: str) -> Path:
        return self.run_path / name
