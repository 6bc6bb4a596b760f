"""Optuna samplers as strategies (optuna:tpe, optuna:nsga2, ...) and the run's Optuna study."""

import json

import numpy as np
import optuna
import pandas as pd
import pytest

from hwnas import pareto, strategies
from hwnas.cli import main
from hwnas.evaluators.base import Evaluator
from hwnas.objectives import parse_objectives
from hwnas.optuna_study import STUDY_NAME, write_study
from spaces import HwnasError, UnknownName
from tests.hwnas.test_strategies import GridEvaluator, GridSpace, all_metrics

CONDITIONAL = '''
import torch.nn as nn

def build(choice, num_classes):
    depth = choice("depth", [1, 2])
    layers, c = [], 3
    for i in range(depth):
        w = choice(f"w{i}", [4, 8])
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
'''


def load(run_dir):
    return optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{run_dir / 'study.db'}")


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ---- the registry ---------------------------------------------------------------------------

def test_optuna_names_resolve_through_the_strategy_registry():
    tpe = strategies.get("optuna:tpe")
    assert tpe.name == "optuna:tpe" and strategies.get("optuna:tpe") is tpe
    assert strategies.get("optuna:NSGAII") is strategies.get("optuna:nsga2")
    assert {"optuna:tpe", "optuna:nsga2", "optuna:gp"} <= set(strategies.names())
    assert strategies.create("optuna:nsga2", seed=3, population=8).options()["population"] == 8
    assert strategies.get("optuna:random")().options()["sampler"] == "RandomSampler"


def test_unknown_and_unsuitable_samplers_are_refused():
    with pytest.raises(UnknownName, match="optuna:tpe"):
        strategies.get("optuna:nope")
    with pytest.raises(HwnasError, match="CMA-ES samples continuous"):
        strategies.get("optuna:cmaes")
    with pytest.raises(HwnasError, match="takes no --population"):
        strategies.create("optuna:tpe", population=10)


# ---- the search loop --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["optuna:tpe", "optuna:nsga2", "optuna:random"])
def test_sampler_search_has_the_standard_history(name):
    objectives = parse_objectives(["accuracy", "latency_ms"])
    result = strategies.create(name, seed=0, batch_size=3).run(GridSpace(), GridEvaluator(GridSpace(), [
        "accuracy", "latency_ms"]), objectives, 40)
    h = result.history
    assert list(h.columns) == ["query", "arch", "accuracy", "latency_ms", "feasible", "batch",
                               "eval_s", "time_s"]
    assert len(h) == 40 and h["arch"].is_unique and h["query"].tolist() == list(range(1, 41))
    truth = all_metrics().set_index("arch")
    assert np.allclose(h["accuracy"], truth.loc[h["arch"], "accuracy"])
    assert h["batch"].max() >= 40 / 3  # batches of at most 3 new architectures
    assert result.strategy == name and len(result.front) >= 1


def test_sampler_search_is_anytime_and_seeded():
    objectives = parse_objectives(["accuracy", "latency_ms"])

    def run(budget, seed=1):
        ev = GridEvaluator(GridSpace(), ["accuracy", "latency_ms"])
        return strategies.create("optuna:tpe", seed=seed).run(GridSpace(), ev, objectives, budget).history

    long, short = run(30), run(15)
    assert long["arch"].tolist()[:15] == short["arch"].tolist()
    assert run(15, seed=2)["arch"].tolist() != short["arch"].tolist()


def test_sampler_beats_random_on_the_grid_front():
    """TPE should find more of the known front than random search in 60 of 256 archs
    (median over 5 seeds), or the sampler is not being told the results."""
    objectives = parse_objectives(["accuracy", "latency_ms"])
    truth = all_metrics()
    lo = np.array([-truth["accuracy"].max(), truth["latency_ms"].min()])
    hi = np.array([-truth["accuracy"].min(), truth["latency_ms"].max()])

    def hv(name, seed):
        ev = GridEvaluator(GridSpace(), ["accuracy", "latency_ms"])
        h = strategies.create(name, seed=seed).run(GridSpace(), ev, objectives, 60).history
        return pareto.normalised_hypervolume(h, objectives, lo, hi)

    tpe = np.median([hv("optuna:tpe", s) for s in range(5)])
    rnd = np.median([hv("random", s) for s in range(5)])
    assert tpe > rnd


def test_exhausting_a_small_space_terminates():
    # the grid has 256 archs; asking for all of them makes the sampler repeat itself,
    # which must end in random unevaluated archs being enqueued, not an endless loop
    objectives = parse_objectives(["accuracy", "latency_ms"])
    ev = GridEvaluator(GridSpace(), ["accuracy", "latency_ms"])
    h = strategies.create("optuna:random", seed=0, batch_size=16).run(GridSpace(), ev, objectives,
                                                                       300).history
    assert len(h) == 256 and h["arch"].is_unique


def test_budgets_become_optuna_constraints():
    objectives = parse_objectives(["accuracy"], ["latency_ms<=6"])
    seen = []

    class Watch(strategies.get("optuna:tpe")):
        def make_sampler(self):
            sampler = super().make_sampler()
            original = sampler.after_trial

            def after_trial(study, trial, state, values):
                seen.append((trial.params, trial.constraints, values))
                return original(study, trial, state, values)

            sampler.after_trial = after_trial
            return sampler

    space = GridSpace()
    Watch(seed=0).run(space, GridEvaluator(space, ["accuracy", "latency_ms"]), objectives, 40)
    assert len(seen) >= 40
    for params, constraints, values in seen:
        choices = [space.decisions[i].options.index(params[f"d{i}"]) for i in range(4)]
        truth = GridEvaluator.metrics_of(choices)
        assert constraints == {"latency_ms<=6": pytest.approx((truth["latency_ms"] - 6) / 6)}
        assert values == [pytest.approx(truth["accuracy"])]  # one searched objective
    feasible = [c["latency_ms<=6"] <= 0 for _, c, _ in seen]
    assert any(feasible) and not all(feasible)


def test_conditional_builder_space_is_asked_define_by_run(tmp_path):
    import spaces

    (tmp_path / "cond.py").write_text(CONDITIONAL)
    space = spaces.get(f"{tmp_path / 'cond.py'}:build")
    assert space.size == 2 + 4

    class Costs(Evaluator):
        name = "costs"

        def supported_metrics(self):
            return ("accuracy", "latency_ms")

        def _evaluate_many(self, archs):
            out = []
            for a in archs:
                widths = [int(space.decisions[i].options[c]) for i, c in enumerate(a.choices)
                          if space.decisions[i].name.startswith("w") and c != space.unused_option(i)]
                out.append({"accuracy": 50.0 + sum(widths), "latency_ms": float(len(widths) + sum(widths))})
            return out

    objectives = parse_objectives(["accuracy", "latency_ms"])
    h = strategies.create("optuna:tpe", seed=0).run(space, Costs(space, ["accuracy", "latency_ms"]),
                                                     objectives, 6).history
    assert sorted(h["arch"]) == sorted(space.to_string(a) for a in space.sample_many(6, 0))


# ---- the CLI and the study --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["optuna:tpe", "optuna:nsga2"])
def test_cli_optuna_search_writes_run_folder_and_readable_study(tmp_path, capsys, name):
    run = tmp_path / "run"
    assert main(["explore", "--space", "nb201", "--evaluator", "tabular", "--device-table", "gold_6226",
                 "--strategy", name, "--queries", "30", "--out", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"optuna-dashboard sqlite:///{run / 'study.db'}" in out
    for part in ("config.json", "cache.jsonl", "history.csv", "pareto.csv", "pareto.png",
                 "best/arch.json", "study.db"):
        assert (run / part).is_file(), part
    config = json.loads((run / "config.json").read_text())
    assert config["strategy"]["name"] == name
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 30 and history["arch"].is_unique

    study = load(run)
    trials = study.get_trials()
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["accuracy", "latency_ms"]
    assert len(trials) == 30
    for trial, row in zip(trials, history.itertuples()):
        assert trial.user_attrs["arch"] == row.arch
        assert trial.values == pytest.approx([row.accuracy, row.latency_ms])
        assert trial.user_attrs["latency_ms"] == pytest.approx(row.latency_ms)
        assert trial.user_attrs["latency_source"].startswith("table gold_6226")
        assert trial.user_attrs["budgets"] == {}
        assert len(trial.params) == 6 and set(trial.params.values()) <= {
            "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}
    assert study.user_attrs["space"] == "nb201" and study.user_attrs["strategy"]["name"] == name
    front = {t.user_attrs["arch"] for t in study.best_trials}
    assert front == set(pd.read_csv(run / "pareto.csv")["arch"])


def test_cli_study_records_budgets_as_constraints(tmp_path):
    run = tmp_path / "run"
    assert main(["explore", "--space", "nb201", "--evaluator", "tabular", "--device-table", "gold_6226",
                 "--strategy", "evolution", "--queries", "20", "--budget", "latency_ms<=8",
                 "--out", str(run), "--no-progress"]) == 0
    history = pd.read_csv(run / "history.csv")
    trials = load(run).get_trials()
    for trial, row in zip(trials, history.itertuples()):
        assert trial.user_attrs["budgets"] == {"latency_ms": 8.0}
        assert trial.constraints == {"latency_ms<=8": pytest.approx((row.latency_ms - 8) / 8)}
        assert trial.user_attrs["feasible"] == bool(row.feasible)


def test_cli_unknown_optuna_sampler_is_one_sentence(tmp_path, capsys):
    for name, message in (("optuna:nope", "unknown strategy 'optuna:nope'"),
                          ("optuna:cmaes", "does not fit hwnas's categorical decisions")):
        assert main(["explore", "--space", "nb201", "--evaluator", "tabular", "--device-table",
                     "gold_6226", "--strategy", name, "--queries", "5",
                     "--out", str(tmp_path / name.replace(":", "_"))]) == 2
        assert message in error_line(capsys)


def _history(n):
    space = GridSpace()
    ev = GridEvaluator(space, ["accuracy", "latency_ms"])
    objectives = parse_objectives(["accuracy", "latency_ms"], ["latency_ms<=9"])
    h = strategies.create("random", seed=0).run(space, ev, objectives, n).history
    return space, objectives, h


def test_study_is_extended_then_rebuilt_and_never_half_written(tmp_path, monkeypatch):
    space, objectives, history = _history(12)
    path = tmp_path / "study.db"
    write_study(path, history.iloc[:5], objectives, space)
    write_study(path, history, objectives, space)  # extends the 5 stored trials
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
    assert [t.user_attrs["arch"] for t in study.trials] == history["arch"].tolist()
    other = history.iloc[::-1].reset_index(drop=True)
    write_study(path, other.iloc[:7], objectives, space)  # another history: rebuilt, not mixed
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
    assert [t.user_attrs["arch"] for t in study.trials] == other["arch"].tolist()[:7]

    before = path.read_bytes()
    broken = history.copy()
    broken.loc[11, "arch"] = "9-9-9-9"  # not a member of the grid
    with pytest.raises(HwnasError):
        write_study(path, broken, objectives, space)
    assert path.read_bytes() == before  # the failed write left the previous study
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.db"]  # and no temporary file
