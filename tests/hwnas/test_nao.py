"""NAO engine: shapes, constrained decoding, reconstruction, gradient direction, a tiny search."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import spaces
from hwnas.objectives import parse_objectives
from hwnas.strategies.nao import (BadOption, BudgetOutOfRange, EmptyPopulation, NAOModel,
                                  NAOStrategy, UnsupportedSpace, make_overshoot, make_score,
                                  propose)
from hwnas.strategies.nao.data import Scaler, augmented, check_space, token_matrix, tokens_to_archs
from hwnas.strategies.nao.optimise import gradient, moved_predictions, repair
from spaces import Arch
from spaces.base import Space
from spaces.errors import HwnasError, InvalidArchitecture
from spaces.nb201 import NB201Space

SPACES = ("nb201", "fbnet", "fbnetv2", "nao")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _additive_latency(space: Space, archs: list[Arch], seed: int = 0) -> np.ndarray:
    """A synthetic latency: a positive cost per (decision, option), summed."""
    table = np.random.default_rng(seed).uniform(0.1, 2.0, space.num_options)
    return np.array([table[space.tokens(a)].sum() for a in archs])


# ---- shapes ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SPACES)
def test_encoder_decoder_shapes(name):
    space = spaces.get(name)
    model = NAOModel.for_space(space, targets=2, hidden_size=16, head_hidden=8)
    tokens = token_matrix(space, space.sample_many(3, 0))
    L, V = len(space.decisions), space.num_options
    states, emb = model.encode(tokens)
    assert states.shape == (3, L, 16) and emb.shape == (3, 16)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)  # on the unit sphere
    log_probs, preds = model(tokens)
    assert log_probs.shape == (3, L, V) and preds.shape == (3, 2)
    decoded, lp = model.decode_states(states)
    assert decoded.shape == (3, L) and lp.shape == (3, L, V)


# ---- constrained decoding ----------------------------------------------------------------

@pytest.mark.parametrize("name", SPACES)
def test_decoding_any_embedding_gives_a_valid_architecture(name):
    """Property: whatever the states (random, huge, tiny), every decoded row is a member."""
    space = spaces.get(name)
    torch.manual_seed(1)
    model = NAOModel.for_space(space, targets=1, hidden_size=16, head_hidden=8)
    offsets = torch.tensor(space.option_offsets)
    sizes = torch.tensor([len(d) for d in space.decisions])
    for scale in (1e-3, 1.0, 1e3):
        states = torch.randn(64, len(space.decisions), 16) * scale
        tokens, _ = model.decode_states(states)
        assert ((tokens >= offsets) & (tokens < offsets + sizes)).all()
        for arch in tokens_to_archs(space, tokens):
            space.validate(arch)


class _NoSkipFirstEdge(NB201Space):
    """NB201 with an extra rule, to exercise re-validation and repair."""

    def _check_rules(self, arch: Arch) -> None:
        if arch.choices[0] == 1:
            raise InvalidArchitecture(self.name, "option 1 forbidden on the first edge")


def test_repair_switches_a_rejected_position_to_its_runner_up():
    space = _NoSkipFirstEdge()
    tokens = torch.tensor([1, 5, 10, 15, 20, 25])  # decision 0 takes option 1: rejected
    log_probs = torch.full((6, 30), float("-inf"))
    for i in range(6):
        log_probs[i, 5 * i:5 * i + 5] = torch.tensor([-3.0, -2.0, -4.0, -5.0, -6.0])
    log_probs[0, 1], log_probs[0, 3] = -0.1, -0.2  # decision 0: best 1, runner-up 3
    log_probs[1, 5], log_probs[1, 6] = -0.01, -5.0  # decision 1: confident
    arch = repair(space, tokens, log_probs)
    assert arch is not None and space.is_valid(arch)
    assert arch.choices[0] == 3 and arch.choices[1:] == (0, 0, 0, 0, 0)


# ---- training ----------------------------------------------------------------------------

def test_reconstruction_of_a_tiny_set_after_brief_training():
    space = spaces.get("nb201")
    archs = space.sample_many(24, 3)
    tokens = token_matrix(space, archs)
    y = np.random.default_rng(0).normal(size=(24, 1))
    torch.manual_seed(0)
    model = NAOModel.for_space(space, targets=1, hidden_size=32)
    before = (model.reconstruct(tokens) == tokens).all(dim=1).float().mean().item()
    parts = model.fit(tokens, y, epochs=80, weights=(0.5,), batch_size=24, lr=1e-2, generator=_gen())
    after = (model.reconstruct(tokens) == tokens).all(dim=1).float().mean().item()
    assert before < 0.5 and after == 1.0
    assert parts["nll"] < 0.1


def test_fit_until_exact_trains_on_only_while_reconstruction_is_short():
    space = spaces.get("fbnet")  # 22 tokens: a few epochs do not reconstruct
    archs = space.sample_many(16, 2)
    tokens, y = token_matrix(space, archs), np.zeros((16, 1))
    torch.manual_seed(0)
    model = NAOModel.for_space(space, targets=1, hidden_size=32)
    fit = dict(batch_size=16, lr=1e-2, generator=_gen())
    model.fit(tokens, y, 5, (1.0,), **fit)
    assert model.exact_share(tokens) < 0.5
    added = model.fit_until_exact(tokens, y, 10, (1.0,), exact=1.0, extra_epochs=200, **fit)
    assert 0 < added <= 200 and added % 10 == 0 and model.exact_share(tokens) == 1.0
    assert model.fit_until_exact(tokens, y, 10, (1.0,), exact=1.0, extra_epochs=200, **fit) == 0
    fresh = NAOModel.for_space(space, targets=1, hidden_size=32)
    assert fresh.fit_until_exact(tokens, y, 10, (1.0,), exact=1.0, extra_epochs=0, **fit) == 0


def test_training_is_reproducible_with_a_seeded_generator():
    space = spaces.get("fbnetv2")
    tokens = token_matrix(space, space.sample_many(12, 0))
    y = np.arange(12, dtype=float)[:, None]
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        model = NAOModel.for_space(space, targets=1, hidden_size=16)
        model.fit(tokens, y, epochs=3, weights=(1.0,), batch_size=4, generator=_gen(7))
        outs.append(model.predict(tokens))
    assert torch.equal(outs[0], outs[1])


def _latency_model(space: Space, n: int = 64):
    archs = space.sample_many(n, 4)
    ms = _additive_latency(space, archs)
    scaler = Scaler.fit(ms, log=True)
    torch.manual_seed(0)
    model = NAOModel.for_space(space, targets=1, hidden_size=32)
    model.fit(token_matrix(space, archs), scaler.transform(ms)[:, None], epochs=60,
              weights=(1.0,), batch_size=32, lr=1e-2, generator=_gen())
    return archs, ms, scaler, model


def test_gradient_step_on_a_latency_only_objective_lowers_predicted_latency():
    space = spaces.get("nb201")
    archs, ms, scaler, model = _latency_model(space)
    score = make_score(quality=None, cost=0)
    states, grad = gradient(model, token_matrix(space, archs), score)
    before = model.predict_states(states)[:, 0].detach()
    after = moved_predictions(model, states, grad, eta=0.05)[:, 0]
    assert (after < before).float().mean() > 0.95  # nearly every seed, not on average only
    # and the decoded architectures the step proposes are faster, truly
    seeds = [archs[i] for i in np.argsort(-ms)[:16]]  # the slowest
    props = propose(model, space, seeds, score, known=set(archs), eta=0.05, max_steps=30)
    assert len(props) >= 8
    true_new = _additive_latency(space, [p.arch for p in props])
    true_old = _additive_latency(space, [p.seed for p in props])
    assert true_new.mean() < true_old.mean()


def test_propose_returns_new_distinct_archs_and_rejects_no_seeds():
    space = spaces.get("nb201")
    archs, _, _, model = _latency_model(space, n=32)
    score = make_score(quality=None, cost=0)
    props = propose(model, space, archs[:10], score, known=set(archs), eta=0.05, max_steps=30,
                    per_seed=2)
    new = [p.arch for p in props]
    assert len(new) == len(set(new)) and not set(new) & set(archs)
    assert all(sum(1 for p in props if p.seed == s) <= 2 for s in archs[:10])
    with pytest.raises(EmptyPopulation):
        propose(model, space, [], score, known=set())


def test_walking_until_the_budget_is_met_goes_further_for_tighter_budgets():
    space = spaces.get("nb201")
    archs, ms, scaler, model = _latency_model(space)
    seeds = [archs[i] for i in np.argsort(-ms)[:12]]  # the slowest

    def predicted(props):
        return scaler.inverse_np(model.predict(token_matrix(space, [p.arch for p in props]))[:, 0].numpy())

    mean_pred = []
    for budget in np.quantile(ms, [0.1, 0.5]):
        score = make_score(None, 0, scaler, float(budget), weight=1.0, form="hinge")
        checks = [make_overshoot(0, scaler, float(budget))] * len(seeds)
        walked = propose(model, space, seeds, score, set(archs), eta=0.05, max_steps=40, overshoot=checks)
        first = propose(model, space, seeds, score, set(archs), eta=0.05, max_steps=40)  # NAO's rule
        assert len(walked) == len(seeds)  # a seed that cannot meet it gives the closest it met
        assert (predicted(walked) <= budget).mean() > (predicted(first) <= budget).mean()
        assert predicted(walked).mean() < predicted(first).mean()
        mean_pred.append(predicted(walked).mean())
    assert mean_pred[0] < mean_pred[1]


def test_budget_outside_the_trained_range_warns_with_the_range():
    scaler = Scaler.fit(np.array([2.0, 5.0, 9.0]), log=True)
    with pytest.warns(BudgetOutOfRange, match="2 to 9"):
        make_score(0, 1, scaler, budget=50.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_score(0, 1, scaler, budget=4.0)


def test_branch_swap_augmentation_on_the_nao_space_only():
    nao, nb = spaces.get("nao"), spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = nao.sample_many(5, 0)
    out, y = augmented(nao, archs, np.arange(5.0)[:, None], copies=2, rng=rng)
    assert len(out) == 15 and y.shape == (15, 1) and (y[5:10] == y[:5]).all()
    for a, b in zip(archs, out[5:10]):  # same network: the same canonical form
        assert nao.canonical(a) == nao.canonical(b)
    same, _ = augmented(nb, nb.sample_many(5, 0), np.zeros((5, 1)), copies=2, rng=rng)
    assert len(same) == 5


# ---- bad input ---------------------------------------------------------------------------

class _Empty(Space):
    name = "empty"

    def to_string(self, arch):
        return ""

    def from_string(self, text):
        return Arch(self.key, ())

    def _build(self, arch, num_classes, input_size):
        raise NotImplementedError


def test_bad_input_raises_specific_errors():
    with pytest.raises(UnsupportedSpace, match="token sequence"):
        check_space(_Empty())
    with pytest.raises(EmptyPopulation):
        token_matrix(spaces.get("nb201"), [])
    with pytest.raises(BadOption, match="init"):
        NAOStrategy(init=0)
    with pytest.raises(BadOption, match="form"):
        NAOStrategy(form="quadratic")
    with pytest.raises(BadOption, match="exact"):
        NAOStrategy(exact=1.5)
    assert issubclass(BadOption, HwnasError) and issubclass(UnsupportedSpace, HwnasError)


# ---- end to end ------------------------------------------------------------------------

def _tabular():
    from hwnas.evaluators.latency_sources import TableLatency
    from hwnas.evaluators.tabular import TabularEvaluator

    space = spaces.get("nb201")
    return space, TabularEvaluator(space, ["accuracy", "latency_ms"],
                                   latency=TableLatency(space, "gold_6226"))


SMALL = dict(batch_size=5, init=10, epochs=5, init_epochs=30, hidden=16, top_k=3,
             unlabeled=64)


def test_tiny_nao_search_on_the_tabular_nb201_evaluator_is_exact_and_anytime():
    space, ev = _tabular()
    objectives = parse_objectives(["accuracy", "latency_ms"])
    long = NAOStrategy(seed=3, **SMALL).run(space, ev, objectives, 25)
    again = NAOStrategy(seed=3, **SMALL).run(space, ev, objectives, 25)
    short = NAOStrategy(seed=3, **SMALL).run(space, ev, objectives, 15)
    hist = long.history
    assert len(hist) == 25 and hist["arch"].is_unique
    assert list(hist["arch"]) == list(again.history["arch"])  # fixed seed: the same search
    assert list(short.history["arch"]) == list(hist["arch"][:15])  # anytime: resume is exact
    assert hist["batch"].max() == 4  # init batch of 10, then three batches of 5
    assert long.info["options"]["init"] == 10 and len(long.front) >= 1


@pytest.mark.parametrize("names,budgets", [(["accuracy"], ["latency_ms<=8"]), (["latency_ms"], [])])
def test_single_objective_modes_search_too(names, budgets):
    """Accuracy under a latency budget (the budget is the reward's), and latency alone."""
    space, ev = _tabular()
    result = NAOStrategy(seed=1, **SMALL).run(space, ev, parse_objectives(names, budgets), 15)
    assert len(result.history) == 15 and result.history["arch"].is_unique
    assert result.info["queries"] == 15


def test_hinge_budget_step_lowers_predicted_latency_of_archs_over_budget():
    space = spaces.get("nb201")
    archs, ms, scaler, model = _latency_model(space)
    budget = float(np.quantile(ms, 0.2))
    score = make_score(quality=None, cost=0, scaler=scaler, budget=budget, weight=1.0, form="hinge")
    over = [a for a, m in zip(archs, ms) if m > 1.5 * budget]
    states, grad = gradient(model, token_matrix(space, over), score)
    before = scaler.inverse(model.predict_states(states)[:, 0].detach())
    after = scaler.inverse(moved_predictions(model, states, grad, eta=0.05)[:, 0])
    assert (after < before).float().mean() > 0.95
