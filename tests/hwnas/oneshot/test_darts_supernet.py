"""The DARTS supernet (hwnas.oneshot.darts): single path equals the extracted network, the
mixed op of an architecture's one-hot weights equals its single path, gradients reach the
strategy's alphas, and zero-weighted ops are not run (GDAS's straight-through one-hot)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hwnas.oneshot import make_supernet
from hwnas.oneshot.darts import EDGES, NUM_EDGES, DartsSupernet, edge_index
from spaces import InvalidOption
from spaces.darts import PRIMITIVES, DartsSpace
from tests.hwnas.oneshot.test_supernets import randomize

TOL = dict(atol=1e-5, rtol=1e-5)
# Node 1 reads c_{k-1} through sep_conv_3x3 twice in the normal cell, node 2 reads node 0
# through max_pool twice in the reduction cell: one supernet module, two standalone ones.
REPEATED = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('dil_conv_5x5', 2), ('avg_pool_3x3', 3), ('skip_connect', 0), "
            "('sep_conv_5x5', 4)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
            "('skip_connect', 1), ('dil_conv_3x3', 0), ('sep_conv_3x3', 2), ('max_pool_3x3', 2), "
            "('max_pool_3x3', 2), ('skip_connect', 1), ('sep_conv_5x5', 0)], reduce_concat=[2, 3, 4, 5])")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    space = DartsSpace(C=4, layers=3)
    supernet = make_supernet(space, 10, 8)
    assert isinstance(supernet, DartsSupernet)
    randomize(supernet, 1)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    archs = [space.from_string(REPEATED)] + space.sample_many(4, 11)
    assert space.repeats_input(archs[0])
    return space, supernet, x, archs


def test_edges_follow_darts_order():
    assert NUM_EDGES == 14 and len(EDGES) == 14
    assert [edge_index(n, i) for n, i in EDGES] == list(range(14))
    assert edge_index(1, 0) == 2 and edge_index(3, 4) == 13
    for bad in ((0, 2), (4, 0), (-1, 0)):
        with pytest.raises(InvalidOption):
            edge_index(*bad)


@pytest.mark.parametrize("training", [False, True])
def test_extract_equals_single_path(setup, training):
    space, supernet, x, archs = setup
    supernet = copy.deepcopy(supernet).train(training)
    for arch in archs:
        supernet.set_active(arch)
        net = supernet.extract(arch)
        assert net.training is training
        with torch.no_grad():
            torch.testing.assert_close(net(x), supernet(x), **TOL)


def test_repeated_edge_gets_the_same_weights_twice(setup):
    space, supernet, _, archs = setup
    net = supernet.extract(archs[0])
    normal = net.cells[0]  # layers=3: cell 0 normal, cells 1 and 2 reduce
    a, b = normal.ops[2].state_dict(), normal.ops[3].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(v, supernet.cells[0].edges[edge_index(1, 1)]["sep_conv_3x3"].state_dict()[k])
               for k, v in a.items())


def test_extract_is_independent(setup):
    space, supernet, x, archs = setup
    supernet = copy.deepcopy(supernet).eval()
    supernet.set_active(archs[0])
    net = supernet.extract(archs[0])
    with torch.no_grad():
        before = net(x)
        for p in supernet.parameters():
            p.add_(0.5)
        assert not torch.allclose(supernet(x), before)
        torch.testing.assert_close(net(x), before, atol=0, rtol=0)


@pytest.mark.parametrize("training", [False, True])
def test_mixture_of_an_arch_equals_its_single_path(setup, training):
    space, supernet, x, archs = setup
    supernet = copy.deepcopy(supernet).train(training)
    for arch in archs:
        normal, reduce = supernet.mixture_of(arch)
        assert normal.shape == reduce.shape == (NUM_EDGES, len(PRIMITIVES))
        for w in (normal, reduce):  # 8 chosen ops; none on exactly the unchosen edges
            assert w[:, 1:].sum() == 8 and torch.equal(w[:, 0], (w[:, 1:].sum(1) == 0).to(w.dtype))
        supernet.set_active(arch)
        with torch.no_grad():
            single = supernet(x)
            supernet.set_mixture(normal, reduce)
            torch.testing.assert_close(supernet(x), single, **TOL)
    normal, _ = supernet.mixture_of(archs[0])
    assert normal[edge_index(1, 1), PRIMITIVES.index("sep_conv_3x3")] == 2.0
    with pytest.raises(InvalidOption):
        supernet.active  # a mixture is no single architecture


def _alphas(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(NUM_EDGES, len(PRIMITIVES), generator=gen).mul_(1e-1).requires_grad_()
                 for _ in range(2))


def test_softmax_mixture_gradients_reach_every_alpha(setup):
    space, supernet, x, _ = setup
    supernet = copy.deepcopy(supernet).train()
    alphas = _alphas(3)
    supernet.set_mixture(*(a.softmax(-1) for a in alphas))
    nn.functional.cross_entropy(supernet(x), torch.tensor([0, 1, 2])).backward()
    for a in alphas:
        assert a.grad is not None and torch.isfinite(a.grad).all()
        assert (a.grad[:, 1:] != 0).all()
    assert all(p.grad is not None for p in supernet.parameters())  # every op ran


def test_hard_straight_through_runs_only_the_chosen_ops(setup):
    space, supernet, x, _ = setup
    supernet = copy.deepcopy(supernet).train()
    calls: list[tuple[int, int, str]] = []
    for c, cell in enumerate(supernet.cells):
        for e, ops in enumerate(cell.edges):
            for name, op in ops.items():
                op.register_forward_hook(lambda *_, key=(c, e, name): calls.append(key))
    alphas = _alphas(4)
    gen = torch.Generator().manual_seed(5)
    chosen = [torch.randint(1, len(PRIMITIVES), (NUM_EDGES,), generator=gen) for _ in alphas]
    chosen[0][0] = 0  # one none edge: nothing runs there
    weights = []
    for a, pick in zip(alphas, chosen):
        soft = a.softmax(-1)
        hard = nn.functional.one_hot(pick, len(PRIMITIVES)).to(soft.dtype)
        weights.append(hard - soft.detach() + soft)
    supernet.set_mixture(*weights)
    nn.functional.cross_entropy(supernet(x), torch.tensor([0, 1, 2])).backward()
    expected = sorted((c, e, PRIMITIVES[int(chosen[cell.reduction][e])])
                      for c, cell in enumerate(supernet.cells) for e in range(NUM_EDGES)
                      if chosen[cell.reduction][e] != 0)
    assert sorted(calls) == expected
    for a, pick in zip(alphas, chosen):
        assert torch.isfinite(a.grad).all()
        ran = pick != 0
        assert (a.grad[ran] != 0).all()  # every logit of an edge whose op ran
        assert (a.grad[~ran] == 0).all()


def test_bad_mixtures_are_refused(setup):
    space, supernet, _, archs = setup
    good = torch.zeros(NUM_EDGES, len(PRIMITIVES))
    for bad in (torch.zeros(NUM_EDGES, 7), torch.zeros(1, NUM_EDGES, 8),
                torch.zeros(NUM_EDGES, 8, dtype=torch.long), [[0.0] * 8] * NUM_EDGES):
        with pytest.raises(InvalidOption, match="must be a float tensor of shape"):
            supernet.set_mixture(good, bad)
    supernet.set_active(archs[1])
    assert supernet.active == archs[1]
