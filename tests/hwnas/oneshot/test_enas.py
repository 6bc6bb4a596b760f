"""ENAS as a supernet sampler: controller phases interleave with weight steps, leave the
BN statistics alone, resume exactly from a checkpoint, and the trained controller is read
back from the checkpoint; the memory buffer is kept and replayed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.oneshot.enas import EnasSampler, controller_from_checkpoint
from hwnas.oneshot.evaluate import batchnorms
from hwnas.oneshot.training import train_supernet
from spaces.core.errors import InvalidOption
from hwnas.oneshot.checkpoint import read_meta
from tests.hwnas.oneshot.tiny_supernet import digits, save_data, tiny

ROOT = Path(__file__).resolve().parents[3]

EPOCHS, BATCH = 2, 16  # 64 training digits: 4 steps an epoch, 8 in all
OPTIONS = {"controller_every": 2, "controller_steps": 2, "controller_batch": 3,
           "reward_batch": 16, "hidden": 8, "memory_buffer": 5}


@pytest.fixture(scope="module")
def data():
    return digits()


class Crash(Exception):
    pass


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_controller_phases_run_every_k_steps_and_keep_bn_statistics(data):
    supernet = tiny()
    sampler = EnasSampler(supernet, **OPTIONS)
    sampler.bind(data)
    before = [bn.running_mean.clone() for bn in batchnorms(supernet)]
    start = {k: v.clone() for k, v in sampler.controller.state_dict().items()}
    rng = np.random.default_rng(0)
    plans = [sampler.plan(step, 8, rng) for step in range(5)]
    assert all(len(p) == 1 and p[0].arch is not None for p in plans)  # one path per step
    assert sampler.phases == 2  # before steps 2 and 4
    assert all(torch.equal(b, bn.running_mean) for b, bn in zip(before, batchnorms(supernet)))
    assert not _states_equal(start, sampler.controller.state_dict())
    assert 0 < len(sampler.trainer.buffer) <= 5  # the memory buffer keeps at most N


def test_killed_training_resumes_exactly_with_its_controller(tmp_path, data):
    ckpt = tmp_path / "enas.ckpt"

    def crash(done: int, path: Path) -> None:
        if done == 5:
            raise Crash

    with pytest.raises(Crash):
        train_supernet(tiny(), data, "enas", epochs=EPOCHS, batch_size=BATCH, checkpoint=ckpt,
                       every_steps=5, on_checkpoint=crash, sampler_options=OPTIONS)
    torch.manual_seed(7)
    resumed = tiny(seed=99)
    result = train_supernet(resumed, data, "enas", epochs=EPOCHS, batch_size=BATCH,
                            checkpoint=ckpt, every_steps=5, resume=True, sampler_options=OPTIONS)
    assert result.start_step == 5
    whole = tiny()
    straight = EnasSampler(whole, **OPTIONS)
    train_supernet(whole, data, straight, epochs=EPOCHS, batch_size=BATCH)
    assert _states_equal(resumed.state_dict(), whole.state_dict())
    stored = controller_from_checkpoint(str(ckpt), tiny())
    assert stored is not None and stored.phases == straight.phases == 3
    assert _states_equal(stored.controller.state_dict(), straight.controller.state_dict())
    assert list(stored.trainer.buffer) == list(straight.trainer.buffer)


def test_a_checkpoint_of_another_sampler_has_no_controller(tmp_path, data):
    ckpt = tmp_path / "uniform.ckpt"
    train_supernet(tiny(), data, "uniform", epochs=1, batch_size=BATCH, checkpoint=ckpt)
    assert controller_from_checkpoint(str(ckpt), tiny()) is None


@pytest.mark.parametrize("options", [{"controller_every": 0}, {"controller_batch": -1},
                                     {"memory_buffer": 0}, {"entropy_weight": -0.1}])
def test_bad_options_are_refused(options):
    with pytest.raises(InvalidOption):
        EnasSampler(tiny(), **options)


def test_sigkill_then_resume_restores_the_controller_and_its_rng(tmp_path, data):
    """A training killed with SIGKILL mid-run (after two controller phases) and resumed ends
    with the weights, controller, optimiser state, baseline and memory buffer of an
    uninterrupted run: the controller's draws after the resume are the same ones."""
    ckpt, log, out = tmp_path / "enas.ckpt", tmp_path / "steps.log", tmp_path / "final.pt"
    save_data(data, tmp_path / "data.pt")
    child = [sys.executable, "-m", "tests.hwnas.oneshot.tiny_supernet", "train",
             "--sampler", "enas", "--sampler-options", json.dumps(OPTIONS),
             "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--checkpoint", str(ckpt),
             "--every", "3", "--log", str(log), "--out", str(out), "--data", str(tmp_path / "data.pt")]
    killed = subprocess.run(child + ["--kill-after", "6"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert read_meta(ckpt)["step"] == 6
    resumed = subprocess.run(child + ["--resume"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert [int(s) for s in log.read_text().split()] == list(range(EPOCHS * 4))
    whole = tiny()
    straight = EnasSampler(whole, **OPTIONS)
    train_supernet(whole, data, straight, epochs=EPOCHS, batch_size=BATCH)
    assert _states_equal(torch.load(out, weights_only=True), whole.state_dict())
    stored = controller_from_checkpoint(str(ckpt), tiny())
    assert _states_equal(stored.controller.state_dict(), straight.controller.state_dict())
    assert stored.trainer.baseline == straight.trainer.baseline
    assert list(stored.trainer.buffer) == list(straight.trainer.buffer)
