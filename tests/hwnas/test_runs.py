"""Run folders: an interrupted run resumed from its cache reproduces the uninterrupted one."""

import json

import pytest

from hwnas import strategies
from hwnas.evaluators.cache import CachedEvaluator
from hwnas.runs import RunFolder, RunFolderError
from tests.hwnas.test_strategies import OBJECTIVES, GridEvaluator, GridSpace

CONFIG = {"space": {"name": "grid"}, "strategy": {"name": "evolution"}, "queries": 60}


class Stop(Exception):
    pass


def _run(folder: RunFolder, name: str, budget: int, stop_after_batches: int | None = None,
         **options):
    space = GridSpace()
    inner = GridEvaluator(space, ["accuracy", "latency_ms"])
    cached = CachedEvaluator(inner, folder.cache_path)
    batches = []

    def on_batch(ctx):
        folder.write_history(ctx.history())
        batches.append(ctx.used)
        if stop_after_batches is not None and len(batches) >= stop_after_batches:
            raise Stop  # stands for a kill between two batches

    result = strategies.create(name, seed=4, **options).run(space, cached, OBJECTIVES, budget,
                                                            on_batch=on_batch)
    return result, inner


@pytest.mark.parametrize("name, options", [("evolution", {"population": 10, "batch_size": 3}),
                                           ("dpp", {"initial": 6, "batch_size": 5, "trees": 8,
                                                    "pool_random": 32}),
                                           ("optuna:tpe", {"batch_size": 3}),
                                           ("rl", {"batch_size": 3, "memory_buffer": 5}),
                                           ("parsec", {"batch_size": 4})])
def test_resume_reproduces_uninterrupted_history(tmp_path, name, options):
    whole = RunFolder(tmp_path / "whole")
    whole.start(CONFIG, resume=False)
    reference, _ = _run(whole, name, 45, **options)

    broken = RunFolder(tmp_path / "broken")
    broken.start(CONFIG, resume=False)
    with pytest.raises(Stop):
        _run(broken, name, 45, stop_after_batches=5, **options)
    stopped = len(broken.read_history())
    assert 10 <= stopped < 45
    broken.start(CONFIG, resume=True)
    resumed, inner = _run(broken, name, 45, **options)
    assert inner.queries == 45 - stopped  # nothing cached was evaluated again
    cols = ["query", "arch", "accuracy", "latency_ms", "feasible"]
    assert resumed.history[cols].equals(reference.history[cols])
    assert resumed.front["arch"].tolist() == reference.front["arch"].tolist()

    # a larger budget on resume extends the run exactly (strategies are anytime)
    longer, inner = _run(broken, name, 51, **options)
    assert inner.queries == 6
    assert longer.history["arch"].tolist()[:45] == reference.history["arch"].tolist()


def _snapshot(path):
    return {p.name: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_folder_from_another_config_is_refused_and_untouched(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.start(CONFIG, resume=False)
    folder.write_history(__import__("pandas").DataFrame({"query": [1], "arch": ["0-0-0-0"]}))
    before = _snapshot(folder.path)
    other = dict(CONFIG, strategy={"name": "random"})
    with pytest.raises(RunFolderError, match=r"different config.*strategy\.name \('evolution'"):
        folder.start(other, resume=True)
    with pytest.raises(RunFolderError, match="already exists and is not empty"):
        folder.start(CONFIG, resume=False)
    assert _snapshot(folder.path) == before
    # the query budget may change on resume
    assert folder.start(dict(CONFIG, queries=80), resume=True)["queries"] == 80


def test_non_run_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="not a hwnas run folder"):
        RunFolder(tmp_path).start(CONFIG, resume=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "config.json").exists()


def test_best_record_round_trip(tmp_path):
    folder = RunFolder(tmp_path / "r")
    folder.start(CONFIG, resume=False)
    record = {"space": "grid", "space_kwargs": {}, "choices": [1, 2, 3, 0], "arch": "1-2-3-0"}
    folder.write_best(record)
    assert folder.read_best() == record
    assert json.loads((folder.path / "config.json").read_text())["queries"] == 60
    assert folder.best_model_path == folder.path / "best" / "model.onnx"
