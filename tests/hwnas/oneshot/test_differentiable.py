"""DARTS and GDAS (hwnas.oneshot.differentiable) on the tiny nb201 and darts supernets:
searches run and derive valid architectures, the alphas move, the latency term reaches
every alpha and steers the derived architecture, GDAS runs one op per edge, and the
second-order gradient is DARTS' equation 7 (checked against finite differences)."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.evaluators.datasets import load
from hwnas.oneshot import make_supernet
from hwnas.oneshot.differentiable import (DifferentiableConfig, DifferentiableSearch, LatencyTerm,
                                          differentiable_search)
from spaces import InvalidOption
from spaces.darts import DartsSpace
from spaces.nb201 import NB201Space

SPACES = {"nb201": lambda: NB201Space(C=4, N=1), "darts": lambda: DartsSpace(C=4, layers=3)}
TINY = dict(epochs=1, batch_size=16)


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return load("digits", 8, 3, max_samples=64)  # 51 training, 13 validation images


def supernet_of(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return make_supernet(SPACES[name](), 10, 8)


class LinearPredictor:
    """A fake predictor linear in the encoding: ``base + probs @ coef``."""

    def __init__(self, space, coef: np.ndarray, base: float = 1.0) -> None:
        self.space, self.coef, self.base = space, torch.as_tensor(coef, dtype=torch.float64), base

    def predict_soft(self, probs: torch.Tensor) -> torch.Tensor:
        return self.base + probs @ self.coef.to(probs.dtype)

    def predict(self, archs) -> np.ndarray:
        one_hot = self.space.one_hot_many(list(archs)).astype(np.float64)
        return self.base + one_hot @ self.coef.numpy()


def charging(space, op: str, ms: float = 10.0) -> LinearPredictor:
    """A predictor that charges ``ms`` for every decision that picks ``op``."""
    coef = np.zeros(space.num_options)
    for offset, decision in zip(space.option_offsets, space.decisions):
        if op in decision.options:
            coef[offset + decision.options.index(op)] = ms
    assert coef.any()
    return LinearPredictor(space, coef)


# ---- searches run ---------------------------------------------------------------------------
@pytest.mark.parametrize("space", ["nb201", "darts"])
@pytest.mark.parametrize("method,second_order",
                         [("darts", False), ("darts", True), ("gdas", False)])
def test_search_runs_and_derives_a_valid_arch(data, space, method, second_order):
    supernet = supernet_of(space)
    initial = [a.detach().clone() for a in DifferentiableSearch(
        supernet, data, DifferentiableConfig(method=method, **TINY)).alphas]
    result = differentiable_search(supernet, data, method, second_order=second_order, **TINY)
    assert result.method == method and result.second_order is second_order
    assert supernet.space.validate(result.arch) == result.arch
    assert supernet.active == result.arch and not supernet.training
    assert len(result.history) == 1 and result.history[0].arch == result.arch
    assert np.isfinite(result.history[0].train_loss) and np.isfinite(result.history[0].val_loss)
    assert (result.history[0].tau is None) == (method == "darts")
    assert result.predicted_ms is None and result.expected_ms is None and result.seconds > 0
    for a, a0, p in zip(result.alphas, initial, result.probs):
        assert a.shape == a0.shape and not torch.equal(a, a0)  # the alphas moved
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    if space == "darts":
        assert not supernet.space.repeats_input(result.arch)  # DARTS' rule: distinct inputs


def test_search_is_seeded_and_deterministic(data):
    def run(seed):
        return differentiable_search(supernet_of("nb201"), data, "gdas", epochs=2, batch_size=16,
                                     seed=seed)

    runs = [run(3), run(3)]
    assert runs[0].arch == runs[1].arch
    for a, b in zip(runs[0].alphas, runs[1].alphas):
        assert torch.equal(a, b)
    assert [r.tau for r in runs[0].history] == [r.tau for r in runs[1].history]
    assert runs[0].history[-1].tau == pytest.approx(0.1)  # annealed from 10 to 0.1
    assert not torch.equal(run(4).alphas[0], runs[0].alphas[0])


def test_invalid_settings_are_refused(data):
    with pytest.raises(InvalidOption, match="^--second-order applies to darts only"):
        DifferentiableConfig(method="gdas", second_order=True)
    with pytest.raises(InvalidOption, match="^--second-order applies to darts only"):
        differentiable_search(supernet_of("nb201"), data, "gdas", second_order=True, **TINY)
    with pytest.raises(InvalidOption, match="unknown differentiable method"):
        DifferentiableConfig(method="enas")
    with pytest.raises(InvalidOption, match="unknown differentiable search setting"):
        differentiable_search(supernet_of("nb201"), data, "darts", epoch=1)
    with pytest.raises(InvalidOption):
        DifferentiableConfig(tau_min=2.0, tau_max=1.0)
    space = SPACES["nb201"]()
    with pytest.raises(InvalidOption, match="budget"):
        LatencyTerm(charging(space, "nor_conv_3x3"), None, form="hinge")
    with pytest.raises(InvalidOption, match="predict_soft"):
        LatencyTerm(object(), 1.0)


# ---- the latency term -----------------------------------------------------------------------
@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_latency_gradient_reaches_every_alpha(data, space):
    supernet = supernet_of(space)
    rng = np.random.default_rng(0)
    predictor = LinearPredictor(supernet.space, rng.random(supernet.space.num_options) + 0.1)
    search = DifferentiableSearch(supernet, data, DifferentiableConfig(**TINY),
                                  latency=LatencyTerm(predictor, budget_ms=0.5, weight=2.0))
    expected, loss = search.latency.loss(supernet, search.alphas)
    # over the budget: the hinge is active
    assert float(expected.detach()) > 0.5 and float(loss.detach()) > 0
    loss.backward()
    for a in search.alphas:
        assert a.grad is not None and a.grad.abs().sum() > 0


@pytest.mark.parametrize("space,op,method", [("nb201", "nor_conv_3x3", "darts"),
                                             ("darts", "sep_conv_3x3", "darts"),
                                             ("darts", "dil_conv_5x5", "gdas")])
def test_heavy_latency_weight_avoids_the_charged_op(data, space, op, method):
    supernet = supernet_of(space)
    predictor = charging(supernet.space, op)
    # alpha_lr raised from DARTS' 3e-4 so six steps leave the 1e-3 initial noise behind
    result = differentiable_search(supernet, data, method, epochs=2, batch_size=16, alpha_lr=0.01,
                                   latency=LatencyTerm(predictor, budget_ms=0.5, weight=50.0))
    genotype = str(supernet.space.to_string(result.arch))
    assert op not in genotype
    first, last = result.history[0], result.history[-1]
    assert last.predicted_ms == pytest.approx(1.0)  # the base cost: no charged op left
    assert last.expected_ms < first.expected_ms


# ---- GDAS -----------------------------------------------------------------------------------
def super_cells(supernet):
    """(position, cell, which mixture tensor it reads) of every super cell."""
    if hasattr(supernet, "cells"):  # darts: normal cells read tensor 0, reduction cells 1
        return [(k, cell, int(cell.reduction)) for k, cell in enumerate(supernet.cells)]
    cells = [layer for layer in supernet.layers if hasattr(layer, "edges")]
    return [(k, cell, 0) for k, cell in enumerate(cells)]


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_gdas_runs_one_op_per_edge(data, space):
    supernet = supernet_of(space).train()
    search = DifferentiableSearch(supernet, data, DifferentiableConfig(method="gdas", **TINY))
    calls: dict[tuple[int, int], list[str]] = {}

    def hook(k: int, e: int, name: str):
        return lambda *_: calls.setdefault((k, e), []).append(name)

    for k, cell, _ in super_cells(supernet):
        for e, ops in enumerate(cell.edges):
            for name, module in ops.items():
                module.register_forward_hook(hook(k, e, name))
    names = supernet.mixture_ops()
    for tau in (10.0, 1.0, 0.1):
        calls.clear()
        mixture = search.mixture(tau, grad=True)
        supernet.set_mixture(*mixture)
        F.cross_entropy(supernet(data.x_train[:8]), data.y_train[:8]).backward()
        for k, cell, which in super_cells(supernet):
            for e in range(len(cell.edges)):
                w = mixture[which][e]
                assert int((w != 0).sum()) == 1  # a one-hot: one op per edge ...
                chosen = names[int(w.detach().abs().argmax())]
                # ... and only that op runs (none has no module)
                assert calls.get((k, e), []) == ([] if chosen == "none" else [chosen])
        for a in search.alphas:  # straight-through: every alpha tensor learns
            assert a.grad is not None and a.grad.abs().sum() > 0
            a.grad = None


# ---- DARTS' second order --------------------------------------------------------------------
def smooth(module: nn.Module) -> nn.Module:
    """ReLU -> Softplus: without kinks, equation 8's finite difference converges to the
    Hessian-vector product (a ReLU crossing makes it jump), so equation 7 can be checked."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.Softplus(beta=4.0))
        else:
            smooth(child)
    return module


def test_second_order_gradient_is_equation_7(data):
    torch.manual_seed(0)
    supernet = smooth(make_supernet(NB201Space(C=2, N=1), 10, 8).double()).train()
    train = (data.x_train[:16].double(), data.y_train[:16])
    val = (data.x_val[:12].double(), data.y_val[:12])
    xi = 0.5
    config = DifferentiableConfig(**TINY)
    search = DifferentiableSearch(supernet, data, config)
    with torch.no_grad():
        search.alphas[0].normal_(generator=torch.Generator().manual_seed(3))
    alpha = search.alphas[0].detach().clone()
    weights = copy.deepcopy(supernet.state_dict())

    first, _ = search.alpha_gradients(train, val, second_order=False)
    second, _ = search.alpha_gradients(train, val, second_order=True, xi=xi)
    for key, value in supernet.state_dict().items():  # weights and BN statistics restored
        assert torch.equal(value, weights[key]), key
    precise = DifferentiableSearch(supernet, data, replace(config, hessian_eps=1e-4))
    with torch.no_grad():
        precise.alphas[0].copy_(alpha)
    exact_fd, _ = precise.alpha_gradients(train, val, second_order=True, xi=xi)

    params = list(supernet.parameters())

    def unrolled_val_loss(a: torch.Tensor) -> float:
        """L_val(w - xi * grad_w L_train(w, a), a), computed directly."""
        supernet.set_mixture(torch.softmax(a, dim=-1))
        grads = torch.autograd.grad(F.cross_entropy(supernet(train[0]), train[1]), params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(xi * g)
            loss = float(F.cross_entropy(supernet(val[0]), val[1]))
        supernet.load_state_dict(weights)
        return loss

    h = 1e-5
    numeric = torch.zeros_like(alpha)
    for i in range(alpha.numel()):
        d = torch.zeros(alpha.numel(), dtype=alpha.dtype)
        d[i] = h
        d = d.view_as(alpha)
        diff = unrolled_val_loss(alpha + d) - unrolled_val_loss(alpha - d)
        numeric.view(-1)[i] = diff / (2 * h)

    def rel(g: torch.Tensor) -> float:
        return float((g - numeric).norm() / numeric.norm())

    assert rel(first[0]) > 0.5            # the unrolled term matters here ...
    assert rel(second[0]) < 0.05          # ... DARTS' eps = 0.01 / ||v|| gets it to a few %
    assert rel(exact_fd[0]) < 1e-5        # and a small eps to the exact equation 7
    assert not torch.allclose(first[0], second[0])
