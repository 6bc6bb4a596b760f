"""`hwnas explore` / `hwnas search` / `hwnas pareto` end to end, and bad input: one sentence, exit 2, run untouched."""

import json

import pandas as pd
import pytest

from hwnas.cli import main

TABLE_ARGS = ["explore", "--space", "nb201", "--device-table", "gold_6226", "--queries", "30",
              "--no-progress"]


def _snapshot(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "nb201"
    assert main([*TABLE_ARGS, "--out", str(out)]) == 0
    return out


def test_tabular_search_writes_the_run_folder(table_run, capsys):
    for name in ("config.json", "history.csv", "pareto.csv", "pareto.png", "cache.jsonl",
                 "best/arch.json"):
        assert (table_run / name).is_file(), name
    history = pd.read_csv(table_run / "history.csv")
    assert len(history) == 30 and history["arch"].is_unique
    assert {"accuracy", "latency_ms", "feasible", "eval_s", "time_s"} <= set(history.columns)
    front = pd.read_csv(table_run / "pareto.csv")
    best = json.loads((table_run / "best/arch.json").read_text())
    assert best["arch"] == front["arch"].iloc[0] and best["metrics"]["accuracy"] == history["accuracy"].max()
    config = json.loads((table_run / "config.json").read_text())
    assert config["strategy"]["name"] == "evolution" and config["evaluator"]["latency"]["device"] == "gold_6226"
    assert main(["pareto", str(table_run), "--plot", str(table_run / "again.png")]) == 0
    out = capsys.readouterr().out
    assert f"{len(front)} on the front" in out and (table_run / "again.png").is_file()


def test_explore_json_is_valid_json_alone_on_stdout(tmp_path, capsys):
    assert main([*TABLE_ARGS, "--queries", "12", "--out", str(tmp_path / "j"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # nothing but the JSON document
    assert out["evaluated"] == 12 and out["best"]["arch"] == out["front"][0]["arch"]
    assert {"accuracy", "latency_ms"} <= set(out["front"][0])


@pytest.mark.parametrize("extra, flag", [
    (["--no-pipeline"], "--no-pipeline"),
    (["--evaluator", "tabular"], "--evaluator"),
    (["--device-table", "gold_6226"], "--device-table"),
    (["--population", "8", "--reward", "monas"], "--population, --reward"),
    (["--export-onnx"], "--export-onnx"),
])
def test_search_is_the_pipeline_only_single_search_options_name_explore(tmp_path, capsys, extra,
                                                                       flag):
    out = tmp_path / "never"
    assert main(["search", "--space", "nb201", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err
    assert f"`hwnas explore --space nb201 " in err and "--no-pipeline --" not in err
    assert not out.exists()


def test_search_resume_of_an_explore_run_names_explore(table_run, capsys):
    before = _snapshot(table_run)
    assert main(["search", "--out", str(table_run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "single search" in err and f"hwnas explore --out {table_run} --resume" in err
    assert _snapshot(table_run) == before


def test_resume_continues_without_re_evaluating(table_run, capsys):
    lines = (table_run / "cache.jsonl").read_text().splitlines()
    assert main(["explore", "--out", str(table_run), "--resume", "--queries", "40", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "10 new evaluations" in out  # the settings came from the stored run
    assert (table_run / "cache.jsonl").read_text().splitlines()[:30] == lines
    assert len(pd.read_csv(table_run / "history.csv")) == 40


@pytest.mark.parametrize("extra, message", [
    (["--strategy", "annealing"], "unknown strategy 'annealing'"),
    (["--objective", "speed"], "unknown objective 'speed'"),
    (["--budget", "latency_ms<5x"], "malformed budget"),
    (["--budget", "latency_ms<=1"], "infeasible"),
    (["--resume", "--device-table", "fpga"], "different config"),
    ([], "already exists"),
])
def test_bad_input_is_one_sentence_exit_2_and_the_run_is_untouched(table_run, capsys, extra, message):
    before = _snapshot(table_run)
    args = [*TABLE_ARGS, "--out", str(table_run), *extra]
    if "--resume" in extra:  # the later --device-table wins: a different latency source
        args = ["explore", "--out", str(table_run), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("hwnas: error:")
    assert _snapshot(table_run) == before


def test_missing_dataset_path_exit_2(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["search", "--dataset", str(tmp_path / "no-such-folder"), "--out", str(out)]) == 2
    assert "neither one of" in capsys.readouterr().err and not out.exists()


def test_default_search_reduced(tmp_path, capsys):
    """A single search (evolution: --population selects it) on the default space, data and
    live ort:cpu latency, reduced: few candidates, one epoch, a subset of digits."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "default"
    code = main(["explore", "--queries", "4", "--population", "2", "--batch", "2", "--epochs", "1",
                 "--max-samples", "300", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Pareto front" in printed and "latency_ms" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["space"]["key"].startswith("fbnetv2") and config["evaluator"]["name"] == "train"
    assert config["evaluator"]["latency"]["kind"] == "device"
    assert config["evaluator"]["latency"]["device"].startswith("ort")
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 4 and (history["latency_ms"] > 0).all()
    assert history["accuracy"].between(0, 100).all() and history["accuracy"].max() > 20


def test_supernet_flag_chooses_the_kind_in_the_pipeline_and_a_single_search():
    import argparse

    from hwnas.cli import explore_cmd, search_cmd
    from spaces.errors import HwnasError

    parser = argparse.ArgumentParser()
    search_cmd.add_arguments(parser)
    args = parser.parse_args(["--supernet", "multipath"])
    assert search_cmd.single_search_flags(args) == []  # the pipeline takes the flag (its kind)
    from hwnas.pipeline import PipelineSettings

    typed = {field: getattr(args, name, None) for name, field in search_cmd.PIPELINE_SETTINGS.items()}
    assert PipelineSettings.merged(typed).supernet == "multipath"
    parser = argparse.ArgumentParser()
    explore_cmd.add_arguments(parser)
    args = parser.parse_args(["--supernet", "multipath", "--strategy", "supernet"])
    settings = explore_cmd.resolve_settings(args)
    assert settings["strategy"] == "supernet"
    assert explore_cmd._strategy(settings).config.supernet == "multipath"
    args = parser.parse_args(["--strategy", "evolution", "--supernet", "singlepath"])
    with pytest.raises(HwnasError, match="--supernet"):
        explore_cmd._strategy(explore_cmd.resolve_settings(args))


def test_a_tabular_run_can_be_loaded_listed_and_exported_honestly(table_run, capsys):
    import hwnas
    from hwnas import onnx_meta
    from hwnas.results import SearchRun

    run = hwnas.load_run(table_run)
    assert isinstance(run, SearchRun) and len(run.history) > 0 and run.best is not None
    assert main(["pareto", str(table_run), "--plot", str(table_run / "again.png")]) == 0
    capsys.readouterr()
    # the table's accuracy is the benchmark's, not a file's: random weights need --untrained
    assert main(["export", str(table_run), "--pick", "0", "--no-measure"]) == 2
    assert "no trained weights" in capsys.readouterr().err
    assert main(["export", str(table_run), "--pick", "0", "--no-measure", "--untrained"]) == 0
    meta = onnx_meta.read_metadata(table_run / "pareto-0.onnx")
    assert meta["trained"] is False and "accuracy" not in meta
    assert "benchmark table" in meta["accuracy_source"]
    assert isinstance(meta["metrics"]["accuracy"], float)  # kept, labelled, typed


# ---- nothing lost, nothing half-written ---------------------------------------------------
@pytest.fixture
def damaged_copy(table_run, tmp_path):
    """A copy of the finished tabular run, to damage one file of."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(table_run, copy)
    return copy


@pytest.mark.parametrize("name, content, message", [
    ("cache.jsonl", b"\x00\xff not text at all\n", "cache.jsonl is corrupt"),
    ("cache.jsonl", b'{"space": "nb201", "choi\n{"space": "nb201", "choices": [0,0,0,0,0,0]}\n',
     "cache.jsonl line 1 is corrupt"),
    ("history.csv", b"", "history.csv is empty"),
    ("history.csv", b"\x00\xff\xfe\n\x01", "history.csv is not a readable CSV table"),
    ("config.json", b"", "config.json is empty"),
    ("config.json", b"{not json", "config.json is not valid JSON"),
])
def test_resume_of_a_damaged_run_names_the_file_and_touches_nothing(damaged_copy, capsys, name,
                                                                     content, message):
    from tests.hwnas.failures import digests, fails_in_one_sentence

    (damaged_copy / name).write_bytes(content)
    before = digests(damaged_copy)
    fails_in_one_sentence(capsys, "explore", "--out", damaged_copy, "--resume", "--queries", "40",
                          "--no-progress", contains=message)
    assert digests(damaged_copy) == before


@pytest.mark.parametrize("name, content, message", [
    ("history.csv", b"", "history.csv is empty"),
    ("history.csv", b"arch,accuracy\nx,1\n", "lacks the column(s) latency_ms"),
    ("history.csv", b"arch,accuracy,latency_ms\nx,high,1\n", "something else than numbers"),
    ("config.json", b"[]", "is not a run's config"),
    ("config.json", b'{"objectives": 3}', "does not describe the run's objectives"),
])
def test_pareto_of_a_damaged_run_is_one_sentence(damaged_copy, capsys, name, content, message):
    from tests.hwnas.failures import digests, fails_in_one_sentence

    (damaged_copy / name).write_bytes(content)
    before = digests(damaged_copy)
    fails_in_one_sentence(capsys, "pareto", damaged_copy, contains=message)
    assert digests(damaged_copy) == before


@pytest.mark.parametrize("plot", ["/proc/x.png", "fifo", "devnull_link"])
def test_pareto_plot_to_an_unwritable_path_is_one_sentence(damaged_copy, capsys, plot):
    import os

    from tests.hwnas.failures import digests, fails_in_one_sentence

    if plot != "/proc/x.png":
        target = damaged_copy / "new.png"
        os.mkfifo(target) if plot == "fifo" else target.symlink_to("/dev/null")
        plot = target
    before = digests(damaged_copy)
    fails_in_one_sentence(capsys, "pareto", damaged_copy, "--plot", plot, contains="cannot write")
    assert digests(damaged_copy) == before


def test_pareto_plot_on_a_full_disk_keeps_the_previous_picture(damaged_copy, capsys, monkeypatch):
    from tests.hwnas.failures import digests, fails_in_one_sentence, full_disk

    before = digests(damaged_copy)
    full_disk(monkeypatch)
    fails_in_one_sentence(capsys, "pareto", damaged_copy, contains="No space left")
    assert digests(damaged_copy) == before


def test_a_search_on_a_full_disk_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    from tests.hwnas.failures import fails_in_one_sentence, full_disk, no_free_space

    out = tmp_path / "runs" / "new"
    no_free_space(monkeypatch)
    fails_in_one_sentence(capsys, *TABLE_ARGS, "--out", out, contains="0 bytes free")
    assert not out.exists()
    monkeypatch.undo()
    full_disk(monkeypatch)  # the check passed, then the first write fails
    fails_in_one_sentence(capsys, *TABLE_ARGS, "--out", out, contains="No space left")
    assert not out.exists()


@pytest.mark.parametrize("budgets, message", [
    (["accuracy>=94", "latency_ms<=5"], "no architecture of nb201 meets the budgets"),
    (["accuracy>=94", "macs<=50M"], "no architecture of nb201 meets the budgets"),
])
def test_budgets_no_architecture_meets_together_are_refused(tmp_path, capsys, budgets, message):
    """Each budget alone is reachable (accuracy 94.37 at best, 2.66 ms / 7.8M MACs at
    least), but no cell of the table has both: searching could only come back empty."""
    from tests.hwnas.failures import fails_in_one_sentence

    objective = ["--objective", "accuracy,macs"] if "macs<=50M" in budgets else []
    argv = [*TABLE_ARGS, "--out", tmp_path / "run", *objective]
    for budget in budgets:
        argv += ["--budget", budget]
    fails_in_one_sentence(capsys, *argv, contains=message)
    assert not (tmp_path / "run").exists()
    argv[argv.index("accuracy>=94")] = "accuracy>=85"  # jointly reachable: the search runs
    assert main([str(a) for a in argv]) == 0
