"""Supernet training: a run killed with SIGKILL and resumed ends with the weights of an
uninterrupted run and repeats no step; checkpoints are refused, in one sentence, when
truncated, corrupt, or written for another space, preset, input size, dataset or
setting."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hwnas.oneshot.checkpoint import (load_checkpoint, load_supernet, read_meta,
                                      save_checkpoint, supernet_meta)
from hwnas.oneshot.training import train_supernet
from spaces.core.errors import DamagedFile, Incompatible, InvalidOption
from tests.hwnas.oneshot.tiny_supernet import TinySpace, TinySupernet, digits, save_data, tiny

ROOT = Path(__file__).resolve().parents[3]
EPOCHS, BATCH = 2, 16  # 64 training digits: 4 steps an epoch, 8 in all


@pytest.fixture(scope="module")
def data():
    return digits()


def one_sentence(error: BaseException) -> bool:
    text = str(error)
    return "\n" not in text and ". " not in text.rstrip(".")


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Crash(Exception):
    """Stands in for a kill in the in-process resume tests."""


def uninterrupted(data, sampler: str, seed: int = 0) -> dict:
    supernet = tiny(seed=seed)
    train_supernet(supernet, data, sampler, epochs=EPOCHS, batch_size=BATCH, seed=seed)
    return supernet.state_dict()


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, data):
    ckpt, log, out = tmp_path / "super.ckpt", tmp_path / "steps.log", tmp_path / "final.pt"
    save_data(data, tmp_path / "data.pt")
    child = [sys.executable, "-m", "tests.hwnas.oneshot.tiny_supernet", "train",
             "--sampler", "sandwich", "--epochs", str(EPOCHS), "--batch-size", str(BATCH),
             "--checkpoint", str(ckpt), "--every", "3", "--log", str(log), "--out", str(out),
             "--data", str(tmp_path / "data.pt")]
    # checkpoints fall after steps 3, 4 (epoch end), 6, 8; the child kills itself right after
    # writing the one after step 6, in the middle of the second epoch
    killed = subprocess.run(child + ["--kill-after", "6"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists() and read_meta(ckpt)["step"] == 6
    assert log.read_text().split() == [str(s) for s in range(6)]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    resumed = subprocess.run(child + ["--resume"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    steps = [int(s) for s in log.read_text().split()]
    assert steps == list(range(EPOCHS * 4))  # each step once: none repeated, none skipped
    assert read_meta(ckpt)["step"] == EPOCHS * 4
    final = torch.load(out, weights_only=True)
    assert same_weights(final, uninterrupted(data, "sandwich"))


@pytest.mark.parametrize("sampler", ["uniform", "path_dropout", "attentive"])
def test_resume_mid_epoch_is_exact_for_every_sampler(tmp_path, data, sampler):
    ckpt = tmp_path / "super.ckpt"

    def crash(done: int, path: Path) -> None:
        if done == 5:
            raise Crash

    supernet = tiny()
    with pytest.raises(Crash):
        train_supernet(supernet, data, sampler, epochs=EPOCHS, batch_size=BATCH,
                       checkpoint=ckpt, every_steps=5, on_checkpoint=crash)
    torch.manual_seed(123)  # the resumed process starts with other RNG states
    supernet = tiny(seed=99)  # and other initial weights: all of it comes from the file
    seen = []
    result = train_supernet(supernet, data, sampler, epochs=EPOCHS, batch_size=BATCH,
                            checkpoint=ckpt, every_steps=5, resume=True,
                            on_step=lambda g, plan, losses: seen.append(g))
    assert result.start_step == 5 and seen == [5, 6, 7]
    assert same_weights(supernet.state_dict(), uninterrupted(data, sampler))


def test_checkpoint_holds_metadata_and_every_state(tmp_path, data):
    ckpt = tmp_path / "run" / "super.ckpt"  # the folder is created
    supernet = tiny()
    train_supernet(supernet, data, "sandwich", epochs=1, batch_size=BATCH, checkpoint=ckpt)
    meta, state = load_checkpoint(ckpt)
    assert meta["space"] == "tiny_oneshot" and meta["space_key"] == supernet.space.key
    assert (meta["input_size"], meta["num_classes"], meta["dataset"]) == (8, 10, "digits")
    assert meta["sampler"] == {"name": "sandwich", "n": 2}
    assert (meta["epochs"], meta["batch_size"], meta["seed"], meta["step"]) == (1, BATCH, 0, 4)
    assert {"model", "optimizer", "scheduler", "sampler", "rng", "step", "epoch"} <= set(state)
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert state["sampler"]["largest"] == [2, 2, 2]
    again = tiny(seed=5)
    load_supernet(ckpt, again, dataset="digits")
    assert same_weights(again.state_dict(), supernet.state_dict())


def test_resume_of_a_finished_run_trains_nothing(tmp_path, data):
    ckpt = tmp_path / "super.ckpt"
    supernet = tiny()
    train_supernet(supernet, data, "uniform", epochs=1, batch_size=BATCH, checkpoint=ckpt)
    result = train_supernet(tiny(seed=3), data, "uniform", epochs=1, batch_size=BATCH,
                            checkpoint=ckpt, resume=True)
    assert result.start_step == result.total_steps == 4


@pytest.fixture
def saved(tmp_path, data) -> Path:
    ckpt = tmp_path / "super.ckpt"
    train_supernet(tiny(), data, "uniform", epochs=1, batch_size=BATCH, checkpoint=ckpt)
    return ckpt


def test_truncated_checkpoint_is_damaged(saved):
    raw = saved.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 1, 30, 10):
        saved.write_bytes(raw[:cut])
        with pytest.raises(DamagedFile) as info:
            load_supernet(saved, tiny())
        assert one_sentence(info.value) and str(saved) in str(info.value)
    saved.write_bytes(b"")
    with pytest.raises(DamagedFile, match="empty"):
        load_supernet(saved, tiny())


def test_corrupt_checkpoint_is_damaged(saved):
    raw = bytearray(saved.read_bytes())
    raw[-200] ^= 0xFF  # one flipped bit pattern inside the tensors
    saved.write_bytes(bytes(raw))
    with pytest.raises(DamagedFile, match="checksum") as info:
        load_supernet(saved, tiny())
    assert one_sentence(info.value)
    saved.write_bytes(b"PK\x03\x04 certainly not a checkpoint")
    with pytest.raises(DamagedFile, match="not an hwnas"):
        load_supernet(saved, tiny())


class OtherSpace(TinySpace):
    name = "other_tiny"


@pytest.mark.parametrize("supernet, dataset, words", [
    (lambda: TinySupernet(OtherSpace()), "digits", "space"),
    (lambda: TinySupernet(TinySpace(C=6)), "digits", "another preset or options"),
    (lambda: TinySupernet(TinySpace(), input_size=16), "digits", "16 px"),
    (lambda: TinySupernet(TinySpace(), num_classes=4), "digits", "4 classes"),
    (lambda: TinySupernet(TinySpace()), "cifar10", "dataset 'digits', not 'cifar10'"),
], ids=["space", "preset", "input_size", "num_classes", "dataset"])
def test_mismatched_checkpoint_is_refused(saved, supernet, dataset, words):
    with pytest.raises(Incompatible) as info:
        load_supernet(saved, supernet(), dataset=dataset)
    assert one_sentence(info.value) and words in str(info.value)


def test_resume_with_other_settings_is_refused(saved, data):
    for change, words in (({"epochs": 2}, "epochs=1, not 2"), ({"seed": 1}, "seed=0, not 1")):
        settings = {"epochs": 1, "seed": 0, **change}
        with pytest.raises(InvalidOption) as info:
            train_supernet(tiny(), data, "uniform", batch_size=BATCH, checkpoint=saved,
                           resume=True, **settings)
        assert one_sentence(info.value) and words in str(info.value)
    with pytest.raises(InvalidOption, match="sampler"):
        train_supernet(tiny(), data, "sandwich", epochs=1, batch_size=BATCH, checkpoint=saved,
                       resume=True)
    with pytest.raises(Incompatible, match="another preset"):
        train_supernet(TinySupernet(TinySpace(C=6)), data, "uniform", epochs=1,
                       batch_size=BATCH, checkpoint=saved, resume=True)


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path):
    ckpt = tmp_path / "super.ckpt"
    meta = supernet_meta(tiny(), "digits")
    save_checkpoint(ckpt, meta, {"model": tiny().state_dict()})
    before = ckpt.read_bytes()

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        save_checkpoint(ckpt, meta, {"model": {}, "bad": Unsaveable()})
    assert ckpt.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["super.ckpt"]


def test_bad_settings_fail_before_training(tmp_path, data):
    with pytest.raises(InvalidOption):
        train_supernet(tiny(), data, "uniform", epochs=0)
    with pytest.raises(InvalidOption):
        train_supernet(tiny(), data, "uniform", epochs=1, batch_size=1000)
    with pytest.raises(InvalidOption):
        train_supernet(tiny(), data, "uniform", epochs=1, resume=True)
    with pytest.raises(Incompatible):
        train_supernet(TinySupernet(TinySpace(), input_size=16), data, "uniform", epochs=1)
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(OSError):  # spaces.core.OutputError, before any step
        train_supernet(tiny(), data, "uniform", epochs=1, checkpoint=folder)


def test_training_lowers_the_loss(data):
    supernet = tiny()
    losses = []
    train_supernet(supernet, data, "uniform", epochs=6, batch_size=BATCH, lr=0.1,
                   on_step=lambda g, plan, l: losses.append(l[0]))
    assert sum(losses[-4:]) < sum(losses[:4])
    assert not supernet.training  # handed back in eval mode
