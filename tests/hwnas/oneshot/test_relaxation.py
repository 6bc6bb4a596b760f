"""The relaxation protocol of the cell supernets (nb201, darts): the mixture of an
architecture's one-hot runs that architecture, ``derive`` inverts ``mixture_of`` (DARTS'
genotype rule on the DARTS space), and ``decision_probs`` is a differentiable per-decision
distribution in the space's decision order (what ``predictor.predict_soft`` reads)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hwnas.oneshot import make_supernet
from hwnas.oneshot.darts import NUM_EDGES, edge_index
from hwnas.oneshot.differentiable import RELAXATION, check_relaxable
from spaces import Arch, InvalidOption
from spaces.darts import OPS, PRIMITIVES, DartsSpace
from spaces.nb201 import EDGES, OP_NAMES, NB201Space
from tests.hwnas.oneshot.test_supernets import randomize

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def nb201():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    space = NB201Space(C=4, N=1)
    supernet = make_supernet(space, 10, 8).eval()
    randomize(supernet, 3)
    return space, supernet, torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def darts():
    torch.manual_seed(0)
    space = DartsSpace(C=4, layers=3)
    return space, make_supernet(space, 10, 8).eval()


def distinct_inputs(space: DartsSpace, n: int, seed: int) -> list[Arch]:
    """Random DARTS archs whose nodes read two distinct inputs, the lower one first (the order
    DARTS' derivation lists edges of equal strength in)."""
    rng = np.random.default_rng(seed)
    archs = []
    for _ in range(n):
        choices = []
        for _cell in range(2):
            for node in range(4):
                a, b = sorted(rng.choice(node + 2, size=2, replace=False))
                op1, op2 = (int(o) for o in rng.integers(len(OPS), size=2))
                choices += [int(a), op1, int(b), op2]
        archs.append(space.arch(choices))
    return archs


def decision_slices(space):
    return [slice(o, o + len(d)) for o, d in zip(space.option_offsets, space.decisions)]


def test_protocol_shapes_and_columns(nb201, darts):
    for _, supernet in (nb201[:2], darts):
        check_relaxable(supernet)
        assert all(callable(getattr(supernet, m)) for m in RELAXATION)
    assert nb201[1].mixture_shapes() == ((6, 5),) and nb201[1].mixture_ops() == OP_NAMES
    assert darts[1].mixture_shapes() == ((14, 8), (14, 8)) and darts[1].mixture_ops() == PRIMITIVES
    assert OP_NAMES[0] == PRIMITIVES[0] == "none"


# ---- nb201 set_mixture ----------------------------------------------------------------------
@pytest.mark.parametrize("training", [False, True])
def test_nb201_mixture_of_arch_equals_set_active(nb201, training):
    space, supernet, x = nb201
    supernet = copy.deepcopy(supernet).train(training)
    archs = space.sample_many(5, 2) + [space.from_string(
        "|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|")]
    for arch in archs:
        supernet.set_active(arch)
        with torch.no_grad():
            single = supernet(x)
            (w,) = supernet.mixture_of(arch)
            assert w.shape == (6, 5) and torch.equal(w.sum(dim=1), torch.ones(6))
            supernet.set_mixture(w)
            with pytest.raises(InvalidOption):
                supernet.active  # a mixture is not a single architecture
            torch.testing.assert_close(supernet(x), single, **TOL)
            supernet.set_active(arch)  # leaves mixture mode
            torch.testing.assert_close(supernet(x), single, atol=0, rtol=0)


def test_nb201_edge_is_the_weighted_sum_of_its_ops(nb201):
    _, supernet, _ = nb201
    cell = supernet.layers[0]
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    edge_30 = EDGES.index((3, 0))  # straight from the input to the output node
    w = torch.zeros(6, 5)
    w[edge_30] = torch.tensor([0.3, 0.1, 0.2, 0.25, 0.15])
    keep = [tuple(o for o in range(5) if w[e, o] != 0) for e in range(6)]
    with torch.no_grad():
        got = cell(x, keep, w)
        want = sum(w[edge_30, o] * cell(x, [(o,) if e == edge_30 else () for e in range(6)])
                   for o in range(1, 5))
        torch.testing.assert_close(got, want, **TOL)
        # every term skipped: the output node is zeros
        assert torch.equal(cell(x, [()] * 6, torch.zeros(6, 5)), torch.zeros_like(x))


def test_nb201_zero_weights_skip_ops_and_gradients_reach_the_mixture(nb201):
    space, supernet, x = nb201
    supernet = copy.deepcopy(supernet).train()
    calls = []
    for e, ops in enumerate(supernet.layers[0].edges):
        for name, op in ops.items():
            op.register_forward_hook(lambda *_, e=e, name=name: calls.append((e, name)))
    w = torch.full((6, 5), 0.2, requires_grad=True)
    mask = torch.ones(6, 5)
    mask[:, OP_NAMES.index("nor_conv_3x3")] = 0.0
    supernet.set_mixture(w * mask)
    supernet(x).square().mean().backward()
    assert calls and all(name != "nor_conv_3x3" for _, name in calls)
    assert len(calls) == 6 * 3  # skip, conv 1x1, pool on every edge; none has no module
    live = w.grad[:, [OP_NAMES.index(n) for n in ("skip_connect", "nor_conv_1x1", "avg_pool_3x3")]]
    assert (live != 0).all()


def test_nb201_set_mixture_refuses_bad_weights(nb201):
    _, supernet, _ = nb201
    for bad in (torch.zeros(5, 6), torch.zeros(6, 5, dtype=torch.long), [[0.2] * 5] * 6):
        with pytest.raises(InvalidOption, match=r"\[6, 5\]"):
            supernet.set_mixture(bad)
    with pytest.raises(InvalidOption):
        supernet.derive(torch.zeros(6, 5))  # a bare tensor, not a sequence of them


# ---- derive ---------------------------------------------------------------------------------
def test_nb201_derive_inverts_mixture_of(nb201):
    space, supernet, _ = nb201
    for arch in space.sample_many(20, 3):
        assert supernet.derive(supernet.mixture_of(arch)) == arch
    # argmax over all five ops: none stays possible
    alphas = torch.zeros(6, 5)
    alphas[:, 0] = 1.0
    assert supernet.derive([alphas]).choices == (0,) * 6


def test_darts_derive_inverts_mixture_of(darts):
    space, supernet = darts
    for arch in distinct_inputs(space, 12, 4):
        assert not space.repeats_input(arch)
        assert supernet.derive(supernet.mixture_of(arch)) == arch


def test_darts_derive_lists_the_stronger_edge_first(darts):
    space, supernet = darts
    (arch,) = distinct_inputs(space, 1, 5)
    normal, reduce = supernet.mixture_of(arch)
    # make each node's second edge (the higher input) the stronger one
    for w, cell in ((normal, space.genotype(arch).normal), (reduce, space.genotype(arch).reduce)):
        for node in range(4):
            op, source = cell[2 * node + 1]
            w[edge_index(node, source), PRIMITIVES.index(op)] = 3.0
    c = arch.choices
    swapped = []
    for k in range(0, len(c), 4):
        swapped += [c[k + 2], c[k + 3], c[k], c[k + 1]]
    assert supernet.derive((normal, reduce)) == space.arch(swapped)


def test_darts_derive_follows_dartss_rule(darts):
    """Strength is the largest non-none softmax weight (so a strong none weakens an edge),
    the two strongest distinct inputs are kept, and none is never the op."""
    space, supernet = darts
    normal = torch.zeros(NUM_EDGES, len(PRIMITIVES))
    sep3, pool, dil5 = (PRIMITIVES.index(n)
                        for n in ("sep_conv_3x3", "max_pool_3x3", "dil_conv_5x5"))
    normal[edge_index(2, 0), 0], normal[edge_index(2, 0), sep3] = 5.0, 4.0  # strength 0.26
    normal[edge_index(2, 1), pool] = 1.0                                     # 0.28
    normal[edge_index(2, 3), dil5] = 2.0                                     # 0.51
    normal[edge_index(0, 1), 0] = 10.0  # none dominates: still a non-none op is chosen
    genotype = space.genotype(supernet.derive((normal, torch.zeros(NUM_EDGES, 8))))
    assert genotype.normal[4:6] == [("dil_conv_5x5", 3), ("max_pool_3x3", 1)]
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)
    # all-equal rows: the lowest inputs and the first op, as DARTS' stable sort
    assert genotype.reduce == [(OPS[0], 0), (OPS[0], 1)] * 4
    assert not space.repeats_input(supernet.derive((torch.randn(14, 8), torch.randn(14, 8))))


# ---- decision_probs -------------------------------------------------------------------------
def test_nb201_decision_probs_are_the_rows(nb201):
    space, supernet, _ = nb201
    alphas = torch.randn(6, 5, requires_grad=True)
    w = torch.softmax(alphas, dim=-1)
    probs = supernet.decision_probs([w])
    assert probs.shape == (space.num_options,)
    torch.testing.assert_close(probs, w.reshape(-1))
    for sl in decision_slices(space):
        torch.testing.assert_close(probs[sl].sum(), torch.tensor(1.0))
    (probs * torch.randn(space.num_options)).sum().backward()
    assert (alphas.grad != 0).all()
    arch = space.sample(8)
    soft = supernet.decision_probs(supernet.mixture_of(arch)).numpy()
    assert np.array_equal(soft, space.one_hot(arch))


def test_darts_decision_probs_are_distributions_with_gradients(darts):
    space, supernet = darts
    gen = torch.Generator().manual_seed(9)
    alphas = [torch.randn(14, 8, generator=gen, requires_grad=True) for _ in range(2)]
    probs = supernet.decision_probs([torch.softmax(a, dim=-1) for a in alphas])
    assert probs.shape == (space.num_options,) and (probs > 0).all()
    for sl in decision_slices(space):
        torch.testing.assert_close(probs[sl].sum(), torch.tensor(1.0))
    (probs * torch.rand(space.num_options, generator=gen)).sum().backward()
    for a in alphas:
        assert a.grad is not None and (a.grad != 0).any()
    # input1 and input2 share the input distribution, op1 and op2 the op one
    sl = decision_slices(space)
    for k in range(0, len(sl), 4):
        assert torch.equal(probs[sl[k]], probs[sl[k + 2]])
        assert torch.equal(probs[sl[k + 1]], probs[sl[k + 3]])
    # a degenerate all-none mixture still gives distributions (uniform), not 0 / 0
    none = torch.zeros(14, 8)
    none[:, 0] = 1.0
    flat = supernet.decision_probs((none, none))
    assert torch.isfinite(flat).all()
    for s in sl:
        torch.testing.assert_close(flat[s].sum(), torch.tensor(1.0))


def test_darts_decision_probs_of_an_arch_is_exact_for_symmetric_linear_predictors(darts):
    """The documented property of the expected encoding: with coefficients shared by a
    node's two edges, the one-hot mixture of an arch predicts that arch."""
    space, supernet = darts
    rng = np.random.default_rng(0)
    coef = np.zeros(space.num_options)
    offsets = space.option_offsets
    for k in range(0, len(space.decisions), 4):
        for part in (0, 1):  # input, op
            shared = rng.random(len(space.decisions[k + part]))
            coef[offsets[k + part]:offsets[k + part] + len(shared)] = shared
            coef[offsets[k + 2 + part]:offsets[k + 2 + part] + len(shared)] = shared
    for arch in distinct_inputs(space, 5, 7):
        soft = supernet.decision_probs(supernet.mixture_of(arch)).double().numpy()
        assert soft @ coef == pytest.approx(space.one_hot(arch) @ coef, rel=1e-6)
