"""TopoNAS (hwnas.oneshot.toponas) on the tiny darts supernet: the topology distributions
and their marginals, the decoupled mixture, the passive-aggressive regulariser, derivations
that never give an invalid topology, searches on top of DARTS and GDAS, and GDAS running
exactly the sampled topology's edges."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hwnas.evaluators.datasets import load
from hwnas.oneshot import NoSupernet, make_supernet
from hwnas.oneshot.darts import EDGES, NUM_EDGES, edge_index
from hwnas.oneshot.differentiable import (DifferentiableConfig, DifferentiableSearch, LatencyTerm,
                                          differentiable_search)
from hwnas.oneshot.toponas import TopologyConfig, TopoNAS, valid_cell
from spaces import InvalidOption
from spaces.darts import NUM_NODES, OPS, PRIMITIVES, DartsSpace
from spaces.nb201 import NB201Space

TINY = dict(epochs=1, batch_size=16)
FREE = TopologyConfig(mode="free", max_in=3)


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return load("digits", 8, 3, max_samples=64)  # 51 training, 13 validation images


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return make_supernet(DartsSpace(C=4, layers=3), 10, 8)


def random_alphas(gen: torch.Generator, scale: float = 1.0) -> list[torch.Tensor]:
    return [scale * torch.randn(NUM_EDGES, len(PRIMITIVES), generator=gen) for _ in range(2)]


def random_logits(topo: TopoNAS, gen: torch.Generator, scale: float = 3.0) -> list[torch.Tensor]:
    return [scale * torch.randn(b.shape, generator=gen) for b in topo.logits]


def cells_of(space: DartsSpace, arch) -> list[list[tuple[str, int]]]:
    """The derived arch's two cells as per-node (op, input) lists."""
    g = space.genotype(arch)
    return [[spec[2 * j:2 * j + 2] for j in range(NUM_NODES)] for spec in (g.normal, g.reduce)]


# ---- distributions and mixture --------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3])
def test_distributions_sum_to_one_and_marginals_to_k(supernet, k):
    topo = TopoNAS(supernet, TopologyConfig(k=k))
    assert [len(s) for s in topo.subsets] == [math.comb(j + 2, min(k, j + 2))
                                              for j in range(NUM_NODES)]
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        logits = random_logits(topo, gen)
        for cell, marg in zip(topo.distributions(logits), topo.marginals(logits)):
            for j, p in enumerate(cell):
                assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)
                rows = slice(edge_index(j, 0), edge_index(j, j + 1) + 1)
                assert float(marg[rows].sum()) == pytest.approx(min(k, j + 2), abs=1e-5)
                assert bool(((marg[rows] >= 0) & (marg[rows] <= 1 + 1e-6)).all())
        arch = topo.derive(random_alphas(gen), logits)  # k != 2: the two likeliest inputs
        assert supernet.space.validate(arch) == arch and not supernet.space.repeats_input(arch)


def test_free_marginals_sum_to_the_expected_in_degree(supernet):
    topo = TopoNAS(supernet, FREE)
    assert [len(s) for s in topo.subsets] == [2 ** (j + 2) for j in range(NUM_NODES)]
    logits = random_logits(topo, torch.Generator().manual_seed(1))
    for cell, marg in zip(topo.distributions(logits), topo.marginals(logits)):
        for j, p in enumerate(cell):
            expected = sum(float(p[s]) * len(sub) for s, sub in enumerate(topo.subsets[j]))
            rows = slice(edge_index(j, 0), edge_index(j, j + 1) + 1)
            assert float(marg[rows].sum()) == pytest.approx(expected, abs=1e-5)


def test_mixture_is_the_topology_marginal_times_the_op_distribution(supernet):
    topo = TopoNAS(supernet)
    gen = torch.Generator().manual_seed(2)
    alphas, logits = random_alphas(gen), random_logits(topo, gen)
    for w, a, marg in zip(topo.mixture(alphas, logits), alphas, topo.marginals(logits)):
        assert torch.allclose(w.sum(dim=1), torch.ones(NUM_EDGES), atol=1e-6)
        ops = torch.softmax(a[:, 1:], dim=-1)  # none is the topology's business
        assert torch.allclose(w[:, 1:], marg[:, None] * ops, atol=1e-6)
        assert torch.allclose(w[:, 0], 1 - marg, atol=1e-6)
    # the space's relaxed encoding reads the edges' strengths as the marginals
    probs = supernet.decision_probs(topo.mixture(alphas, logits))
    assert torch.isfinite(probs).all()


# ---- derivation -----------------------------------------------------------------------------
def test_derive_never_gives_an_invalid_topology(supernet):
    space = supernet.space
    gen = torch.Generator().manual_seed(3)
    fixed, free = TopoNAS(supernet), TopoNAS(supernet, FREE)
    for draw in range(60):
        alphas = random_alphas(gen, 3.0)
        if draw % 3 == 0:  # none dominates every edge: still a real op per input
            for a in alphas:
                a[:, 0] += 20.0
        lf, lr = random_logits(fixed, gen), random_logits(free, gen)
        if draw % 2 == 0:  # the invalid topologies (empty, > max_in) are the most probable
            for b, bad in zip(lr, free.invalid * 2):
                b[bad] += 20.0
        for topo, logits in ((fixed, lf), (free, lr)):
            arch = topo.derive(alphas, logits)
            assert space.validate(arch) == arch and not space.repeats_input(arch)
            for cell in cells_of(space, arch):
                assert valid_cell(cell, min_in=2, max_in=2)  # inputs earlier: no cycle
        # fixed k=2: the derived inputs are the most probable topology
        for c, cell in enumerate(cells_of(space, fixed.derive(alphas, lf))):
            for j, edges in enumerate(cell):
                p = fixed.distributions(lf)[c][j]
                assert tuple(sorted(i for _, i in edges)) == fixed.subsets[j][int(p.argmax())]
        # free: any in-degree in [1, max_in], never the empty set
        for cell in free.derive_cells(alphas, lr):
            assert valid_cell(cell, min_in=1, max_in=3)
        assert fixed.derive_cells(alphas, lf) == tuple(cells_of(space, fixed.derive(alphas, lf)))


def test_free_derivation_picks_the_most_probable_valid_topology(supernet):
    topo = TopoNAS(supernet, FREE)
    logits = [torch.zeros(b.shape) for b in topo.logits]
    want = [(0,), (0, 2), (0, 1, 3), (4,)]
    for c in range(2):
        for j, subset in enumerate(want):
            logits[c * NUM_NODES + j][topo.subsets[j].index(subset)] = 5.0
            logits[c * NUM_NODES + j][topo.subsets[j].index(())] = 9.0  # invalid: skipped
    alphas = [torch.zeros(NUM_EDGES, len(PRIMITIVES)) for _ in range(2)]
    for a in alphas:
        a[:, 1 + OPS.index("sep_conv_3x3")] = 1.0
    for cell in topo.derive_cells(alphas, logits):
        assert [sorted(i for _, i in edges) for edges in cell] == [list(s) for s in want]
        assert {op for edges in cell for op, _ in edges} == {"sep_conv_3x3"}


# ---- the passive-aggressive regulariser -----------------------------------------------------
def test_regulariser_is_zero_on_valid_topologies_and_positive_otherwise(supernet):
    fixed = TopoNAS(supernet)
    reg = fixed.regulariser()
    assert float(reg) == 0.0 and not reg.requires_grad  # fixed k: every topology is valid
    topo = TopoNAS(supernet, FREE)
    gen = torch.Generator().manual_seed(4)
    logits = random_logits(topo, gen)
    on_valid = [torch.where(bad, torch.tensor(-math.inf), b)
                for b, bad in zip(logits, topo.invalid * 2)]
    assert float(topo.regulariser(on_valid)) == 0.0
    assert float(topo.regulariser(logits)) > 0.0
    # one invalid topology with a little mass is enough
    nudged = [b.clone() for b in on_valid]
    nudged[5][topo.subsets[1].index(())] = -3.0
    assert float(topo.regulariser(nudged)) > 0.0
    # passive below the margin: no loss, no gradient
    lenient = TopoNAS(supernet, TopologyConfig(mode="free", max_in=3, margin=0.2))
    loose = [b.detach().clone().requires_grad_() for b in nudged]
    q = float(lenient.invalid_mass(loose)[1][1].detach())  # logits[5]: reduce cell, node 1
    assert 0 < q < 0.2
    value = lenient.regulariser(loose)
    assert float(value.detach()) == 0.0
    grads = torch.autograd.grad(value, loose, allow_unused=True)
    assert all(g is None or float(g.abs().sum()) == 0 for g in grads)


def test_regulariser_gradient_pushes_mass_off_invalid_topologies(supernet):
    topo = TopoNAS(supernet, TopologyConfig(mode="free", max_in=2, reg_weight=1.0))
    logits = [b.detach().clone().requires_grad_() for b in
              random_logits(topo, torch.Generator().manual_seed(5), 1.0)]

    def masses():
        return [float(q.detach()) for cell in topo.invalid_mass(logits) for q in cell]

    before = masses()
    grads = torch.autograd.grad(topo.regulariser(logits), logits)
    for g, bad in zip(grads, topo.invalid * 2):
        assert bool((g[bad] > 0).all())          # aggressive: every invalid logit goes down
        assert bool((g[~bad] == 0).all())        # passive: the valid ones are left alone
    # PA's step: one SGD step of 1 removes most of each node's violation, three nearly all
    opt = torch.optim.SGD(logits, lr=1.0)
    history = [before]
    for _ in range(3):
        opt.zero_grad()
        topo.regulariser(logits).backward()
        opt.step()
        history.append(masses())
    assert all(a < 0.6 * b for a, b in zip(history[1], before))
    assert max(history[-1]) < 0.1


def test_regulariser_push_does_not_fade_with_the_violation(supernet):
    """A plain hinge's gradient shrinks with the invalid mass; PA's scaled step does not."""
    topo = TopoNAS(supernet, TopologyConfig(mode="free", max_in=3, aggressiveness=1e6))
    for empty_logit in (-1.0, -4.0, -8.0):
        logits = [torch.zeros(b.shape) for b in topo.logits]
        for b, subs in zip(logits, topo.subsets * 2):
            b[subs.index(())] = empty_logit  # max_in=3: node 3's size-4 and -5 sets invalid too
            for s, sub in enumerate(subs):
                if len(sub) > 3:
                    b[s] = -50.0
        leaf = [b.requires_grad_() for b in logits]
        q = float(topo.invalid_mass(leaf)[0][0].detach())
        grad = torch.autograd.grad(topo.regulariser(leaf), leaf)[0]
        assert 0 < q < 0.3
        assert float(grad.norm()) == pytest.approx(1 / (1 - q), rel=1e-3)  # l / ||grad l||


# ---- searches -------------------------------------------------------------------------------
@pytest.mark.parametrize("method,config", [("darts", TopologyConfig()), ("gdas", TopologyConfig()),
                                           ("darts", FREE), ("gdas", FREE)])
def test_search_on_top_of_darts_and_gdas_derives_a_valid_arch(data, method, config):
    torch.manual_seed(0)
    supernet = make_supernet(DartsSpace(C=4, layers=3), 10, 8)
    search = DifferentiableSearch(supernet, data, DifferentiableConfig(method=method, **TINY),
                                  topology=config)
    initial = [b.detach().clone() for b in search.topology.logits]
    invalid0 = sum(float(q.detach()) for cell in search.topology.invalid_mass() for q in cell)
    result = differentiable_search(supernet, data, method, topology=config, alpha_lr=0.05, **TINY)
    space = supernet.space
    assert space.validate(result.arch) == result.arch and not space.repeats_input(result.arch)
    assert supernet.active == result.arch
    for cell in cells_of(space, result.arch):
        assert valid_cell(cell, min_in=2, max_in=2)
    rec = result.history[-1]
    assert rec.arch == result.arch and np.isfinite(rec.val_loss)
    assert len(rec.topology) == 2 and [len(p) for p in rec.topology[0]] == [
        len(s) for s in search.topology.subsets]
    for cell in rec.topology:
        for p in cell:
            assert p.sum() == pytest.approx(1.0, abs=1e-6)
    for p in rec.probs:
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    moved = [not torch.equal(b, b0) for b, b0 in zip(result.topology_logits, initial)]
    assert all(m for m, b in zip(moved, initial) if b.numel() > 1)  # node 0 (k=2) has one
    if config.mode == "free":  # the regulariser took mass off the invalid topologies
        final = TopoNAS(supernet, config)
        invalid = sum(float(q) for cell in final.invalid_mass(list(result.topology_logits))
                      for q in cell)
        assert invalid < invalid0
        for cell in final.derive_cells(list(result.alphas), list(result.topology_logits)):
            assert valid_cell(cell, min_in=1, max_in=3)


@pytest.mark.parametrize("config", [TopologyConfig(), FREE])
def test_gdas_runs_exactly_the_sampled_topology(data, supernet, config):
    supernet.train()
    search = DifferentiableSearch(supernet, data, DifferentiableConfig(method="gdas", **TINY),
                                  topology=config)
    calls: dict[tuple[int, int], list[str]] = {}
    handles = []
    for k, cell in enumerate(supernet.cells):
        for e, ops in enumerate(cell.edges):
            for name, module in ops.items():
                handles.append(module.register_forward_hook(
                    lambda *_, key=(k, e), name=name: calls.setdefault(key, []).append(name)))
    try:
        for tau in (10.0, 1.0, 0.1):
            calls.clear()
            mixture = search.mixture(tau, grad=True)
            supernet.set_mixture(*mixture)
            F.cross_entropy(supernet(data.x_train[:8]), data.y_train[:8]).backward()
            for k, cell in enumerate(supernet.cells):
                w = mixture[int(cell.reduction)].detach()
                for j in range(NUM_NODES):
                    ran = [e for e in range(NUM_EDGES) if EDGES[e][0] == j and (k, e) in calls]
                    if config.mode == "fixed":
                        assert len(ran) == 2  # exactly k edges of the node run ...
                    else:
                        assert len(ran) == int((w[[edge_index(j, i) for i in range(j + 2)],
                                                  1:] != 0).any(dim=1).sum())
                    for e in ran:  # ... each with one op, the sampled one
                        assert int((w[e, 1:] != 0).sum()) == 1
                        assert calls[(k, e)] == [PRIMITIVES[int(w[e].argmax())]]
            for a in search.alphas:
                assert a.grad is not None and float(a.grad.abs().sum()) > 0
                a.grad = None
            for n, b in enumerate(search.topology.logits):  # straight-through reaches them ...
                c, j = divmod(n, NUM_NODES)
                w = mixture[c][edge_index(j, 0):edge_index(j, j + 1) + 1, 1:]
                if b.numel() > 1 and bool((w != 0).any()):  # ... unless nothing ran (empty set)
                    assert b.grad is not None and float(b.grad.abs().sum()) > 0
                b.grad = None
    finally:
        for h in handles:
            h.remove()


def test_latency_term_reads_the_topology_aware_mixture(data, supernet):
    space = supernet.space
    coef = np.random.default_rng(0).random(space.num_options) + 0.1

    class Linear:
        def predict_soft(self, probs):
            return 1.0 + probs @ torch.as_tensor(coef, dtype=probs.dtype)

        def predict(self, archs):
            return 1.0 + space.one_hot_many(list(archs)).astype(np.float64) @ coef

    term = LatencyTerm(Linear(), budget_ms=0.5, weight=2.0)
    search = DifferentiableSearch(supernet, data, DifferentiableConfig(**TINY), latency=term,
                                  topology=FREE)
    expected = term.expected_ms(supernet, search.alphas, probs=search.probs())
    want = Linear().predict_soft(supernet.decision_probs(search.topology.mixture(search.alphas)))
    assert float(expected.detach()) == pytest.approx(float(want.detach()))
    _, loss = term.loss(supernet, search.alphas, probs=search.probs())
    grads = torch.autograd.grad(loss, search.arch_params, allow_unused=True)
    for b, g in zip(search.arch_params, grads):
        if b.numel() > 1:
            assert g is not None and float(g.abs().sum()) > 0
    # the search's gradients have one entry per alpha and topology tensor
    train = (data.x_train[:8], data.y_train[:8])
    val = (data.x_val[:8], data.y_val[:8])
    grads, _ = search.alpha_gradients(train, val, second_order=True, xi=0.01)
    assert len(grads) == 2 + 2 * NUM_NODES
    assert all(torch.isfinite(g).all() for g in grads)


def test_refusals(supernet):
    torch.manual_seed(0)
    with pytest.raises(NoSupernet, match="TopoNAS"):
        TopoNAS(make_supernet(NB201Space(C=4, N=1), 10, 8))
    for bad in (dict(mode="any"), dict(k=0), dict(mode="free", max_in=0), dict(max_in=2),
                dict(reg_weight=-1.0), dict(margin=1.0), dict(aggressiveness=0.0)):
        with pytest.raises(InvalidOption):
            TopologyConfig(**bad)
    with pytest.raises(InvalidOption, match="topology logits"):
        TopoNAS(supernet).regulariser([torch.zeros(3)])


def test_subsets_are_every_combination(supernet):
    free = TopoNAS(supernet, FREE)
    for j, subs in enumerate(free.subsets):
        assert set(subs) == {s for n in range(j + 3)
                             for s in itertools.combinations(range(j + 2), n)}
        assert [bool(b) for b in free.invalid[j]] == [not 1 <= len(s) <= 3 for s in subs]
