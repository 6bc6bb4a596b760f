"""SMASH (hwnas.oneshot.smash): generated weights of the right shapes that depend on the
architecture, a hypernetwork forward equal to the extracted network with generated weights,
training through the hypernetwork with exact resume, and the CLI (train, eval, explore) with
bad input in one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import spaces
from hwnas.cli import main
from hwnas.evaluators import datasets
from hwnas.oneshot import make_supernet
from hwnas.oneshot.base import NoSupernet
from hwnas.oneshot.checkpoint import load_checkpoint
from hwnas.oneshot.smash import HyperNetwork, SmashEvaluator, load_smash
from hwnas.oneshot.training import train_supernet
from spaces.core.errors import Incompatible, InvalidOption
from tests.hwnas.oneshot.tiny_supernet import tiny

NB201 = {"C": 4, "N": 1}
EPOCHS, BATCH = 2, 16  # 64 training digits: 4 steps an epoch, 8 in all
SMALL = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1", "--input-size", "8"]
ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "nor_conv_3x3~2|")


def supernet_of(name: str, seed: int = 0):
    """(supernet, input size): fbnetv2 tiny at 16 px or a 4-channel one-cell nb201 at 8 px."""
    space = (spaces.get("fbnetv2", preset="tiny") if name == "fbnetv2"
             else spaces.get("nb201", **NB201))
    size = 16 if name == "fbnetv2" else 8
    torch.manual_seed(seed)
    return make_supernet(space, 10, size), size


@pytest.fixture(scope="module")
def data():
    return datasets.load("digits", 8, 3, max_samples=80)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the hypernetwork -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["fbnetv2", "nb201"])
def test_generated_weights_have_each_parameters_shape_and_depend_on_the_arch(name):
    supernet, _ = supernet_of(name)
    hyper = HyperNetwork(supernet, hidden=4)
    params = dict(supernet.named_parameters())
    a, b = supernet.space.sample(1), supernet.space.sample(2)
    assert a != b
    gen_a, gen_b = hyper.generated(a), hyper.generated(b)
    assert set(gen_a) == {n for n, p in params.items() if p.dim() >= 2}  # only weight tensors
    for n, w in gen_a.items():
        assert w.shape == params[n].shape and w.requires_grad
    assert any(not torch.equal(gen_a[n], gen_b[n]) for n in gen_a)
    # at initialisation: the supernet's own weights plus a small architecture-dependent term
    n = hyper.names[0]
    assert torch.allclose(gen_a[n], params[n], atol=0.5 * float(params[n].detach().abs().max()))


@pytest.mark.parametrize("name", ["fbnetv2", "nb201"])
def test_forward_equals_the_extracted_network_inside_loaded_and_restores(name):
    supernet, size = supernet_of(name)
    hyper = HyperNetwork(supernet, hidden=4)
    arch = supernet.space.sample(3)
    x = torch.randn(4, supernet.space.in_channels, size, size)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    for train in (False, True):
        supernet.train(train)
        with torch.no_grad():
            out = hyper(supernet, arch, x)
        with hyper.loaded(supernet, arch):
            net = supernet.extract(arch)
        assert torch.allclose(net(x), out, atol=1e-5)
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k, p in supernet.named_parameters())


def test_a_space_without_smash_is_refused(data):
    with pytest.raises(NoSupernet, match="nb201, fbnetv2") as info:
        HyperNetwork(tiny())
    assert "\n" not in str(info.value)
    with pytest.raises(NoSupernet):
        train_supernet(tiny(), datasets.load("digits", 8, 1, max_samples=80), "uniform", 1,
                       batch_size=BATCH, objective="smash")


# -- training ---------------------------------------------------------------------------------
class Crash(Exception):
    """Stands in for a kill in the in-process resume test."""


def smash_run(data, seed: int = 0, **kwargs):
    supernet, _ = supernet_of("nb201", seed)
    train_supernet(supernet, data, "uniform", epochs=EPOCHS, batch_size=BATCH, seed=seed,
                   objective="smash", objective_options={"hidden": 2}, **kwargs)
    return supernet


def test_training_moves_the_hypernetwork_and_resumes_exactly(tmp_path, data):
    ckpt = tmp_path / "smash.ckpt"
    initial, _ = supernet_of("nb201")

    def crash(done: int, path: Path) -> None:
        if done == 5:
            raise Crash

    with pytest.raises(Crash):
        smash_run(data, checkpoint=ckpt, every_steps=5, on_checkpoint=crash)
    torch.manual_seed(123)  # the resumed process starts with other RNG states
    resumed, _ = supernet_of("nb201", seed=99)  # and other initial weights
    seen: list[int] = []
    result = train_supernet(resumed, data, "uniform", epochs=EPOCHS, batch_size=BATCH,
                            checkpoint=ckpt, every_steps=5, resume=True, objective="smash",
                            objective_options={"hidden": 2},
                            on_step=lambda g, plan, losses: seen.append(g))
    assert result.start_step == 5 and seen == [5, 6, 7]
    meta, state = load_checkpoint(ckpt)
    assert meta["objective"] == {"name": "smash", "hidden": 2}
    hyper = load_smash(ckpt, resumed)

    uninterrupted_ckpt = tmp_path / "whole.ckpt"
    whole = smash_run(data, checkpoint=uninterrupted_ckpt)
    assert same(resumed.state_dict(), whole.state_dict())
    assert same(state["hyper"], load_checkpoint(uninterrupted_ckpt)[1]["hyper"])
    # the hypernetwork moved away from its start; the generated tensors of the supernet did
    # not (they are not trained), the BN affine parameters did
    fresh = HyperNetwork(initial, hidden=2)
    assert not same(hyper.state_dict(), fresh.state_dict())
    params, start = dict(whole.named_parameters()), dict(initial.named_parameters())
    assert all(torch.equal(params[n], start[n]) for n in hyper.names)
    assert any(not torch.equal(params[n], start[n]) for n in params if n not in hyper.names)
    # the evaluator ranks with generated weights: in range, memoised
    ev = SmashEvaluator(resumed.space, ["accuracy"], resumed, hyper, data, calib_batches=1,
                        batch_size=16)
    arch = resumed.space.sample(0)
    acc = ev._accuracy_many([arch, arch])
    assert 0 <= acc[0] <= 100 and acc[0] == acc[1] and ev.describe()["weights"]
    # a checkpoint of another objective is refused by load_smash, with one sentence
    labels = tmp_path / "labels.ckpt"
    train_supernet(supernet_of("nb201")[0], data, "uniform", 1, batch_size=32, checkpoint=labels)
    with pytest.raises(Incompatible, match="no SMASH hypernetwork") as info:
        load_smash(labels, supernet_of("nb201")[0])
    assert "\n" not in str(info.value)


def test_bad_smash_settings_are_refused(data):
    supernet, _ = supernet_of("nb201")
    with pytest.raises(InvalidOption, match="uniform"):
        train_supernet(supernet, data, "sandwich", 1, batch_size=BATCH, objective="smash")
    with pytest.raises(InvalidOption, match="unknown option"):
        train_supernet(supernet, data, "uniform", 1, batch_size=BATCH, objective="smash",
                       objective_options={"width": 3})
    with pytest.raises(InvalidOption, match="hidden width"):
        train_supernet(supernet, data, "uniform", 1, batch_size=BATCH, objective="smash",
                       objective_options={"hidden": 0})


# -- the command line ---------------------------------------------------------------------------
def _one_sentence(capsys, words: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwnas: error:") and words in err[0], err


def test_cli_trains_evaluates_and_explores_with_generated_weights(tmp_path, capsys):
    ckpt = tmp_path / "smash.ckpt"
    assert main(["supernet", "train", *SMALL, "--objective", "smash", "--hidden", "2",
                 "--epochs", "1", "--max-samples", "80", "--batch-size", "32", "-o", str(ckpt),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["objective"] == "smash" and out["hidden"] == 2 and out["sampler"] == "uniform"
    assert main(["supernet", "eval", str(ckpt), "--arch", ARCH, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weights"] == "generated by the SMASH hypernetwork" and out["objective"] == "smash"
    assert 0 <= out["rows"][0]["accuracy"] <= 100
    run = tmp_path / "run"
    assert main(["explore", *SMALL, "--evaluator", "smash", "--supernet-ckpt", str(ckpt),
                 "--objective", "accuracy,params", "--queries", "2", "--population", "2",
                 "--max-samples", "80", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    assert (run / "config.json").is_file()
    assert json.loads((run / "config.json").read_text())["evaluator"]["name"] == "smash"

    # bad input: one sentence, exit 2, nothing written
    never = tmp_path / "never"
    assert main(["explore", *SMALL, "--evaluator", "oneshot", "--supernet-ckpt", str(ckpt),
                 "--objective", "accuracy", "--queries", "2", "--no-progress",
                 "--out", str(never)]) == 2
    _one_sentence(capsys, "--evaluator smash")
    assert main(["explore", *SMALL, "--evaluator", "smash", "--supernet-ckpt", str(ckpt),
                 "--strategy", "rsps", "--objective", "accuracy", "--queries", "2",
                 "--no-progress", "--out", str(never)]) == 2
    _one_sentence(capsys, "generated per architecture")
    labels = tmp_path / "labels.ckpt"
    assert main(["supernet", "-q", "train", *SMALL, "--epochs", "1", "--max-samples", "80",
                 "--batch-size", "32", "--sampler", "uniform", "-o", str(labels)]) == 0
    assert main(["explore", *SMALL, "--evaluator", "smash", "--supernet-ckpt", str(labels),
                 "--objective", "accuracy", "--queries", "2", "--no-progress",
                 "--out", str(never)]) == 2
    _one_sentence(capsys, "--objective smash")
    for extra, words in (([*SMALL, "--sampler", "sandwich"], "leave --sampler out"),
                         ([*SMALL, "--hidden", "0"], "--hidden"),
                         (["--space", "fbnet"], "no SMASH hypernetwork")):
        assert main(["supernet", "train", *extra, "--objective", "smash",
                     "-o", str(never / "x.ckpt")]) == 2
        _one_sentence(capsys, words)
    assert main(["supernet", "train", *SMALL, "--hidden", "4", "-o", str(never / "x.ckpt")]) == 2
    _one_sentence(capsys, "--objective smash")
    assert not never.exists()
