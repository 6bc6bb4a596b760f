"""Optuna's samplers as hwnas strategies: ``--strategy optuna:tpe``, ``optuna:nsga2``, ``optuna:gp``...

Why: many users know Optuna's samplers (TPE, NSGA-II, GP-based Bayesian
optimisation) and want them compared with, or used instead of, hwnas's own
strategies on the same evaluators, budgets and run folders. The sampler drives
hwnas's ask/evaluate loop through Optuna's ask/tell API:

* each trial asks ``trial.suggest_categorical`` for every decision that applies
  (``space.define``: a define-by-run space with conditional decisions is asked
  only what its builder reaches), which gives the architecture;
* a batch of ``batch_size`` trials is evaluated together by the search context
  (so live profiling interleaves them, and the history is the same table as
  for every strategy);
* each trial is told the searched objectives (Optuna's directions from hwnas's)
  and, for every budget, a constraint ``(value - budget) / budget`` (feasible
  when <= 0) through ``trial.set_constraint`` -- the samplers that handle
  constraints (TPE, NSGA-II/III, GP) read them; random search ignores them.

A proposal already evaluated is answered from memory and costs no query, as
for every strategy (and is told to the sampler, as a repeated trial would be in
any Optuna study). When a sampler keeps proposing known architectures
(``STALL_LIMIT`` in a row: it has converged, or the space is small), an
unevaluated random architecture is enqueued as a trial; from then on every
batch of repeats is answered that way at once, until the sampler proposes
something new by itself.
The sampler never sees the query budget, so the search is anytime.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, ClassVar, Iterator

from hwnas.strategies.base import SearchContext, Strategy
from spaces import Arch, Space
from spaces.errors import HwnasError, UnknownName

log = logging.getLogger(__name__)

PREFIX = "optuna:"
#: hwnas name -> Optuna sampler class; also any other ``XSampler`` Optuna exposes as ``x``.
SAMPLERS = {"tpe": "TPESampler", "nsga2": "NSGAIISampler", "nsga3": "NSGAIIISampler",
            "gp": "GPSampler", "random": "RandomSampler", "bruteforce": "BruteForceSampler"}
ALIASES = {"nsgaii": "nsga2", "nsgaiii": "nsga3", "motpe": "tpe"}
#: Samplers Optuna has that do not fit a space of categorical decisions, and why.
UNSUITABLE = {
    "cmaes": "CMA-ES samples continuous and integer parameters and is single-objective; Optuna "
             "samples categorical decisions like hwnas's with an independent random sampler "
             "instead",
    "qmc": "quasi-Monte Carlo samples continuous parameters; Optuna samples categorical "
           "decisions with an independent random sampler instead",
    "grid": "the grid sampler needs the whole grid as an argument",
    "partialfixed": "the partial-fixed sampler wraps another sampler with fixed parameters",
}
POPULATION = {"nsga2", "nsga3"}  # samplers that take --population (population_size)
# Proposals in a row that were all known before random unevaluated ones are enqueued. A
# repeated proposal costs no query, only the sampler's time, which grows with the trials
# told (TPE) or is a second or more per ask (GP). A sampler that has converged keeps
# repeating, so once it has stalled, each further all-known batch is answered with
# random architectures at once, until it proposes something new by itself.
STALL_LIMIT = 16


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - optuna is a base dependency
        raise HwnasError("the optuna strategies need optuna (pip install optuna)") from err
    return optuna


def sampler_key(name: str) -> str:
    """``tpe``, ``NSGAII``, ``nsga2``, ``TPESampler`` -> the hwnas key (``tpe``, ``nsga2``)."""
    key = name.strip().lower()
    key = key[: -len("sampler")] if key.endswith("sampler") else key
    return ALIASES.get(key, key)


def _exposed() -> dict[str, str]:
    """Every ``XSampler`` class of ``optuna.samplers`` by hwnas key (new Optuna samplers too)."""
    optuna = _optuna()
    found = {sampler_key(n): n for n in dir(optuna.samplers)
             if n.endswith("Sampler") and not n.startswith("Base")}
    return {**found, **SAMPLERS}


def names() -> list[str]:
    """Strategy names of the usable samplers (without importing optuna)."""
    return [PREFIX + k for k in SAMPLERS]


class OptunaStrategy(Strategy):
    """Base of the ``optuna:<sampler>`` strategies; :func:`strategy_class` makes one per sampler."""

    name: ClassVar[str] = "optuna"
    sampler: ClassVar[str] = "tpe"

    def __init__(self, seed: int = 0, batch_size: int = 1, population: int | None = None) -> None:
        super().__init__(seed, batch_size)
        if population is not None and self.sampler not in POPULATION:
            raise HwnasError(f"strategy {self.name} takes no --population option")
        if population is not None and population < 2:
            raise HwnasError(f"--population must be at least 2, got {population}")
        self.population = population

    def options(self) -> dict[str, Any]:
        out = {**super().options(), "sampler": _exposed().get(self.sampler, self.sampler)}
        if self.population is not None:
            out["population"] = self.population
        return out

    def make_sampler(self) -> Any:
        import inspect

        optuna = _optuna()
        cls = getattr(optuna.samplers, _exposed()[self.sampler])
        kwargs: dict[str, Any] = {"seed": self.seed}
        if self.population is not None:
            kwargs["population_size"] = self.population
        if self.sampler != "tpe" and "warn_independent_sampling" in inspect.signature(
                cls.__init__).parameters:  # (deprecated, and off by default, for TPE)
            # it warns on every trial of a conditional space; search() logs it once instead
            kwargs["warn_independent_sampling"] = False
        return cls(**kwargs)

    # ---- the loop ---------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> None:
        optuna = _optuna()
        directions = ["maximize" if o.maximise else "minimize" for o in ctx.searched]
        budgeted = [o for o in ctx.objectives if o.budget is not None]
        if getattr(ctx.space, "conditional", None) and self.sampler in ("gp", "nsga2", "nsga3"):
            log.info("%s: decisions that apply only to some architectures (%s) are sampled "
                     "independently at random by Optuna's %s", self.name,
                     ", ".join(sorted(ctx.space.conditional)), _exposed()[self.sampler])
        with _quiet(optuna):
            study = optuna.create_study(directions=directions, sampler=self.make_sampler())
            stalled, converged = 0, False  # all-known proposals in a row; has it stalled?
            while not ctx.done:
                n = min(self.batch_size, ctx.remaining)
                if stalled >= (1 if converged else STALL_LIMIT):
                    extra = self.fresh_samples(ctx, n)
                    if not extra:
                        return
                    for arch in extra:
                        study.enqueue_trial(params_of(ctx.space, arch))
                    self._step(study, ctx, budgeted, len(extra))
                    stalled, converged = 0, True
                    continue
                if self._step(study, ctx, budgeted, n):
                    stalled, converged = 0, False
                else:
                    stalled += n

    @staticmethod
    def _step(study: Any, ctx: SearchContext, budgeted: list, n: int) -> bool:
        """Ask ``n`` trials, evaluate them as one batch, tell the results; True when the
        batch held an architecture not evaluated before."""
        trials = [study.ask() for _ in range(n)]
        archs = [_suggest(ctx.space, trial) for trial in trials]
        new = any(not ctx.is_known(a) for a in archs)
        ctx.evaluate(archs)
        for trial, arch in zip(trials, archs):
            metrics = ctx.metrics_of(arch)
            if metrics is None:  # not evaluated (cannot happen within the budget)
                study.tell(trial, state=_optuna().trial.TrialState.FAIL)
                continue
            for name, value in constraints(budgeted, metrics).items():
                trial.set_constraint(name, value)
            study.tell(trial, [float(metrics[o.name]) for o in ctx.searched])
        return new


def _suggest(space: Space, trial: Any) -> Arch:
    """The trial's architecture: one ``suggest_categorical`` per decision that applies."""
    return space.define(lambda name, labels: labels.index(
        trial.suggest_categorical(name, list(labels))))


def params_of(space: Space, arch: Arch) -> dict[str, str]:
    """Optuna parameters of an architecture: option names of the decisions that apply
    (a define-by-run space's "unused" decisions are left out, as a trial would)."""
    unused = getattr(space, "unused_option", None)
    out = {}
    for i, (d, c) in enumerate(zip(space.decisions, arch.choices)):
        if unused is not None and c == unused(i):
            continue
        out[d.name] = d.options[c]
    return out


def constraints(budgeted: list, metrics: dict[str, float]) -> dict[str, float]:
    """Optuna constraint per budget: relative overshoot, feasible when <= 0."""
    out = {}
    for o in budgeted:
        value = float(metrics[o.name])
        over = (o.budget - value) if o.maximise else (value - o.budget)
        out[o.budget_text()] = over / abs(o.budget)
    return out


@contextlib.contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    """Optuna logs every told trial at INFO and warns about experimental features; the
    search context reports progress, so hold those back while the study runs."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=".*independent sampl.*")
            yield
    finally:
        optuna.logging.set_verbosity(level)


_CLASSES: dict[str, type[OptunaStrategy]] = {}


def strategy_class(sampler: str) -> type[OptunaStrategy]:
    """The strategy class of ``optuna:<sampler>``; UnknownName (listing the usable samplers)
    or one sentence on why an unsuitable sampler is refused."""
    key = sampler_key(sampler)
    if key in UNSUITABLE:
        raise HwnasError(f"strategy {PREFIX}{sampler} does not fit hwnas's categorical decisions: "
                         f"{UNSUITABLE[key]}; use {', '.join(names()[:3])}")
    exposed = _exposed()
    if key not in exposed:
        usable = [PREFIX + k for k in exposed if k not in UNSUITABLE]
        raise UnknownName("strategy", PREFIX + sampler, usable)
    if key not in _CLASSES:
        _CLASSES[key] = type(f"Optuna_{key}", (OptunaStrategy,),
                             {"name": PREFIX + key, "sampler": key, "__module__": __name__,
                              "__doc__": f"Optuna's {exposed[key]} driving hwnas's search loop."})
    return _CLASSES[key]
