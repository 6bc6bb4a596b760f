"""The LSTM controller: an autoregressive policy over a space's decisions."""

import pytest
import torch

import spaces
from hwnas.controllers import LSTMController
from spaces import InvalidOption


@pytest.fixture(scope="module")
def nb201():
    return spaces.get("nb201")


def test_log_prob_is_the_sum_of_the_decisions_log_probs(nb201):
    controller = LSTMController(nb201, hidden=16)
    rollout = controller.sample(6, torch.Generator().manual_seed(1))
    assert rollout.choices.shape == (6, len(nb201.decisions))
    assert rollout.hidden.shape[0] == 6 and rollout.hidden.shape[-1] == 16
    assert rollout.log_prob.requires_grad  # REINFORCE differentiates it
    for arch, log_prob in zip(rollout.archs, rollout.log_prob.detach()):
        per_decision = controller.decision_log_probs(arch)
        assert per_decision.shape == (len(nb201.decisions),) and (per_decision <= 0).all()
        assert float(per_decision.sum()) == pytest.approx(float(log_prob), abs=1e-5)
    # teacher-forced scoring gives the same numbers as sampling did
    again = controller.score(rollout.archs)
    assert torch.allclose(again.log_prob, rollout.log_prob, atol=1e-6)
    assert torch.allclose(again.entropy, rollout.entropy, atol=1e-6)


def test_the_policy_is_a_distribution():
    """Over a tiny space, the probabilities of every architecture add up to 1."""
    from tests.hwnas.test_strategies import GridSpace

    space = GridSpace()
    controller = LSTMController(space, hidden=8, tanh_constant=None, temperature=1.0)
    every = [space.arch([a, b, c, d]) for a in range(4) for b in range(4) for c in range(4)
             for d in range(4)]
    with torch.no_grad():
        total = controller.score(every).log_prob.exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-4)


def test_sampling_is_deterministic_for_a_seeded_generator(nb201):
    torch.manual_seed(3)
    controller = LSTMController(nb201, hidden=16)
    a = controller.sample(8, torch.Generator().manual_seed(7))
    b = controller.sample(8, torch.Generator().manual_seed(7))
    c = controller.sample(8, torch.Generator().manual_seed(8))
    assert a.archs == b.archs and torch.equal(a.log_prob, b.log_prob)
    assert a.archs != c.archs
    assert all(nb201.is_valid(x) for x in a.archs)


def test_most_likely_is_valid_and_greedy(nb201):
    torch.manual_seed(5)
    controller = LSTMController(nb201, hidden=16, tanh_constant=None, temperature=1.0)
    with torch.no_grad():  # sharpen the policy so that the argmax is not a near tie
        for head in controller.heads:
            head.weight.mul_(20)
    best = controller.most_likely()
    assert nb201.is_valid(best) and nb201.to_string(best)
    mine = controller.decision_log_probs(best)
    for i, size in enumerate(controller.sizes):
        for option in range(size):
            other = list(best.choices)
            other[i] = option
            # same prefix up to decision i: the greedy choice has the largest conditional
            theirs = controller.decision_log_probs(nb201.arch(other))
            assert float(theirs[i]) <= float(mine[i]) + 1e-6


@pytest.mark.parametrize("options, match", [({"hidden": 0}, "hidden size"),
                                            ({"temperature": -1.0}, "temperature"),
                                            ({"temperature": 0.0}, "temperature"),
                                            ({"tanh_constant": 0.0}, "tanh constant")])
def test_bad_options_raise(nb201, options, match):
    with pytest.raises(InvalidOption, match=match):
        LSTMController(nb201, **options)


def test_sampling_nothing_raises(nb201):
    with pytest.raises(InvalidOption, match="at least 1"):
        LSTMController(nb201, hidden=4).sample(0)
