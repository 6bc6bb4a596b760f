"""The enas strategy samples from the controller its supernet's ENAS training stored in the
checkpoint, keeps learning from the run's rewards, and refuses a checkpoint without one."""

from __future__ import annotations

import pytest

from hwnas.objectives import parse_objectives
from hwnas.oneshot.enas import controller_from_checkpoint
from hwnas.oneshot.evaluate import OneShotEvaluator
from hwnas.oneshot.training import train_supernet
from hwnas.strategies.enas import EnasStrategy
from spaces.errors import HwnasError
from tests.hwnas.oneshot.tiny_supernet import FakeLatency, TinySupernet, digits, tiny

OPTIONS = {"controller_every": 2, "controller_steps": 2, "controller_batch": 3,
           "reward_batch": 16, "hidden": 8, "memory_buffer": 5}


@pytest.fixture(scope="module")
def data():
    return digits()


def _evaluator(path, data):
    space = tiny().space
    return OneShotEvaluator.from_checkpoint(
        str(path), space, ["accuracy", "latency_ms"], data,
        factory=lambda s, n, size: TinySupernet(s, n, size), calib_batches=1, batch_size=16,
        latency=FakeLatency(space))


@pytest.fixture(scope="module")
def enas_ckpt(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("enas") / "enas.ckpt"
    train_supernet(tiny(), data, "enas", epochs=2, batch_size=16, checkpoint=path,
                   sampler_options=OPTIONS)
    return path


def test_it_starts_from_the_stored_controller_and_is_deterministic(enas_ckpt, data):
    evaluator = _evaluator(enas_ckpt, data)
    strategy = EnasStrategy(seed=1, batch_size=2)
    controller, _ = strategy.make_controller(type("Ctx", (), {"evaluator": evaluator})())
    stored = controller_from_checkpoint(str(enas_ckpt), tiny())
    assert all((a == b).all() for a, b in zip(controller.state_dict().values(),
                                              stored.controller.state_dict().values()))
    objectives = parse_objectives(["accuracy", "latency_ms"])
    first = strategy.run(evaluator.space, evaluator, objectives, 6)
    again = EnasStrategy(seed=1, batch_size=2).run(evaluator.space, evaluator, objectives, 6)
    assert len(first.history) == 6
    assert list(first.history["arch"]) == list(again.history["arch"])


def test_a_checkpoint_without_a_controller_is_refused(tmp_path, data):
    path = tmp_path / "uniform.ckpt"
    train_supernet(tiny(), data, "uniform", epochs=1, batch_size=16, checkpoint=path)
    with pytest.raises(HwnasError, match="--sampler enas") as error:
        EnasStrategy().check_evaluator(_evaluator(path, data))
    assert "\n" not in str(error.value)


def test_options_must_match_the_stored_controller(enas_ckpt, data):
    evaluator = _evaluator(enas_ckpt, data)
    EnasStrategy(memory_buffer=5).check_evaluator(evaluator)  # as trained: accepted
    with pytest.raises(HwnasError, match="--memory-buffer 5"):
        EnasStrategy(memory_buffer=7).check_evaluator(evaluator)
