"""EnTranNAS (hwnas.oneshot.entrannas) and the DARTS supernet's per-position modes: engine
cells run the sparsified mixture, transit cells only the derived path; the sparsification
keeps two edges of one op per node at level 1 and any number under the free rule; at the
end of a search the engines compute exactly the derived architecture; feature sharing ties
the modules of one state, runs each once and keeps extract exact; the latency term reaches
the architecture parameters."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.evaluators.datasets import load
from hwnas.oneshot import NoSupernet, make_supernet
from hwnas.oneshot.darts import EDGES, NUM_EDGES, DartsSupernet, edge_index
from hwnas.oneshot.differentiable import LatencyTerm
from hwnas.oneshot.entrannas import (EnTranNASConfig, EnTranNASSearch, SparseLatencyTerm,
                                     arch_support, derive, derive_weights, engine_is_derived,
                                     engine_positions, entrannas_search, free_topology,
                                     in_degrees, share_features, sparsify, support)
from spaces import InvalidOption
from spaces.darts import NUM_NODES, OPS, PRIMITIVES, DartsSpace
from spaces.nb201 import NB201Space
from tests.hwnas.oneshot.test_differentiable import LinearPredictor, charging
from tests.hwnas.oneshot.test_supernets import randomize

TOL = dict(atol=1e-5, rtol=1e-5)
TINY = dict(epochs=2, batch_size=32, alpha_lr=0.01)  # 3 steps an epoch on 102 images
# node 0 and node 1 of the normal cell both read c_{k-1} through sep_conv_3x3: one shared
# module in the supernet, two standalone copies
SHARED_READ = ("Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), "
               "('dil_conv_3x3', 2), ('avg_pool_3x3', 0), ('sep_conv_5x5', 3), "
               "('skip_connect', 4), ('max_pool_3x3', 1)], normal_concat=[2, 3, 4, 5], "
               "reduce=[('max_pool_3x3', 0), ('sep_conv_3x3', 1), ('dil_conv_5x5', 2), "
               "('skip_connect', 1), ('sep_conv_3x3', 0), "
               "('avg_pool_3x3', 2), ('dil_conv_3x3', 4), ('skip_connect', 1)], "
               "reduce_concat=[2, 3, 4, 5])")


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return load("digits", 8, 3, max_samples=128)  # 102 training, 26 validation images


def supernet_of(seed: int = 0) -> DartsSupernet:
    torch.manual_seed(seed)
    return make_supernet(DartsSpace(C=4, layers=3), 10, 8)  # cells: normal, reduce, reduce


def random_alphas(seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(NUM_EDGES, len(PRIMITIVES), generator=gen)).requires_grad_()
            for _ in range(2)]


def record_calls(supernet: DartsSupernet) -> tuple[dict, list]:
    """Forward hooks on every op module: ``calls[position]`` gets one (edge, op index) per
    call of an unshared module, one (state, op index) per call of a shared one."""
    calls: dict[int, list[tuple[int, int]]] = {}
    handles = []
    for k, cell in enumerate(supernet.cells):
        places: dict[int, tuple[nn.Module, list[tuple[int, int]]]] = {}
        for e, ops in enumerate(cell.edges):
            for name, module in ops.items():
                places.setdefault(id(module), (module, []))[1].append((e, PRIMITIVES.index(name)))
        for module, where in places.values():
            (e, o) = where[0]
            label = (EDGES[e][1], o) if len(where) > 1 else (e, o)
            handles.append(module.register_forward_hook(
                lambda *_, k=k, label=label: calls.setdefault(k, []).append(label)))
    return calls, handles


def remove(handles) -> None:
    for h in handles:
        h.remove()


# ---- the supernet's per-position modes ---------------------------------------------------
def test_positions_run_the_mixture_and_the_rest_the_single_path():
    space = DartsSpace(C=4, layers=3)
    supernet = supernet_of()
    randomize(supernet, 1)
    supernet.eval()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    arch = space.sample(5)
    weights = [torch.softmax(a.detach(), -1) for a in random_alphas(3)]

    supernet.set_mixture(*weights)  # default: every cell, as before
    assert supernet.mixture_positions == frozenset({0, 1, 2})
    everywhere = supernet(x)
    supernet.set_mixture(*weights, positions={0, 1}, arch=arch)
    assert supernet.mixture_positions == frozenset({0, 1})
    calls, handles = record_calls(supernet)
    engines_transit = supernet(x)
    remove(handles)
    assert calls[2] and set(calls[2]) == arch_support(space, arch)[1]  # cell 2 reduces
    assert len(set(calls[0])) == NUM_EDGES * len(OPS)  # the mixture runs every op there
    assert not torch.allclose(everywhere, engines_transit)
    # the mixture of arch in the engines, arch in the transit cell: arch everywhere
    supernet.set_mixture(*supernet.mixture_of(arch), positions=[1], arch=arch)
    mixed = supernet(x)
    supernet.set_active(arch)
    assert supernet.mixture_positions == frozenset()
    torch.testing.assert_close(mixed, supernet(x), **TOL)
    supernet.set_mixture(*weights, positions=range(3))  # every cell listed: no arch needed

    with pytest.raises(InvalidOption, match="needs the architecture"):
        supernet.set_mixture(*weights, positions={0})
    with pytest.raises(InvalidOption, match="no cell 3"):
        supernet.set_mixture(*weights, positions={0, 3}, arch=arch)
    for bad in ("01", 1, [0.5], [True]):
        with pytest.raises(InvalidOption, match="cell indices"):
            supernet.set_mixture(*weights, positions=bad, arch=arch)


def test_engine_positions_default_and_checks():
    supernet = supernet_of()
    assert engine_positions(supernet) == frozenset({0, 1})
    assert engine_positions(supernet, [0, 2]) == frozenset({0, 2})
    with pytest.raises(InvalidOption, match="no reduce cell"):
        engine_positions(supernet, [0])
    with pytest.raises(InvalidOption, match="no normal cell"):
        engine_positions(supernet, {1, 2})


# ---- the sparsification ------------------------------------------------------------------
def test_sparsification_levels_and_the_darts_rule():
    space = DartsSpace(C=4, layers=3)
    alphas = random_alphas(0)
    dense = sparsify(alphas, 0.0)
    for w, a in zip(dense, alphas):  # level 0: the node-level softmax, nothing pruned
        assert torch.all(w[:, 0] == 0) and torch.all(w[:, 1:] > 0)
        for node in range(NUM_NODES):
            rows = slice(edge_index(node, 0), edge_index(node, node + 1) + 1)
            q = torch.softmax(a[rows, 1:].reshape(-1), 0).reshape(-1, len(OPS))
            torch.testing.assert_close(w[rows, 1:], q)

    arch = derive(space, alphas)
    assert not space.repeats_input(arch)
    half, sparse = sparsify(alphas, 0.5), sparsify(alphas, 1.0)
    assert derive_weights(space, half) == derive_weights(space, dense) == arch  # any level
    for w_half, w in zip(half, sparse):
        for node in range(NUM_NODES):
            rows = slice(edge_index(node, 0), edge_index(node, node + 1) + 1)
            torch.testing.assert_close(w[rows].sum().detach(), torch.tensor(1.0))
            live = w[rows, 1:] != 0
            assert int(live.any(1).sum()) == 2  # two edges per node ...
            assert live.sum(1).tolist().count(1) == 2 and int(live.sum()) == 2  # one op each
        assert int((w != 0).sum()) < int((w_half != 0).sum()) < 14 * 7
    # level 1: the non-zero entries are the derived architecture's, by construction
    assert support(sparse) == arch_support(space, arch)
    assert engine_is_derived(space, sparse, arch) and not engine_is_derived(space, half, arch)
    # differentiable: the survivors' weights reach the logits
    (sum((w * torch.arange(w.numel()).reshape(w.shape)).sum() for w in sparse)).backward()
    for a in alphas:
        assert a.grad is not None and a.grad.abs().sum() > 0

    with pytest.raises(InvalidOption, match="rule"):
        sparsify(alphas, 1.0, "top2")
    with pytest.raises(InvalidOption, match="level"):
        sparsify(alphas, 1.5)
    with pytest.raises(InvalidOption, match="shape"):
        sparsify(alphas[:1])


def test_free_topology_has_any_in_degree():
    space = DartsSpace(C=4, layers=3)
    gen = torch.Generator().manual_seed(1)
    alphas = [0.01 * torch.randn(NUM_EDGES, len(PRIMITIVES), generator=gen) for _ in range(2)]
    sep3 = PRIMITIVES.index("sep_conv_3x3")
    for a in alphas:
        for i, strength in zip((0, 1, 3), (3.0, 2.9, 2.8)):  # node 3: three strong inputs
            a[edge_index(3, i), sep3] = strength
        a[edge_index(2, 2), sep3] = 3.0  # node 2: one strong input (node 0)
    free = free_topology(alphas)
    degrees = in_degrees(free)
    assert degrees["normal"][2:] == [1, 3] and degrees["reduce"][2:] == [1, 3]
    assert free["normal"][3][0][:2] == (0, "sep_conv_3x3")
    assert {i for i, _, _ in free["normal"][3]} == {0, 1, 3}
    # the DARTS space takes two edges: the two strongest survivors
    genotype = space.genotype(derive(space, alphas))
    assert genotype.normal[6:] == [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)]
    assert genotype.normal[4] == ("sep_conv_3x3", 2)


# ---- feature sharing ---------------------------------------------------------------------
def test_feature_sharing_ties_modules_runs_each_once_and_extract_stays_exact():
    space = DartsSpace(C=4, layers=3)
    supernet = supernet_of()
    before = sum(p.numel() for p in supernet.parameters())
    assert share_features(supernet) > 0 and share_features(supernet) == 0
    assert sum(p.numel() for p in supernet.parameters()) < before / 2
    for cell in supernet.cells:
        for e, (_, source) in enumerate(EDGES):
            first = min(f for f, (_, s) in enumerate(EDGES) if s == source)
            for name in OPS:
                assert cell.edges[e][name] is cell.edges[first][name]
    randomize(supernet, 1)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))

    calls, handles = record_calls(supernet)  # a full mixture: each (state, op) runs once
    supernet.set_mixture(*[torch.softmax(a.detach(), -1) for a in random_alphas(3)])
    supernet(x)
    remove(handles)
    for k in range(3):
        assert len(calls[k]) == len(set(calls[k])) == 5 * len(OPS)  # 5 states read, once each

    arch = space.from_string(SHARED_READ)
    for training in (True, False):
        net_super = copy.deepcopy(supernet).train(training)
        net_super.set_active(arch)
        net = net_super.extract(arch)
        assert net.cells[0].ops[0] is not net.cells[0].ops[2]  # two standalone copies
        with torch.no_grad():
            torch.testing.assert_close(net_super(x), net(x), **TOL)
            if training:  # BN statistics moved alike: eval outputs still agree
                torch.testing.assert_close(net_super.eval()(x), net.eval()(x), **TOL)


# ---- the search --------------------------------------------------------------------------
@pytest.mark.parametrize("second_order", [False, True])
def test_search_runs_and_derives_a_valid_arch(data, second_order):
    supernet = supernet_of()
    settings = dict(TINY, epochs=1) if second_order else TINY
    initial = [a.detach().clone() for a in EnTranNASSearch(
        supernet_of(), data, EnTranNASConfig(**settings)).alphas]
    result = entrannas_search(supernet, data, second_order=second_order, **settings)
    space = supernet.space
    assert space.validate(result.arch) == result.arch and not space.repeats_input(result.arch)
    assert supernet.active == result.arch and not supernet.training
    assert result.engines == (0, 1) and result.shared_modules > 0
    assert len(result.history) == settings["epochs"] and result.history[-1].arch == result.arch
    levels = [r.level for r in result.history]
    assert levels == sorted(levels) and levels[-1] == 1.0
    last = result.history[-1]
    assert last.engine_is_derived and np.isfinite(last.train_loss) and np.isfinite(last.val_loss)
    assert last.tau is None and result.predicted_ms is None and result.expected_ms is None
    assert result.free_topology is not None and set(result.free_topology) == {"normal", "reduce"}
    for a, a0, w in zip(result.alphas, initial, result.weights):
        assert not torch.equal(a, a0)  # the alphas moved
        assert w.shape == (NUM_EDGES, len(PRIMITIVES)) and np.count_nonzero(w) == 2 * NUM_NODES


def test_search_is_seeded(data):
    runs = [entrannas_search(supernet_of(), data, epochs=1, batch_size=32, seed=s)
            for s in (3, 3, 4)]
    assert runs[0].arch == runs[1].arch
    for a, b in zip(runs[0].alphas, runs[1].alphas):
        assert torch.equal(a, b)
    assert not torch.equal(runs[0].alphas[0], runs[2].alphas[0])


def test_engines_compute_the_derived_architecture_at_the_end(data):
    supernet = supernet_of(1)
    result = entrannas_search(supernet, data, **TINY)
    space, arch = supernet.space, result.arch
    weights = sparsify(result.alphas, 1.0)
    np.testing.assert_array_equal(np.stack(result.weights), torch.stack(weights).numpy())
    # the engines' non-zero entries are exactly the derived (edge, op) pairs ...
    assert support(weights) == arch_support(space, arch)
    # ... so the engines run the derived ops and nothing else
    x = data.x_val[:8]
    calls, handles = record_calls(supernet)
    supernet.set_mixture(*weights, positions=result.engines, arch=arch)
    with torch.no_grad():
        scaled = supernet(x)
    remove(handles)
    derived_pairs = arch_support(space, arch)
    for k in range(3):  # shared modules: (state, op) pairs, each run once
        cell_pairs = {(EDGES[e][1], o) for e, o in derived_pairs[int(supernet.cells[k].reduction)]}
        assert sorted(calls[k]) == sorted(cell_pairs)
    # ... and with the survivors' weights at 1.0 (the per-edge scale removed) the network
    # with its engines in mixture mode is the derived network, exactly
    unit = [(w != 0).to(w.dtype) for w in weights]
    supernet.set_mixture(*unit, positions=result.engines, arch=arch)
    with torch.no_grad():
        engines_out = supernet(x)
        supernet.set_active(arch)
        derived_out = supernet(x)
        extracted_out = supernet.extract(arch)(x)
    assert torch.equal(engines_out, derived_out)
    torch.testing.assert_close(derived_out, extracted_out, **TOL)
    assert not torch.allclose(scaled, derived_out)  # the scale is what differs
    # control: before the end of the warm-up the engines still run more than the derived cell
    half = sparsify(result.alphas, 0.5)
    supernet.set_mixture(*[(w != 0).to(w.dtype) for w in half], positions=result.engines,
                         arch=arch)
    with torch.no_grad():
        assert not torch.allclose(supernet(x), derived_out)


def test_transit_cells_run_only_the_derived_path(data):
    supernet = supernet_of(2).train()
    search = EnTranNASSearch(supernet, data, EnTranNASConfig(share_features=False, **TINY))
    with torch.no_grad():
        for a, r in zip(search.alphas, random_alphas(5)):
            a.copy_(r)
    search.tau(search.total_steps // 4)  # mid warm-up: the engines are partly sparse
    assert 0 < search.level < 1
    mixture = search.mixture(grad=False)
    arch = search.transit_arch(mixture)
    assert arch == derive(supernet.space, search.alphas)
    calls, handles = record_calls(supernet)
    x, y = data.x_train[:16], data.y_train[:16]
    search.weight_step((x, y))
    remove(handles)
    engine_pairs, derived_pairs = support(mixture), arch_support(supernet.space, arch)
    assert sorted(calls[0]) == sorted(engine_pairs[0])  # engines: the sparsified support
    assert sorted(calls[1]) == sorted(engine_pairs[1])
    assert sorted(calls[2]) == sorted(derived_pairs[1])  # transit: the derived path only
    assert len(engine_pairs[1]) > len(derived_pairs[1]) == 2 * NUM_NODES
    # the transit cell's weights learn only on that path
    grads = {(e, PRIMITIVES.index(n)): any(p.grad is not None and p.grad.abs().sum() > 0
                                           for p in m.parameters())
             for e, ops in enumerate(supernet.cells[2].edges) for n, m in ops.items()
             if any(True for _ in m.parameters())}
    assert {pair for pair, moved in grads.items() if moved} == {
        pair for pair in derived_pairs[1] if pair in grads}


# ---- latency -----------------------------------------------------------------------------
def test_latency_term_reaches_the_architecture_parameters(data):
    supernet = supernet_of()
    space = supernet.space
    rng = np.random.default_rng(0)
    predictor = LinearPredictor(space, rng.random(space.num_options) + 0.1)
    term = LatencyTerm(predictor, budget_ms=0.5, weight=2.0)
    search = EnTranNASSearch(supernet, data, EnTranNASConfig(**TINY), latency=term)
    assert isinstance(search.latency, SparseLatencyTerm) and search.latency.weight == 2.0
    for level in (0.0, 1.0):
        search.level = level
        expected, loss = search.latency.loss(supernet, search.alphas)
        assert float(expected.detach()) > 0.5 and float(loss.detach()) > 0  # hinge active
        loss.backward()
        for a in search.alphas:
            assert a.grad is not None and a.grad.abs().sum() > 0
            a.grad = None
    # inside the alpha step, and recorded per epoch
    batch = (data.x_train[:16], data.y_train[:16])
    search.level = 0.5
    with_latency, _ = search.alpha_gradients(batch, batch)
    plain = EnTranNASSearch(supernet_of(), data, EnTranNASConfig(**TINY))
    plain.level = 0.5
    without, _ = plain.alpha_gradients(batch, batch)
    assert not torch.allclose(with_latency[0], without[0])
    result = entrannas_search(supernet_of(), data, latency=term, **TINY)
    for rec in result.history:
        assert rec.predicted_ms == pytest.approx(float(predictor.predict([rec.arch])[0]))
        assert np.isfinite(rec.expected_ms)


@pytest.mark.parametrize("op", ["sep_conv_3x3", "skip_connect"])
def test_heavy_latency_weight_avoids_the_charged_op(data, op):
    supernet = supernet_of()
    predictor = charging(supernet.space, op)
    result = entrannas_search(supernet, data, **TINY,
                              latency=LatencyTerm(predictor, budget_ms=0.5, weight=50.0))
    assert op not in supernet.space.to_string(result.arch)
    first, last = result.history[0], result.history[-1]
    assert last.predicted_ms == pytest.approx(1.0)  # the base cost: no charged op left
    assert last.expected_ms < first.expected_ms


def test_bad_settings_are_refused(data):
    with pytest.raises(InvalidOption, match="GDAS"):
        EnTranNASConfig(method="gdas")
    with pytest.raises(InvalidOption, match="sparse_warmup"):
        EnTranNASConfig(sparse_warmup=1.5)
    with pytest.raises(InvalidOption, match="engines"):
        EnTranNASConfig(engines="0")
    with pytest.raises(InvalidOption, match="unknown EnTranNAS search setting"):
        entrannas_search(supernet_of(), data, warmup=0.5)
    with pytest.raises(InvalidOption, match="no reduce cell"):
        entrannas_search(supernet_of(), data, engines=[0], **TINY)
    torch.manual_seed(0)
    with pytest.raises(NoSupernet, match="darts cell space"):
        entrannas_search(make_supernet(NB201Space(C=4, N=1), 10, 8), data, **TINY)
    assert EnTranNASConfig(engines=[2, 0, 1, 0]).engines == (0, 1, 2)
