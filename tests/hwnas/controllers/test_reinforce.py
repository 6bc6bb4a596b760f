"""REINFORCE on the LSTM controller, its memory buffer and its checkpoints."""

import io

import numpy as np
import pytest
import torch

import spaces
from hwnas.controllers import LSTMController, Reinforce
from spaces import InvalidOption


@pytest.fixture(scope="module")
def nb201():
    return spaces.get("nb201")


def controller_for(space, seed=0, hidden=16):
    torch.manual_seed(seed)
    return LSTMController(space, hidden=hidden)


def log_prob(controller, arch):
    with torch.no_grad():
        return float(controller.score([arch]).log_prob[0])


def test_reinforce_raises_the_probability_of_a_rewarded_architecture(nb201):
    """Fake reward: the share of decisions that agree with a target architecture."""
    target = nb201.arch([3, 1, 4, 1, 0, 2])
    controller = controller_for(nb201)
    trainer = Reinforce(controller, lr=0.05)
    generator = torch.Generator().manual_seed(0)
    before = log_prob(controller, target)
    rewards = []
    for _ in range(40):
        archs = controller.sample(8, generator).archs
        r = [np.mean(np.equal(a.choices, target.choices)) for a in archs]
        rewards.append(np.mean(r))
        trainer.update(archs, r)
    after = log_prob(controller, target)
    assert before == pytest.approx(6 * np.log(1 / 5), abs=0.3)  # about uniform at first
    assert after > before + 3.0  # e^3 = 20 times as likely
    assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.2
    assert trainer.updates == 40 and trainer.baseline > 0.3


def test_a_constant_reward_teaches_nothing_but_entropy(nb201):
    """Advantages are zero (the baseline starts at the first batch's mean): with no
    entropy bonus the policy does not move."""
    controller = controller_for(nb201)
    trainer = Reinforce(controller, lr=0.05, entropy_weight=0.0)
    archs = controller.sample(4, torch.Generator().manual_seed(1)).archs
    before = [p.detach().clone() for p in controller.parameters()]
    trainer.update(archs, [0.7] * 4)
    assert all(torch.equal(a, b) for a, b in zip(before, controller.parameters()))


def test_memory_buffer_replays_at_most_n_past_architectures(nb201, monkeypatch):
    controller = controller_for(nb201)
    trainer = Reinforce(controller, lr=0.02, memory_buffer=12, replay=6)
    assert trainer.reconstructor is not None
    replayed = []
    loss = type(trainer.reconstructor).loss

    def spy(self, rollout):
        replayed.append(rollout.choices.clone())
        return loss(self, rollout)

    monkeypatch.setattr(type(trainer.reconstructor), "loss", spy)
    generator = torch.Generator().manual_seed(2)
    pool = controller.sample(12, generator).archs  # a fixed set, so reconstruction can be learnt
    rng = np.random.default_rng(0)
    seen, losses = set(), []
    for step in range(60):
        archs = [pool[(4 * step + k) % 12] for k in range(4)]
        seen.update(a.choices for a in archs)
        info = trainer.update(archs, rng.random(4), rng=rng)
        losses.append(info["reconstruction"])
        assert len(trainer.buffer) <= 12
        rows = {tuple(r.tolist()) for r in replayed[-1]}
        assert len(replayed[-1]) == min(6, len(trainer.buffer))
        assert rows <= set(trainer.buffer) and rows <= seen  # replays buffer entries only
    assert len(trainer.buffer) == 12
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])  # the hidden state learns the past


def test_the_buffer_keeps_the_last_n(nb201):
    controller = controller_for(nb201)
    trainer = Reinforce(controller, memory_buffer=3, replay=2)
    archs = [nb201.from_index(i) for i in range(5)]
    trainer.update(archs, [0.0, 1.0, 0.0, 1.0, 0.5])
    assert list(trainer.buffer) == [a.choices for a in archs[-3:]]


@pytest.mark.parametrize("memory_buffer", [None, 8])
def test_state_dict_round_trip_gives_the_same_next_update(nb201, memory_buffer):
    def trainer_of(seed):
        return Reinforce(controller_for(nb201, seed), lr=0.03, memory_buffer=memory_buffer,
                         replay=4)

    first = trainer_of(0)
    generator = torch.Generator().manual_seed(4)
    for step in range(5):
        archs = first.controller.sample(4, generator).archs
        first.update(archs, [0.1 * step + 0.2 * k for k in range(4)])
    blob = io.BytesIO()
    torch.save(first.state_dict(), blob)
    blob.seek(0)
    second = trainer_of(1)  # other initial weights: everything must come from the checkpoint
    second.load_state_dict(torch.load(blob, weights_only=False))
    assert second.baseline == first.baseline and second.updates == first.updates
    assert list(second.buffer) == list(first.buffer)
    archs = first.controller.sample(4, torch.Generator().manual_seed(9)).archs
    info_a = first.update(archs, [1.0, 0.0, 0.5, 0.2])
    info_b = second.update(archs, [1.0, 0.0, 0.5, 0.2])
    assert info_a == info_b
    for a, b in zip(first.controller.parameters(), second.controller.parameters()):
        assert torch.equal(a, b)
    if memory_buffer:
        for a, b in zip(first.reconstructor.parameters(), second.reconstructor.parameters()):
            assert torch.equal(a, b)


@pytest.mark.parametrize("options, match", [({"memory_buffer": 0}, "memory-buffer"),
                                            ({"memory_buffer": -4}, "memory-buffer"),
                                            ({"entropy_weight": -0.1}, "entropy weight"),
                                            ({"lr": 0.0}, "learning rate"),
                                            ({"baseline_decay": 1.0}, "baseline decay"),
                                            ({"memory_buffer": 4, "replay": 0}, "replay")])
def test_bad_options_raise(nb201, options, match):
    with pytest.raises(InvalidOption, match=match):
        Reinforce(controller_for(nb201), **options)


def test_one_reward_per_architecture(nb201):
    trainer = Reinforce(controller_for(nb201))
    with pytest.raises(InvalidOption, match="one reward per architecture"):
        trainer.update([nb201.from_index(0)], [1.0, 2.0])
    with pytest.raises(InvalidOption, match="one reward per architecture"):
        trainer.update([], [])
