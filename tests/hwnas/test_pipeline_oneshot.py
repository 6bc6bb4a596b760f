"""The pipeline's one-shot engine: train the supernet once, answer every budget from it,
ship inherited weights; a second device reuses the checkpoint and trains nothing.

Devices are the exact stand-ins of tests/hwnas/macs_device.py, so verdicts do not
depend on the load of the test machine.
"""

from __future__ import annotations

import json

import onnx
import pandas as pd
import pytest

from hwnas.cli import main
from tests.hwnas import macs_device

pytest.importorskip("onnxruntime")

SMALL = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1", "--input-size", "8"]
TINY = ["--strategy", "oneshot", "--initial", "8", "--holdout", "5", "--active-measurements", "0",
        "--target", "1.0", "--pool", "40", "--sweep", "3", "--max-rounds", "1", "--queries", "24",
        "--supernet-epochs", "1", "--finetune-epochs", "0", "--max-samples", "256",
        "--margin", "0.05", "--no-progress"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("oneshot") / "first"
    assert main(["search", *SMALL, "--device", macs_device.SPEC, "--out", str(out), *TINY]) == 0
    return out


def test_the_supernet_is_trained_once_and_every_network_inherits_it(first_run):
    assert (first_run / "supernet.ckpt").is_file()
    front = pd.read_csv(first_run / "pareto.csv")
    assert len(front) == 3
    for row in front.itertuples():
        model = onnx.load(first_run / str(row.onnx))
        meta = {p.key: p.value for p in model.metadata_props}
        assert "inherited from the supernet (sandwich, 1 epochs)" in meta["hwnas.trained_on"]
    results = [json.loads(p.read_text()) for p in first_run.glob("networks/*/result.json")]
    assert results and all(r["recipe"].startswith("inherited from supernet sha256:")
                           for r in results)
    config = json.loads((first_run / "config.json").read_text())["pipeline"]
    assert config["strategy"] == "oneshot" and config["sampler"] == "sandwich"


def test_a_second_device_reuses_the_checkpoint_and_trains_nothing(first_run, tmp_path, capsys,
                                                                  monkeypatch):
    import hwnas.oneshot.training as training

    def no_training(*args, **kwargs):
        raise AssertionError("the second device must not train the supernet")

    monkeypatch.setattr(training, "train_supernet", no_training)
    out = tmp_path / "second"
    assert main(["search", *SMALL, "--device", macs_device.SPEC2, "--out", str(out), *TINY,
                 "--supernet-ckpt", str(first_run / "supernet.ckpt")]) == 0
    printed = capsys.readouterr().out
    assert "nothing to train" in printed
    # accuracy once, latency per device: the first run's inherited accuracies are reused
    assert f"inherited accuracies of this supernet reused from {first_run}" in printed
    assert not (out / "supernet.ckpt").exists()
    assert len(pd.read_csv(out / "pareto.csv")) == 3
    # the networks both devices chose are the first one's files, copied, timed again here
    first = {p.parent.name: p.parent for p in first_run.glob("networks/*/result.json")}
    shared = [p.parent for p in out.glob("networks/*/result.json") if p.parent.name in first]
    assert shared, "no network in common between the devices (the test needs one)"
    for folder in shared:
        assert (folder / "weights.pt").read_bytes() == (first[folder.name] / "weights.pt").read_bytes()
        timing = json.loads((folder / "timing.json").read_text())
        assert timing != json.loads((first[folder.name] / "timing.json").read_text())


def test_enas_trains_its_controller_with_the_supernet_and_searches_with_it(tmp_path):
    """--sampler enas trains the controller and the weights alternately; --search-strategy
    enas then samples the archive from that controller (stage two through any strategy)."""
    from hwnas.oneshot.enas import controller_from_checkpoint
    from hwnas.pipeline import oneshot_search

    out = tmp_path / "enas"
    used = []
    real = oneshot_search.search_with_strategy

    def spy(name, *args, **kwargs):
        used.append(name)
        return real(name, *args, **kwargs)

    oneshot_search.search_with_strategy = spy
    try:
        assert main(["search", *SMALL, "--device", macs_device.SPEC, "--out", str(out), *TINY,
                     "--sampler", "enas", "--search-strategy", "enas"]) == 0
    finally:
        oneshot_search.search_with_strategy = real
    assert used and set(used) == {"enas"}
    assert len(pd.read_csv(out / "pareto.csv")) >= 1
    config = json.loads((out / "config.json").read_text())["pipeline"]
    assert config["sampler"] == "enas" and config["search_strategy"] == "enas"
    from hwnas.oneshot import make_supernet
    import spaces

    space = spaces.get("nb201", C=4, N=1)
    assert controller_from_checkpoint(str(out / "supernet.ckpt"), make_supernet(space, 10, 8))


@pytest.mark.parametrize("extra, message", [
    (["--finetune-epochs", "-1"], "--finetune-epochs cannot be negative"),
    (["--sampler", "nope"], "unknown sampler 'nope'"),
    (["--supernet-ckpt", "/no/such.ckpt"], "not found"),
    (["--search-strategy", "nope"], "unknown strategy 'nope'"),
    (["--search-strategy", "enas"], "add --sampler enas"),
    (["--paths", "3"], "go with --strategy instanas"),
    (["--strategy", "instanas", "--paths", "1"], "--paths is the number of architectures"),
    (["--strategy", "instanas", "--latency-weight", "-1"], "--latency-weight cannot be negative"),
])
def test_bad_oneshot_settings_are_one_sentence_and_write_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    assert main(["search", *SMALL, "--device", macs_device.SPEC, "--out", str(out), *TINY,
                 *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_instanas_routes_each_image_to_a_path_of_the_front(first_run, tmp_path, capsys):
    """--strategy instanas: the one-shot run, then stage 6 trains the per-image controller
    over --paths architectures of the searched front and ships the folder the router runs."""
    import numpy as np

    from hwnas.evaluators import datasets
    from hwnas.export.instance_folder import InstanceRouter

    out = tmp_path / "insta"
    tiny = [*TINY[2:], "--strategy", "instanas", "--paths", "3", "--latency-weight", "0.3"]
    assert main(["search", *SMALL, "--device", macs_device.SPEC, "--out", str(out), *tiny,
                 "--supernet-ckpt", str(first_run / "supernet.ckpt")]) == 0
    printed = capsys.readouterr().out
    assert "[6/6] InstaNAS" in printed and "per image (controller + chosen path)" in printed
    summary = json.loads((out / "instanas.json").read_text())
    router = InstanceRouter(out / "instanas")
    assert len(router.sessions) == len(summary["paths"]) >= 2
    assert summary["controller_config"]["latency_weight"] == 0.3
    assert abs(sum(p["usage"] for p in summary["paths"]) - 1) < 1e-9
    expected = summary["controller_ms"] + sum(p["usage"] * p["latency_ms"] for p in summary["paths"])
    assert summary["mean_ms"] == pytest.approx(expected)
    data = datasets.load("cluttered-digits", 8, 3, max_samples=256, seed=0)
    x = data.x_val.numpy()
    logits, chosen = router(x)
    for k, session in enumerate(router.sessions):  # every image's answer is its path's own
        if (chosen == k).any():
            direct = session.run(None, {router.input_name: x[chosen == k]})[0]
            np.testing.assert_allclose(logits[chosen == k], direct, rtol=1e-5, atol=1e-5)
    # hwnas export ships the folder as one checked copy; --inspect describes it
    shipped = tmp_path / "shipped"
    assert main(["export", str(out), "--instanas", "-o", str(shipped)]) == 0
    assert len(InstanceRouter(shipped).sessions) == len(summary["paths"])
    capsys.readouterr()
    assert main(["export", "--inspect", str(shipped)]) == 0
    assert "SHA-256 as exported" in capsys.readouterr().out
    assert main(["export", str(out), "--instanas"]) == 2  # where to: -o is needed
    assert "-o FOLDER" in capsys.readouterr().err
    # resumed: the finished stage is restored from the folder, which is checked (hashes)
    assert main(["search", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "(stored)" in capsys.readouterr().out
    (out / "instanas.json").write_text("{", encoding="utf-8")
    assert main(["search", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert "InstaNAS summary" in capsys.readouterr().err
    (out / "instanas" / "path-0.onnx").write_bytes(b"swapped")
    assert main(["search", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert "altered or replaced" in capsys.readouterr().err


def test_a_checkpoint_of_another_space_or_size_is_refused(first_run, tmp_path, capsys):
    ckpt = str(first_run / "supernet.ckpt")
    for other, message in ((["--space", "nb201", "--space-opt", "C=8", "--space-opt", "N=1",
                             "--input-size", "8"], "another preset or options"),
                           ([*SMALL[:-1], "12"], "trained at 8 px inputs, not 12 px")):
        out = tmp_path / "never"
        assert main(["search", *other, "--device", macs_device.SPEC, "--out", str(out), *TINY,
                     "--supernet-ckpt", ckpt]) == 2
        err = capsys.readouterr().err
        assert message in err and not out.exists(), err
    # a supernet trained without labels has no classifier the pipeline could ship
    pi = tmp_path / "pi.ckpt"
    assert main(["supernet", "train", *SMALL, "--dataset", "cluttered-digits", "--epochs", "1",
                 "--max-samples", "256", "--objective", "pi", "-o", str(pi)]) == 0
    capsys.readouterr()
    out = tmp_path / "never"
    assert main(["search", *SMALL, "--device", macs_device.SPEC, "--out", str(out), *TINY,
                 "--supernet-ckpt", str(pi)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained with the pi objective" in err[0] and not out.exists()


@pytest.mark.parametrize("strategy", ["oneshot", "instanas"])
def test_a_builder_space_has_no_supernet_and_says_why(tmp_path, capsys, strategy):
    from tests.spaces.builder_sources import plain

    source = tmp_path / "myspace.py"
    source.write_text(plain(widths=(4, 8), kernels=(1, 3), depths=(1, 2)))
    out = tmp_path / "never"
    assert main(["search", "--space", f"{source}:build", "--device", macs_device.SPEC, "--out",
                 str(out), *TINY, "--strategy", strategy]) == 2
    err = capsys.readouterr().err
    assert "--strategy nao" in err and len(err.strip().splitlines()) == 1 and not out.exists()
