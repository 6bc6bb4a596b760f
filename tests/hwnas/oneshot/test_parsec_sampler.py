"""The PARSEC supernet sampler (hwnas.oneshot.parsec_sampler): one architecture a step
from the learned categoricals, the logits moved by the minibatch likelihoods without a
trace on the weights or batch-norm statistics, all randomness from the step's
generator, its state round trip (and a killed, resumed training) continuing exactly,
and a few train_supernet steps on a tiny nb201 supernet moving the logits."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hwnas.oneshot import make_supernet
from hwnas.oneshot.parsec_sampler import PARSECSampler
from hwnas.oneshot.samplers import SAMPLERS, make_sampler
from hwnas.oneshot.training import step_rng, train_supernet
from spaces.core.errors import InvalidOption
from spaces.nb201 import NB201Space
from tests.hwnas.oneshot.tiny_supernet import digits, tiny


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return digits()  # 64 training digits, 8x8, one channel


def batches(data, n: int, size: int = 16):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        idx = torch.randint(len(data.y_train), (size,), generator=g)
        out.append((data.x_train[idx], data.y_train[idx]))
    return out


def state_of(module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_registered_and_one_arch_per_step(data):
    supernet = tiny()
    assert "parsec" in SAMPLERS
    sampler = make_sampler("parsec", supernet, samples=3, update_every=2)
    assert isinstance(sampler, PARSECSampler)
    before = state_of(supernet)
    for g, batch in enumerate(batches(data, 6)):
        plan = sampler.plan(g, 6, step_rng(0, g), batch)
        assert len(plan) == 1 and plan[0].arch is not None and not plan[0].distill
        assert supernet.space.is_valid(plan[0].arch)
    assert sampler.updates == 3 and sampler.steps == 6  # steps 0, 2, 4
    assert len(sampler.last_weights) == 3 and sum(sampler.last_weights) == pytest.approx(1)
    assert any(np.ptp(p) > 0 for p in sampler.probs)
    # scoring left no trace: weights and BN running statistics untouched
    after = state_of(supernet)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert supernet.space.is_valid(sampler.most_likely())


def test_state_dict_round_trip_continues_identically(data):
    supernet = tiny()
    feed = batches(data, 8)
    a = PARSECSampler(supernet, samples=3)
    for g in range(4):
        a.plan(g, 8, step_rng(1, g), feed[g])
    b = PARSECSampler(supernet, samples=3)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert b.state_dict() == a.state_dict()
    for g in range(4, 8):
        pa = a.plan(g, 8, step_rng(1, g), feed[g])
        pb = b.plan(g, 8, step_rng(1, g), feed[g])
        assert pa == pb
    assert a.state_dict() == b.state_dict()
    # a fresh sampler (uniform logits) would have planned otherwise
    c = PARSECSampler(supernet, samples=3)
    assert c.state_dict()["logits"] != a.state_dict()["logits"]


class Crash(Exception):
    pass


def test_killed_training_resumes_exactly(data, tmp_path):
    def run(checkpoint, kill_after=None, resume=False, supernet=None):
        supernet = supernet or tiny(seed=3)
        sampler = PARSECSampler(supernet, samples=2)
        plans = []

        def on_checkpoint(done, path):
            if kill_after is not None and done == kill_after:
                raise Crash  # a crash right after the checkpoint

        try:
            train_supernet(supernet, data, sampler, epochs=2, batch_size=16, seed=4,
                           checkpoint=checkpoint, every_steps=2, resume=resume,
                           on_step=lambda g, plan, losses: plans.append(plan[0].arch),
                           on_checkpoint=on_checkpoint)
        except Crash:
            pass
        return supernet, sampler, plans

    whole, whole_sampler, whole_plans = run(tmp_path / "a.pt")
    _, _, first = run(tmp_path / "b.pt", kill_after=4)
    resumed, resumed_sampler, rest = run(tmp_path / "b.pt", resume=True)
    assert first + rest == whole_plans and len(whole_plans) == 8
    assert resumed_sampler.state_dict() == whole_sampler.state_dict()
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in whole.state_dict().items())


def test_a_few_training_steps_on_a_tiny_nb201_supernet_move_the_logits():
    from hwnas.evaluators.datasets import load

    torch.set_num_threads(1)
    nb201 = load("digits", 8, 3, max_samples=64)  # 51 training images: 3 steps an epoch
    torch.manual_seed(0)
    supernet = make_supernet(NB201Space(C=4, N=1), 10, 8)
    plans = []
    result = train_supernet(supernet, nb201, "parsec", epochs=1, batch_size=16, seed=0,
                            sampler_options={"samples": 3},
                            on_step=lambda g, plan, losses: plans.append(plan))
    assert result.total_steps == 3 and len(plans) == 3
    assert all(len(p) == 1 and p[0].arch is not None for p in plans)
    assert np.isfinite(result.last_loss)
    # the trainer built its own sampler: check the logits through a twin run's sampler
    torch.manual_seed(0)
    twin = make_supernet(NB201Space(C=4, N=1), 10, 8)
    sampler = PARSECSampler(twin, samples=3)
    train_supernet(twin, nb201, sampler, epochs=1, batch_size=16, seed=0)
    assert sampler.updates == 3
    logits = np.concatenate([np.asarray(row) for row in sampler.state_dict()["logits"]])
    assert np.ptp(logits) > 1e-4  # moved away from uniform
    assert all(abs(p.sum() - 1) < 1e-9 for p in sampler.probs)


@pytest.mark.parametrize("options, match", [
    ({"samples": 1}, "number of samples"), ({"samples": 2.5}, "number of samples"),
    ({"update_every": 0}, "update interval"), ({"lr": 0.0}, "learning rate"),
    ({"temperature": -1}, "temperature"), ({"lr": "fast"}, "learning rate"),
])
def test_bad_options_are_refused(options, match):
    with pytest.raises(InvalidOption, match=match) as error:
        PARSECSampler(tiny(), **options)
    assert "\n" not in str(error.value)


def test_scoring_needs_the_minibatch():
    sampler = PARSECSampler(tiny())
    with pytest.raises(InvalidOption, match="minibatch"):
        sampler.plan(0, 1, np.random.default_rng(0), None)
    describe = sampler.describe()
    assert describe == {"name": "parsec", "samples": 4, "update_every": 1, "lr": 0.05,
                        "temperature": 0.05}
