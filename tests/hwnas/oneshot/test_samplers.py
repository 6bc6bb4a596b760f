"""The samplers of SPOS, One-Shot, BigNAS and AttentiveNAS on a tiny supernet: what each
step trains, the sandwich's extremes by MACs, attentive best/worst picks, the path
dropout schedule and its no-empty-decision rule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hwnas.oneshot.samplers import (SAMPLERS, AttentiveSampler, PathDropoutSampler,
                                    SandwichSampler, Step, UniformSampler, check_plan,
                                    greedy_extreme, make_sampler, minibatch_losses)
from spaces import Arch
from spaces.core.errors import Incompatible, InvalidOption, UnknownName
from tests.hwnas.oneshot.tiny_supernet import TinySupernet, tiny


@pytest.fixture(scope="module")
def supernet() -> TinySupernet:
    return tiny()


def all_archs(space) -> list[Arch]:
    return [space.arch(c) for c in itertools.product(*(range(len(d)) for d in space.decisions))]


def macs(space, arch) -> int:
    return space.cost(arch, 8, 10).macs


def one_sentence(error: BaseException) -> bool:
    text = str(error)
    return "\n" not in text and ". " not in text.rstrip(".")


def test_registry_finds_every_sampler(supernet):
    assert SAMPLERS.names() == ["attentive", "enas", "parsec", "path_dropout", "sandwich", "uniform"]
    assert isinstance(make_sampler("uniform", supernet), UniformSampler)
    with pytest.raises(UnknownName):
        make_sampler("darts", supernet)


def test_uniform_draws_one_path_from_the_generator(supernet):
    sampler = make_sampler("uniform", supernet)
    plans = [sampler.plan(s, 10, np.random.default_rng(7)) for s in range(2)]
    assert plans[0] == plans[1] and len(plans[0]) == 1
    step = plans[0][0]
    assert step.arch is not None and not step.distill and supernet.space.is_valid(step.arch)
    drawn = {sampler.plan(0, 10, np.random.default_rng(s))[0].arch for s in range(60)}
    assert len(drawn) > 10  # uniform over 27 architectures, not one


def test_sandwich_trains_largest_and_smallest_by_macs_with_distillation(supernet):
    space = supernet.space
    by_macs = {a: macs(space, a) for a in all_archs(space)}
    sampler = SandwichSampler(supernet, n=2)
    plan = check_plan(sampler.plan(0, 10, np.random.default_rng(0)))
    assert len(plan) == 4
    assert by_macs[plan[0].arch] == max(by_macs.values())
    assert by_macs[plan[-1].arch] == min(by_macs.values())
    assert plan[0].teacher and not plan[0].distill
    assert all(s.distill and not s.teacher for s in plan[1:])
    # the extremes are cached, in the state that goes into a checkpoint
    counted = len(sampler.macs.memo)
    sampler.plan(1, 10, np.random.default_rng(1))
    assert len(sampler.macs.memo) == counted
    fresh = SandwichSampler(supernet, n=2)
    fresh.load_state_dict(sampler.state_dict())
    assert fresh.largest == plan[0].arch and fresh.smallest == plan[-1].arch
    assert not fresh.macs.memo  # nothing recounted after a resume


def test_greedy_extreme_is_exact_for_a_monotone_cost(supernet):
    space = supernet.space
    weight = np.array([[0, 1, 5], [0, 2, 3], [0, 4, 9]])
    value = lambda a: float(sum(weight[i, c] for i, c in enumerate(a.choices)))  # noqa: E731
    assert greedy_extreme(space, value, largest=True).choices == (2, 2, 2)
    assert greedy_extreme(space, value, largest=False).choices == (0, 0, 0)


@pytest.mark.parametrize("mode", ["best", "worst"])
def test_attentive_trains_the_best_or_worst_of_k(supernet, mode):
    asked: list[list[Arch]] = []
    score_of = lambda a: float(a.choices[0] * 9 + a.choices[1] * 3 + a.choices[2])  # noqa: E731

    class Recording(AttentiveSampler):
        def scores(self, archs, batch):
            asked.append(list(archs))
            return super().scores(archs, batch)

    sampler = Recording(supernet, n=2, k=4, mode=mode, score=score_of)
    plan = check_plan(sampler.plan(3, 10, np.random.default_rng(5)))
    assert plan[0].arch == sampler.largest and plan[-1].arch == sampler.smallest
    assert len(asked) == 2 and all(len(c) == 4 for c in asked)
    pick = max if mode == "best" else min
    assert [s.arch for s in plan[1:-1]] == [pick(c, key=score_of) for c in asked]
    assert all(s.distill for s in plan[1:])


def test_attentive_candidates_are_the_k_closest_to_the_target(supernet):
    space = supernet.space
    calls = []

    def latency(arch: Arch) -> float:  # a fake latency predictor
        calls.append(arch)
        return float(sum(arch.choices)) + 0.1 * arch.choices[0]

    # a table of the whole (27-architecture) space and a pool of k: the k closest
    sampler = AttentiveSampler(supernet, k=3, cost=latency, score=lambda a: 0.0, pool=3,
                               table=400)
    assert sorted(sampler.table, key=lambda a: a.choices) == all_archs(space)
    low, high = sampler.cost_range()
    assert (low, high) == (latency(sampler.smallest), latency(sampler.largest))
    target = 3.05
    chosen = sampler.candidates(target, np.random.default_rng(0))
    distances = sorted(abs(latency(a) - target) for a in all_archs(space))
    assert sorted(abs(latency(a) - target) for a in chosen) == distances[:3]
    assert calls  # the given cost function, not MACs, ranked them


def test_attentive_costs_each_table_entry_once_and_keeps_the_table(supernet):
    counted: list[Arch] = []

    def cost(arch: Arch) -> float:
        counted.append(arch)
        return float(sum(arch.choices))

    sampler = AttentiveSampler(supernet, k=2, cost=cost, score=lambda a: 0.0, pool=6, table=12)
    rng = np.random.default_rng(1)
    for target in np.linspace(0.0, 6.0, 20):
        near = sampler.candidates(float(target), rng)
        assert len(set(near)) == 2 and set(near) <= set(sampler.table)
        # drawn among the 6 table entries closest to the target
        cutoff = sorted(abs(sum(a.choices) - target) for a in sampler.table)[5]
        assert all(abs(a_cost - target) <= cutoff for a_cost in map(sum, (a.choices for a in near)))
    assert len(sampler.table) == 12
    assert len(counted) == len(set(counted)) == 12  # each table entry costed once, nothing else
    resumed = AttentiveSampler(supernet, k=2, cost=lambda a: 1 / 0, score=lambda a: 0.0, pool=6,
                               table=12)
    resumed.load_state_dict(sampler.state_dict())  # no recounting after a resume
    assert resumed.table == sampler.table
    assert resumed.candidates(3.0, np.random.default_rng(7)) == \
        sampler.candidates(3.0, np.random.default_rng(7))


def test_attentive_default_score_is_the_minibatch_loss_and_leaves_bn_alone(supernet):
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    archs = all_archs(supernet.space)[:5]
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    losses = minibatch_losses(supernet, archs, (x, y))
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        supernet.train()
        supernet.set_active(archs[2])
        expected = float(torch.nn.functional.cross_entropy(supernet(x), y))
    supernet.load_state_dict(before)
    assert losses[2] == pytest.approx(expected, rel=1e-6)
    sampler = AttentiveSampler(supernet, n=1, k=3, mode="best")
    with pytest.raises(InvalidOption):
        sampler.plan(0, 10, np.random.default_rng(0))  # no batch to score on


def test_attentive_refuses_bad_options(supernet):
    with pytest.raises(InvalidOption):
        AttentiveSampler(supernet, mode="middle")
    with pytest.raises(InvalidOption):
        AttentiveSampler(supernet, k=0)
    with pytest.raises(InvalidOption):
        AttentiveSampler(supernet, k=3, pool=12, table=8)


def test_path_dropout_rate_rises_linearly(supernet):
    sampler = PathDropoutSampler(supernet, max_rate=0.4)
    total = 11
    rates = [sampler.rate(s, total) for s in range(total)]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.4)
    assert np.allclose(np.diff(rates), 0.04)
    assert sampler.drop_probability(5, total, 3) == pytest.approx(0.2 ** (1 / 3))
    keep = sampler.keep(0, total, np.random.default_rng(0))
    assert keep == ((0, 1, 2),) * 3  # rate 0 at the start: every option on


def test_path_dropout_keeps_at_least_one_option_per_decision(supernet):
    sampler = PathDropoutSampler(supernet, max_rate=1.0)
    rng = np.random.default_rng(0)
    # at the last step every option is dropped with probability 1: one survivor each
    for _ in range(50):
        keep = sampler.keep(9, 10, rng)
        assert all(len(k) == 1 for k in keep)
    # half way, drops happen at about the scheduled probability and never empty a decision
    kept = [sampler.keep(5, 11, rng) for _ in range(400)]
    assert all(len(k) >= 1 for plan in kept for k in plan)
    p = sampler.drop_probability(5, 11, 3)
    dropped = np.mean([3 - len(k) for plan in kept for k in plan]) / 3
    # each option dropped with p, except that one of three comes back when all were dropped
    assert abs(dropped - (p - p ** 3 / 3)) < 0.03
    assert np.mean([len(k) == 1 for plan in kept for k in plan]) > p ** 3  # revivals happen
    plan = sampler.plan(5, 11, np.random.default_rng(1))
    assert len(plan) == 1 and plan[0].paths is not None and plan[0].arch is None


def test_path_dropout_refuses_a_single_path_supernet():
    class SinglePath(TinySupernet):
        supports_paths = False

    from tests.hwnas.oneshot.tiny_supernet import TinySpace
    with pytest.raises(Incompatible) as info:
        make_sampler("path_dropout", SinglePath(TinySpace()))
    assert one_sentence(info.value) and "one path at a time" in str(info.value)


def test_a_plan_must_name_its_teacher_first():
    arch = Arch("x", (0,))
    with pytest.raises(ValueError):
        check_plan([Step(arch=arch, distill=True), Step(arch=arch, teacher=True)])
    with pytest.raises(ValueError):
        Step()
