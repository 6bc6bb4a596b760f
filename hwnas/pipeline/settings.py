"""What one pipeline run is: every setting, with the embedded default, checked before work starts.

The settings are stored in the run's ``config.json``; ``--resume`` takes what the
user did not type from there, and refuses a run whose settings changed (a stage
finished under other settings cannot be reused).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from spaces.base import MAX_COUNT
from spaces.core.errors import InvalidOption


INITIAL_ALONE, INITIAL_WITH_REFERENCES = 40, 15
#: The pipeline's search engines (hwnas.pipeline.engines).
ENGINES = ("supernet", "nao", "oneshot", "darts", "gdas", "toponas", "entrannas", "instanas")
#: The engines that train one weight-sharing supernet and search it (hwnas.pipeline.engine_oneshot);
#: instanas adds a per-image controller over its front (hwnas.pipeline.stage_instanas).
ONESHOT_ENGINES = ("oneshot", "instanas")
#: The differentiable cell-search engines (hwnas.pipeline.engine_cell) and the spaces whose
#: supernet they can relax (hwnas.oneshot.differentiable.Relaxable).
CELL_ENGINES = ("darts", "gdas", "toponas", "entrannas")
RELAXABLE_SPACES = ("nb201", "darts")
#: TopoNAS and EnTranNAS need the DARTS cell's free choice of a node's inputs.
CELL_ENGINE_SPACES = {"darts": RELAXABLE_SPACES, "gdas": RELAXABLE_SPACES,
                      "toponas": ("darts",), "entrannas": ("darts",)}
#: Spaces whose default engine is the one-shot supernet (hwnas.oneshot has one for them).
ONESHOT_SPACES = ("nb201", "fbnet", "nao")
#: The dataset an engine trains on unless --dataset says otherwise. The one-shot engine
#: trains one supernet whatever the number of candidates, so it can afford the harder
#: cluttered-digits, on which architectures trained alone spread 42 points with a
#: seed-to-seed Kendall tau of 0.89 (digits: 4 points, 0.32; benchmarks/dataset_ranking.py):
#: on digits its front had 3-5 distinct networks for 10 budgets because accuracies tie.
#: The engines that train every chosen network alone keep the small digits.
DEFAULT_DATASET = {"oneshot": "cluttered-digits", "instanas": "cluttered-digits"}
#: Optimiser steps of the one-shot engine's supernet training unless --supernet-epochs says
#: otherwise (batch 64): 5 epochs of cluttered-digits, 20 of digits, ~100 s of the sandwich
#: sampler on 2 cores for fbnetv2 tiny. Kendall tau of inherited vs standalone accuracy on
#: cluttered-digits: 0.52 after 5 epochs, 0.74 after 20 (benchmarks/oneshot_ranking.py).
SUPERNET_STEPS = 450
#: --preset is the space's own variant keyword.
PRESET_KEYWORD = {"fbnet": "stem"}


BadSetting = InvalidOption  # A pipeline setting is out of range or contradicts another.


@dataclass
class PipelineSettings:
    """The pipeline's knobs. Defaults are the embedded run: fbnetv2 ``tiny`` on the
    scikit-learn digits, timed live on ONNX Runtime CPU, under 5 minutes on 2 cores."""

    space: str = "fbnetv2"
    preset: str | None = None           # the space's own default variant when None
    space_opts: dict[str, Any] = field(default_factory=dict)  # other constructor options (C=16)
    input_size: int | None = None       # the space's own default resolution when None
    dataset: str | None = None          # cluttered-digits with the oneshot engine, else digits
    data_root: str | None = None
    max_samples: int | None = None
    device: str = "ort:cpu"
    strategy: str | None = None         # supernet for fbnetv2, nao otherwise
    sweep: int | None = None            # latency budgets spread over the profiled range
                                        # (default 10 with the oneshot engine, else 3)
    budgets: list[str] = field(default_factory=list)  # latency_ms<=X (replace the sweep), macs<=Y
    db: str | None = None               # measurement store; default <run>/lat.sqlite
    references: list[str] | None = None  # reference devices of the store to use (default: all)
    predictor: str | None = None        # a fitted predictor file: skips fit + active profiling
    initial: int | None = None          # archs profiled first: 15 with reference devices, else 40
    holdout: int = 30                   # random archs profiled for held-out metrics
    active_measurements: int = 60             # further measurements chosen by ensemble spread
    active_batch: int = 15
    target: float = 0.90                # held-out share within +-10% that ends active profiling
    pool: int = 2000                    # candidates the active step chooses from
    queries: int | None = None          # nao: architectures trained during the search (24);
                                        # oneshot: architectures evaluated on the supernet (400)
    epochs: int = 2                     # nao: training epochs per searched candidate
    search_epochs: int = 2              # supernet: warm-up and per-budget search epochs
    retrain_epochs: int = 5             # stage 5: standalone training of each chosen network
    audit_tolerance: float = 0.10       # a prediction further off than this triggers a refit
    max_rounds: int = 3                 # search -> retrain -> measure rounds per latency budget
    margin: float | None = None         # budget safety margin (share); None: the run's measured drift
    drift_correction: bool = False      # train on reference-corrected values (measured: adds noise)
    supernet: str | None = None         # the supernet's implementation (its own default when None)
    supernet_ckpt: str | None = None    # oneshot: a trained one-shot supernet to reuse
    sampler: str = "sandwich"           # oneshot: how the supernet is trained (SAMPLERS);
                                        # sandwich ranked best (benchmarks/oneshot_ranking.py)
    supernet_epochs: int | None = None  # oneshot: epochs of supernet training (default: the
                                        # epochs of SUPERNET_STEPS steps: 5 on cluttered-digits)
    finetune_epochs: int = 1            # oneshot: fine-tune of each chosen network's inherited weights
    search_strategy: str | None = None  # oneshot: stage two's strategy (None: NSGA-II; rl, parsec,
                                        # rsps, enas or any registered strategy)
    threads: int | None = None          # oneshot: threads for training and evaluation (all cores)
    second_order: bool = False          # darts: DARTS' unrolled (second-order) alpha gradient
    instanas_paths: int = 4             # instanas: architectures the per-image controller picks from
    latency_weight: float = 0.5         # instanas: reward lost per unit of relative path latency
    seed: int = 0
    quick_timing: bool = False          # a few timed calls only (tests; numbers not worth keeping)

    def __post_init__(self) -> None:
        self.budgets = [str(b) for b in (self.budgets or [])]
        if self.sweep is None:
            self.sweep = 10 if self.engine in ONESHOT_ENGINES else 3
        if self.queries is None:
            self.queries = 400 if self.engine in ONESHOT_ENGINES else 24
        if self.dataset is None:  # see DEFAULT_DATASET
            self.dataset = DEFAULT_DATASET.get(self.engine, "digits")
        if self.preset is None and self.space == "fbnetv2":
            self.preset = "tiny"
        counts = {"--sweep": self.sweep, "--initial": self.initial if self.initial is not None else 40, "--holdout": self.holdout,
                  "--active-batch": self.active_batch, "--pool": self.pool,
                  "--queries": self.queries, "--epochs": self.epochs,
                  "--retrain-epochs": self.retrain_epochs}
        for name, value in counts.items():
            if int(value) < 1:
                raise BadSetting(f"{name} must be at least 1, got {value}")
        for name, value in {**counts, "--active-measurements": self.active_measurements,
                            "--search-epochs": self.search_epochs}.items():
            if int(value) > MAX_COUNT:
                raise BadSetting(f"{name} {value:,} is more than any run could finish "
                                 f"(at most {MAX_COUNT:,})")
        if int(self.finetune_epochs) < 0:
            raise BadSetting(f"--finetune-epochs cannot be negative (0: the inherited weights "
                             f"as they are), got {self.finetune_epochs}")
        if self.threads is not None and not 1 <= int(self.threads) <= 1024:
            raise BadSetting(f"--threads must be between 1 and 1,024, got {self.threads}")
        if self.supernet_epochs is not None and int(self.supernet_epochs) < 1:
            raise BadSetting(f"--supernet-epochs must be at least 1, got {self.supernet_epochs}")
        if int(self.search_epochs) < 1:
            raise BadSetting(f"--search-epochs must be at least 1, got {self.search_epochs}")
        if self.max_samples is not None and int(self.max_samples) < 1:
            raise BadSetting(f"--max-samples must be at least 1, got {self.max_samples}")
        if not 0 <= int(self.seed) < 2**32:
            raise BadSetting(f"--seed must be between 0 and 4,294,967,295, got {self.seed}")
        if self.initial is not None and self.initial < 5:
            raise BadSetting(f"--initial must be at least 5 (the predictor's minimum), got {self.initial}")
        if self.holdout < 5:
            raise BadSetting(f"--holdout must be at least 5 to judge the predictor, got {self.holdout}")
        if self.active_measurements < 0:
            raise BadSetting(f"--active-measurements cannot be negative, got {self.active_measurements}")
        if not 0.0 < self.target <= 1.0:
            raise BadSetting(f"--target is a share in (0, 1], got {self.target}")
        if int(self.max_rounds) < 1:
            raise BadSetting(f"--max-rounds must be at least 1 (one search-measure round per "
                             f"budget), got {self.max_rounds}")
        if self.margin is not None and not 0.0 <= float(self.margin) < 0.5:
            raise BadSetting(f"--margin is a share in [0, 0.5), got {self.margin}")
        if not 0.0 < self.audit_tolerance < 1.0:
            raise BadSetting(f"the audit tolerance must be in (0, 1), got {self.audit_tolerance}")
        if self.input_size is not None and not 1 <= int(self.input_size) <= 4096:
            raise BadSetting(f"--input-size must be between 1 and 4,096 pixels, got {self.input_size}")
        if self.second_order and self.engine not in ("darts", "toponas", "entrannas"):
            raise BadSetting(f"--second-order applies to --strategy darts, toponas or entrannas "
                             f"(DARTS' unrolled gradient), not to the {self.engine} engine")
        if not 2 <= int(self.instanas_paths) <= 16:
            raise BadSetting(f"--paths is the number of architectures the InstaNAS controller "
                             f"chooses between: 2 to 16, got {self.instanas_paths}")
        if not float(self.latency_weight) >= 0:
            raise BadSetting(f"--latency-weight cannot be negative, got {self.latency_weight}")
        if self.engine != "instanas" and (int(self.instanas_paths) != 4
                                          or float(self.latency_weight) != 0.5):
            raise BadSetting(f"--paths and --latency-weight set the InstaNAS controller: they go "
                             f"with --strategy instanas, not the {self.engine} engine")
        if self.strategy in CELL_ENGINES:
            from spaces.base import family_of

            allowed = CELL_ENGINE_SPACES[self.strategy]
            if family_of(self.space) not in allowed:
                what = ("cell spaces " + " and ".join(allowed) if len(allowed) > 1
                        else f"{allowed[0]} cell space")
                raise BadSetting(f"--strategy {self.strategy} searches the {what}, not "
                                 f"{self.space}")
        if self.strategy not in (None, *ENGINES):
            raise BadSetting(f"the pipeline searches with {' or '.join(ENGINES)}, not "
                             f"{self.strategy!r}; other strategies run as single searches: "
                             f"hwnas explore --strategy {self.strategy}")

    def supernet_epochs_for(self, train_images: int, batch_size: int) -> int:
        """Epochs of supernet training: the user's, else those of SUPERNET_STEPS steps."""
        if self.supernet_epochs is not None:
            return int(self.supernet_epochs)
        steps_per_epoch = max(1, int(train_images) // max(1, int(batch_size)))
        return max(1, round(SUPERNET_STEPS / steps_per_epoch))

    def initial_for(self, has_references: bool) -> int:
        """Measurements of stage 1: the user's, else few when other devices can teach."""
        if self.initial is not None:
            return int(self.initial)
        return INITIAL_WITH_REFERENCES if has_references else INITIAL_ALONE

    @property
    def engine(self) -> str:
        """The search engine actually used: the FBNetV2 search supernet for fbnetv2, the
        one-shot engine for the other spaces with a one-shot supernet (candidates are not
        trained one by one), NAO (which searches any space) for builder specs."""
        if self.strategy:
            return self.strategy
        from spaces.base import family_of

        family = family_of(self.space)
        return "supernet" if family == "fbnetv2" else "oneshot" if family in ONESHOT_SPACES else "nao"

    @property
    def space_kwargs(self) -> dict[str, Any]:
        """The space's constructor options: --space-opt values, and --preset under the
        space's own variant keyword (fbnet calls its variants stems)."""
        kwargs = dict(self.space_opts or {})
        if self.preset:
            kwargs[PRESET_KEYWORD.get(self.space, "preset")] = self.preset
        return kwargs

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def merged(cls, typed: Mapping[str, Any], stored: Mapping[str, Any] | None = None) -> "PipelineSettings":
        """Settings typed now (None = not typed) over the stored run's, over the defaults."""
        names = {f.name for f in fields(cls)}
        unknown = set(typed) - names
        if unknown:
            raise BadSetting(f"unknown pipeline setting(s): {', '.join(sorted(unknown))}")
        renamed = {"active_budget": "active_measurements"}  # runs written before the rename
        values = {renamed.get(k, k): v for k, v in (stored or {}).items()
                  if renamed.get(k, k) in names}
        values.update({k: v for k, v in typed.items() if v is not None})
        return cls(**values)
