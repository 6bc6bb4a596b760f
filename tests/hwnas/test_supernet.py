"""The FBNetV2 masking supernets (single-path and multi-path): exact equivalence with
standalone nets, masks, the latency loss's gradient, budgets moving alpha, and the
strategy end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hwnas.evaluators import datasets
from hwnas.evaluators.latency_sources import PredictorLatency
from hwnas.evaluators.train import TrainEvaluator
from hwnas.objectives import parse_objectives
from hwnas.strategies.supernet import (SUPERNETS, ArchParams, FBNetV2Supernet, SearchConfig,
                                       SinglePathSupernet, SupernetSearch, SupernetStrategy,
                                       make_supernet, one_hot_weights, sweep_budgets)
from spaces.errors import UnknownName
from hwnas.strategies.supernet.masked_layers import (MaskedConvBN, mix_masks, nested_kernel_masks,
                                                     prefix_masks)
from hwnas.strategies.supernet.singlepath import BlockWeights, SinglePathBlock
from hwnas.strategies.supernet.search import BadSearchSetting, fit_to_budget, temperature
from hwnas.strategies.supernet.strategy import BadBudget, MissingLatencyModel, MissingTrainingData
from hwnas.strategies.supernet.supernet import UnsupportedSpace
from latency import predictors
from spaces import Arch
from spaces.fbnetv2 import PRESETS, SKIP, FBNetV2Space, Preset, StageSpec
from spaces.fbnetv2_blocks import InvertedResidual
from spaces.nb201 import NB201Space

KINDS = tuple(SUPERNETS)


@pytest.fixture(scope="module")
def tiny() -> FBNetV2Space:
    return FBNetV2Space()


@pytest.fixture
def micro(monkeypatch) -> FBNetV2Space:
    """Two short stages at 8x8: every rule of the space, a fraction of the compute."""
    monkeypatch.setitem(PRESETS, "micro", Preset(
        input_size=8, num_classes=4, resolutions=(4, 8), stem_width=8, stem_stride=1,
        stages=(StageSpec(stride=2, widths=(4, 8), blocks=2),
                StageSpec(stride=1, widths=(8, 12, 16), blocks=2)), head_width=16))
    return FBNetV2Space("micro")


def synthetic_lut(space: FBNetV2Space, seed: int = 0):
    """A LUT predictor fitted on an exactly additive latency: bigger options cost more."""
    rng = np.random.default_rng(seed)
    cost = np.zeros(space.num_options)
    for offset, decision in zip(space.option_offsets, space.decisions):
        for o, name in enumerate(decision.options):
            if name == "skip":
                cost[offset + o] = 0.0
            elif name.startswith("k"):
                cost[offset + o] = 0.1 * int(name[1]) * int(name[3])
            else:  # a resolution or a width
                cost[offset + o] = 0.02 * int(name)
    archs = space.sample_many(80, rng=rng)
    ms = 0.2 + space.one_hot_many(archs) @ cost
    return predictors.create("lut", space, target="linear").fit(archs, ms)


def randomise_bn(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine, so an equivalence check means something."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


# ---- masks -------------------------------------------------------------------------------
def test_prefix_masks_keep_exactly_the_first_channels():
    masks = prefix_masks((2, 3, 5))
    assert masks.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    hidden = prefix_masks((2, 3), 3, scale=3)  # hidden = input width x expansion
    assert hidden.sum(1).tolist() == [6, 9] and hidden.shape == (2, 9)
    with pytest.raises(ValueError):
        prefix_masks((4, 6), 5)


@pytest.mark.parametrize("training", [True, False])
def test_masked_layer_zeroes_channels_beyond_c_k_and_mixes_like_the_issue_says(training):
    torch.manual_seed(0)
    layer = MaskedConvBN(6, 12, 3)
    randomise_bn(layer)
    layer.train(training)
    widths = (4, 8, 12)
    masks = prefix_masks(widths)
    x = torch.randn(5, 6, 7, 7)
    plain = F.relu(layer.bn(layer.conv(x))) if not training else None
    for k, c in enumerate(widths):
        out = layer(x, mix_masks(F.one_hot(torch.tensor(k), 3).float(), masks))
        assert torch.count_nonzero(out[:, c:]) == 0  # exactly zero beyond c_k
        if not training:
            torch.testing.assert_close(out[:, :c], plain[:, :c], rtol=0, atol=1e-6)
    # soft weights: the BN-folded mask equals sum_k g_k * (mask_k * features)
    g = torch.tensor([0.2, 0.5, 0.3])
    layer.eval()
    features = F.relu(layer.bn(layer.conv(x)))
    explicit = sum(g[k] * masks[k].view(1, -1, 1, 1) * features for k in range(3))
    torch.testing.assert_close(layer(x, mix_masks(g, masks)), explicit, rtol=0, atol=1e-6)


def test_nested_kernel_masks_keep_the_centre():
    masks = nested_kernel_masks((3, 5, 7))
    assert masks.shape == (3, 7, 7) and masks.sum((1, 2)).tolist() == [9, 25, 49]
    assert masks[0, 2:5, 2:5].all() and masks[0].sum() == masks[0, 2:5, 2:5].sum()
    with pytest.raises(ValueError):
        nested_kernel_masks((3, 4))


def every_block_option(space: FBNetV2Space) -> list[Arch]:
    """Archs that together use every option of every block decision (skip and each kernel /
    expansion), with widths and resolution varying, so each option meets several widths."""
    n = max(len(space.decisions[d]) for st in space.stage_layout() for d in st.block_decisions)
    archs = []
    for o in range(n):
        choices = []
        for i, decision in enumerate(space.decisions):
            block = ".block" in decision.name
            choices.append(o % len(decision) if block else (o + i) % len(decision))
        archs.append(space.arch(choices))
    return archs


# ---- exact equivalence with the standalone net -----------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_one_hot_supernet_computes_exactly_the_standalone_net(tiny, kind):
    torch.manual_seed(0)
    supernet = make_supernet(kind, tiny)
    randomise_bn(supernet)
    supernet.eval()
    x = torch.randn(4, 3, 16, 16)
    archs = [tiny.sample(s) for s in range(6)]
    skipping = tiny.from_string("r8|c8-40-24|k3e1-skip-k5e6-skip-k3e3-skip")
    widest = tiny.from_string("r16|c24-40-64|k5e6-k5e6-k5e6-k5e6-k5e6-k5e6")
    for arch in archs + [skipping, widest] + every_block_option(tiny):
        net = supernet.standalone(arch).eval()
        assert not any(isinstance(m, MaskedConvBN) for m in net.modules())
        with torch.no_grad():
            expect = net(x)
            got = supernet(x, one_hot_weights(tiny, arch))
        torch.testing.assert_close(got, expect, rtol=0, atol=1e-5, msg=tiny.to_string(arch))


@pytest.mark.parametrize("kind", KINDS)
def test_one_hot_supernet_matches_in_training_mode_too(micro, kind):
    """Batch statistics of the chosen channels do not depend on the masked ones."""
    torch.manual_seed(1)
    supernet = make_supernet(kind, micro)
    randomise_bn(supernet)
    x = torch.randn(6, 3, 8, 8)
    archs = [micro.sample(seed) for seed in range(4)] + every_block_option(micro)
    for arch in archs:
        net = supernet.standalone(arch).train()
        supernet.train()
        torch.testing.assert_close(supernet(x, one_hot_weights(micro, arch)), net(x),
                                   rtol=0, atol=1e-5, msg=micro.to_string(arch))


@pytest.mark.parametrize("training", [False, True])
def test_single_path_is_exact_with_more_kernels_and_expansions(monkeypatch, training):
    """Kernels 3/5/7 nest in 7x7, expansions 1/2/4/6 in 6x: every option, both modes."""
    space = FBNetV2Space("tiny", kernels=(3, 5, 7), expansions=(1, 2, 4, 6))
    torch.manual_seed(2)
    supernet = SinglePathSupernet(space)
    randomise_bn(supernet)
    x = torch.randn(4, 3, 16, 16)
    for arch in every_block_option(space):
        net = supernet.standalone(arch).train(training)
        supernet.train(training)
        with torch.no_grad():
            torch.testing.assert_close(supernet(x, one_hot_weights(space, arch)), net(x),
                                       rtol=0, atol=1e-5, msg=space.to_string(arch))


def test_single_path_holds_one_block_per_decision(tiny):
    """Its weights are exactly the widest standalone net's (the largest kernel and
    expansion at the widest widths), however many options a block has; multi-path's grow."""
    def params(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    for space in (tiny, FBNetV2Space("tiny", kernels=(3, 5, 7), expansions=(1, 2, 3, 4, 6))):
        widest = space.arch([max(range(len(d)), key=lambda o: (d.options[o] != SKIP, o))
                             for d in space.decisions])
        assert params(SinglePathSupernet(space)) == params(space.build(widest))
        assert params(FBNetV2Supernet(space)) > 2 * params(space.build(widest))


def test_skip_gate_is_the_exact_mixture_of_identity_and_block(micro):
    """With weight only on skip and one option, the single-path block computes
    g_skip * x + g_o * (x + body_o(x)) exactly (documented as exact for any weights)."""
    torch.manual_seed(3)
    st = micro.stage_layout()[1]
    decision = st.block_decisions[1]
    options = micro.block_choices(decision)
    block = SinglePathBlock(micro, decision, st.widths, st.max_width, 1, first=False)
    randomise_bn(block)
    block.eval()
    x = torch.randn(3, st.max_width, 4, 4)
    in_w = F.one_hot(torch.tensor(len(st.widths) - 1), len(st.widths)).float()
    for o, choice in enumerate(options[:-1]):
        weights = torch.zeros(len(options))
        weights[o], weights[options.index(None)] = 0.3, 0.7
        standalone = InvertedResidual(st.max_width, st.max_width, choice.kernel,
                                      choice.expansion, 1, residual=True).eval()
        block.copy_into(choice, standalone)
        with torch.no_grad():
            got = block(x, weights, in_w, torch.ones(st.max_width))
            expect = 0.7 * x + 0.3 * standalone(x)
        torch.testing.assert_close(got, expect, rtol=0, atol=1e-5, msg=choice.name)


def test_block_mask_weights_are_sums_of_the_option_weights(micro):
    st = micro.stage_layout()[0]
    decision = st.block_decisions[1]  # k3e1 k3e3 k3e6 k5e1 k5e3 k5e6 skip
    block = SinglePathBlock(micro, decision, (8,), st.max_width, 1, first=False)
    g = torch.tensor([0.1, 0.05, 0.15, 0.2, 0.1, 0.2, 0.2])
    w = block.mask_weights(g)
    assert float(w.gate) == pytest.approx(0.8)
    torch.testing.assert_close(w.kernel, torch.tensor([0.3, 0.5]) / 0.8)
    torch.testing.assert_close(w.expansion, torch.tensor([0.3, 0.15, 0.35]) / 0.8)


# ---- architecture parameters and the latency loss -------------------------------------
def test_flat_probs_follow_the_one_hot_layout(micro):
    alpha = ArchParams(micro)
    with torch.no_grad():
        for a in alpha.alpha:
            a[0] = 50.0
    arch = Arch(micro.key, (0,) * len(micro.decisions))
    np.testing.assert_allclose(alpha.flat_probs().detach().numpy(), micro.one_hot(arch), atol=1e-6)
    assert alpha.argmax() == arch


@pytest.mark.parametrize("form", ["hinge", "fbnet", "mnasnet"])
def test_gradients_reach_alpha_through_the_latency_loss(micro, form):
    pred = synthetic_lut(micro)
    search = SupernetSearch(SinglePathSupernet(micro), torch.randn(16, 3, 8, 8),
                            torch.randint(0, 4, (16,)), pred,
                            SearchConfig(latency_form=form, seed=0, supernet="singlepath"))
    alpha = ArchParams(micro)
    uniform = float(pred.predict_soft(alpha.flat_probs()).detach())
    expected, loss = search.latency_term(alpha, budget_ms=0.5 * uniform)
    assert float(loss.detach()) > 0
    loss.backward()
    for decision, a in zip(micro.decisions, alpha.alpha):
        assert a.grad is not None and torch.all(torch.isfinite(a.grad))
        assert float(a.grad.abs().sum()) > 0, decision.name
    # the gradient pushes probability towards the cheaper option of every decision
    res = alpha.alpha[micro.resolution_decision].grad
    assert res[0] < 0 < res[1]  # a descent step moves probability from r8 to the cheaper r4


@pytest.mark.parametrize("form", ["hinge", "fbnet", "mnasnet"])
@pytest.mark.parametrize("kind", KINDS)
def test_the_alpha_loss_reaches_every_option_through_the_supernet(micro, kind, form, monkeypatch):
    """An alpha step's loss (CE through the supernet + latency loss) gives every option of
    every decision a finite gradient well above rounding; in the single-path supernet the
    CE alone reaches every block's gate, kernel and expansion weights, element by element."""
    derived: list = []
    original = SinglePathBlock.mask_weights

    def keep(self, weights):
        w = original(self, weights)
        for t in w:
            if t is not None:
                t.retain_grad()
        derived.append((self, w))
        return w

    monkeypatch.setattr(SinglePathBlock, "mask_weights", keep)
    pred = synthetic_lut(micro)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8, generator=gen), torch.randint(0, 4, (16,), generator=gen)
    torch.manual_seed(0)
    search = SupernetSearch(make_supernet(kind, micro), x, y, pred,
                            SearchConfig(latency_form=form, seed=0, supernet=kind))
    search.supernet.train()
    alpha = ArchParams(micro)
    with torch.no_grad():  # away from uniform, so no gradient vanishes by symmetry
        for a in alpha.alpha:
            a.copy_(torch.randn(len(a), generator=gen))
    torch.manual_seed(1)
    weights = search._weights(alpha, tau=1.0, grad=True)
    ce = F.cross_entropy(search.supernet(x, weights, sparse=True), y)
    ce_grads = torch.autograd.grad(ce, list(alpha.alpha), retain_graph=True)
    for decision, g in zip(micro.decisions, ce_grads):
        if decision.name != "resolution":  # a hard (straight-through) sample there
            assert bool((g.abs() > 1e-6).all()), (decision.name, g)
    if kind == "singlepath":
        assert len(derived) == sum(st.num_blocks for st in micro.stage_layout())
        for block, w in derived:
            for name, t in zip(("gate", "kernel", "expansion"), w):
                if t is None:
                    assert name == "gate" and block.first
                    continue
                assert t.grad is not None and bool((t.grad.abs() > 1e-6).all()), (name, t.grad)
    uniform = float(pred.predict_soft(ArchParams(micro).flat_probs()).detach())
    _, lat = search.latency_term(alpha, budget_ms=0.5 * uniform)
    total = torch.autograd.grad(ce + lat, list(alpha.alpha))
    for decision, g in zip(micro.decisions, total):
        assert bool(torch.isfinite(g).all()) and bool((g.abs() > 1e-6).all()), decision.name


@pytest.mark.parametrize("training", [False, True])
def test_single_path_depthwise_output_is_the_exact_kernel_x_expansion_mixture(micro, training):
    """Where the module doc says the mixture is exact: the depthwise conv output for soft
    kernel / expansion / input-width weights equals sum_k,e w_k w_e times the output of the
    one-hot (k, e) setting (a conv is linear in its weight; masks are linear in w_e)."""
    torch.manual_seed(4)
    gen = torch.Generator().manual_seed(4)
    prev, st = micro.stage_layout()
    for first, decision in zip((True, False), st.block_decisions):
        in_widths = prev.widths if first else st.widths
        block = SinglePathBlock(micro, decision, in_widths, st.max_width, st.stride, first=first)
        randomise_bn(block)
        block.train(training)
        x = torch.randn(5, max(in_widths), 4, 4, generator=gen)
        in_w = F.softmax(torch.randn(len(in_widths), generator=gen), 0)
        kernel = F.softmax(torch.randn(len(block.kernels), generator=gen), 0)
        expansion = F.softmax(torch.randn(len(block.expansions), generator=gen), 0)
        gate = None if first else torch.tensor(0.6)
        soft, _ = block.depthwise_conv(x, BlockWeights(gate, kernel, expansion), in_w)
        mixed = torch.zeros_like(soft)
        for i in range(len(block.kernels)):
            for j in range(len(block.expansions)):
                one_k = F.one_hot(torch.tensor(i), len(block.kernels)).float()
                one_e = F.one_hot(torch.tensor(j), len(block.expansions)).float()
                y, _ = block.depthwise_conv(x, BlockWeights(gate, one_k, one_e), in_w)
                mixed += kernel[i] * expansion[j] * y
        torch.testing.assert_close(soft, mixed, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_a_tighter_budget_moves_alpha_to_cheaper_options(micro, kind):
    pred = synthetic_lut(micro)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, 8, 8, generator=gen), torch.randint(0, 4, (32,), generator=gen)
    uniform = float(pred.predict_soft(ArchParams(micro).flat_probs()).detach())
    config = SearchConfig(warmup_epochs=1, search_epochs=2, batch_size=16, alpha_lr=0.1,
                          latency_weight=5.0, seed=0, supernet=kind)
    torch.manual_seed(0)
    search = SupernetSearch(make_supernet(kind, micro), x, y, pred, config)
    search.warmup()
    loose = search.search(budget_ms=2.0 * uniform)
    tight = search.search(budget_ms=0.6 * uniform)
    assert tight.expected_ms < 0.9 * uniform
    assert tight.expected_ms < loose.expected_ms - 0.05 * uniform
    assert tight.predicted_ms <= 0.6 * uniform + 1e-9  # argmax, repaired if needed, fits
    assert len(tight.trace) == 2 and tight.trace[-1]["tau"] == pytest.approx(config.tau_end)


def test_fit_to_budget_keeps_a_fitting_argmax_and_repairs_one_that_does_not(micro):
    pred = synthetic_lut(micro)
    widest = micro.arch([len(d) - 1 if d.options[-1] != "skip" else len(d) - 2
                         for d in micro.decisions])
    probs = [list(np.full(len(d), 1.0 / len(d))) for d in micro.decisions]
    ms = float(pred.predict([widest])[0])
    assert fit_to_budget(micro, widest, probs, pred, ms + 1.0) == (widest, pytest.approx(ms))
    fixed, fixed_ms = fit_to_budget(micro, widest, probs, pred, 0.8 * ms)
    assert fixed != widest and fixed_ms <= 0.8 * ms
    assert fixed_ms == pytest.approx(float(pred.predict([fixed])[0]))


def test_temperature_anneals_from_start_to_end():
    assert temperature(0, 10, 5.0, 0.5) == pytest.approx(5.0)
    assert temperature(9, 10, 5.0, 0.5) == pytest.approx(0.5)
    steps = [temperature(s, 10, 5.0, 0.5) for s in range(10)]
    assert all(a > b for a, b in zip(steps, steps[1:]))


def test_sweep_budgets_lie_strictly_inside_the_range_geometrically():
    assert sweep_budgets(1.0, 16.0, 3) == pytest.approx([2.0, 4.0, 8.0])
    with pytest.raises(BadBudget):
        sweep_budgets(2.0, 1.0, 3)


# ---- the strategy --------------------------------------------------------------------
def _train_evaluator(space, pred, max_samples=160):
    data = datasets.load("digits", space.default_input_size, space.in_channels, max_samples=max_samples)
    latency = PredictorLatency(space, pred)
    return TrainEvaluator(space, ["accuracy", "latency_ms"], data, epochs=1, batch_size=16,
                          latency=latency)


def test_strategy_searches_each_budget_and_records_predicted_latency(micro):
    pred = synthetic_lut(micro)
    evaluator = _train_evaluator(micro, pred)
    lo, hi = 0.2, float(pred.predict([micro.arch([len(d) - 1 if d.options[-1] != "skip" else 0
                                                   for d in micro.decisions])])[0])
    strategy = SupernetStrategy(seed=0, predictor=pred, budgets=[hi, 0.5 * (lo + hi)],
                                warmup_epochs=0, search_epochs=1)
    result = strategy.run(micro, evaluator, parse_objectives(["accuracy", "latency_ms"]), n_queries=10)
    records = result.info["supernet"]
    assert [r["budget_ms"] for r in records] == [hi, 0.5 * (lo + hi)]
    assert 1 <= len(result.history) <= 2
    for r in records:
        row = result.history[result.history["arch"] == r["arch"]].iloc[0]
        assert r["predicted_ms"] <= r["budget_ms"] + 1e-9
        # the evaluator's latency here is the same predictor, so "measured" == predicted
        assert r["measured_ms"] == pytest.approx(r["predicted_ms"], rel=1e-6)
        assert row["predicted_ms"] == pytest.approx(r["predicted_ms"])
        assert 0 <= r["accuracy"] <= 100
    assert {"budget_ms", "predicted_ms", "expected_ms"} <= set(result.history.columns)


@pytest.mark.parametrize("kind", KINDS)
def test_strategy_builds_the_supernet_its_config_names(micro, kind, monkeypatch):
    pred = synthetic_lut(micro)
    data = datasets.load("digits", micro.default_input_size, micro.in_channels, max_samples=80)
    built = []
    original = SupernetSearch.__init__

    def spy(self, supernet, *args, **kwargs):
        built.append(supernet)
        original(self, supernet, *args, **kwargs)

    monkeypatch.setattr(SupernetSearch, "__init__", spy)
    strategy = SupernetStrategy(seed=0, predictor=pred, budgets=[1.0], warmup_epochs=0,
                                search_epochs=1, supernet=kind)
    outcomes = strategy.choose(micro, data, micro.default_input_size, [1.0])
    assert len(outcomes) == 1 and isinstance(built[0], SUPERNETS[kind])
    assert strategy.options()["search"]["supernet"] == kind


def test_strategy_fits_its_predictor_from_the_evaluator_latency_source_when_none_is_given(micro):
    pred = synthetic_lut(micro)
    evaluator = _train_evaluator(micro, pred)
    strategy = SupernetStrategy(seed=0, sweep=1, warmup_epochs=0, search_epochs=1)
    result = strategy.run(micro, evaluator, parse_objectives(["accuracy", "latency_ms"]), n_queries=5)
    assert strategy.predictor is pred  # a PredictorLatency's own predictor is reused
    assert len(result.info["supernet"]) == 1


def test_bad_input_is_refused_with_specific_errors(micro):
    with pytest.raises(BadBudget):
        SupernetStrategy(sweep=0)
    with pytest.raises(BadBudget):
        SupernetStrategy(budgets=[1.0, -2.0])
    with pytest.raises(BadBudget):
        SupernetStrategy(budgets=[1.0], sweep=2)
    with pytest.raises(BadSearchSetting):
        SearchConfig(sampling="sometimes")
    with pytest.raises(BadSearchSetting):
        SearchConfig(tau_start=0.5, tau_end=1.0)
    with pytest.raises(BadSearchSetting, match="supernet must be one of"):
        SearchConfig(supernet="doublepath")
    with pytest.raises(BadSearchSetting, match="supernet must be one of"):
        SupernetStrategy(supernet="doublepath")
    with pytest.raises(UnknownName, match="unknown supernet"):
        make_supernet("doublepath", micro)
    with pytest.raises(UnsupportedSpace):
        FBNetV2Supernet(NB201Space())
    with pytest.raises(UnsupportedSpace):
        SinglePathSupernet(NB201Space())

    class NoData:  # an evaluator without training data (a table, say)
        metrics = ("accuracy", "latency_ms")

        def evaluate_many(self, archs):
            return [{"accuracy": 0.0, "latency_ms": 1.0} for _ in archs]

    strategy = SupernetStrategy(predictor=synthetic_lut(micro), budgets=[1.0])
    with pytest.raises(MissingTrainingData):
        strategy.run(micro, NoData(), parse_objectives(["accuracy", "latency_ms"]), n_queries=3)
    with pytest.raises(MissingLatencyModel):
        SupernetStrategy(predictor=object())
    other = FBNetV2Space("tiny")  # a predictor of another space must not steer this one
    evaluator = _train_evaluator(micro, synthetic_lut(micro))
    strategy = SupernetStrategy(predictor=synthetic_lut(other), budgets=[1.0])
    with pytest.raises(MissingLatencyModel, match="fitted on space 'fbnetv2:tiny'"):
        strategy.run(micro, evaluator, parse_objectives(["accuracy", "latency_ms"]), n_queries=3)
