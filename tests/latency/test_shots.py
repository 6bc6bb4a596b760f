"""choose_shots: a D-optimal design over the reference devices' predictions, its
bookkeeping (pool, already measured, determinism) and bad input."""

import logging

import numpy as np
import pytest

from latency import predictors
from latency.predictors import PredictorError
from latency.shots import choose_shots, reference_features
from spaces import Arch
from tests.latency.test_predictors import GridSpace, additive_costs, additive_latency, all_archs


@pytest.fixture(scope="module")
def refs(grid):
    """Three reference 'devices' with known additive latencies, and their truth."""
    archs = all_archs(grid)
    out, truth = {}, {}
    for i, name in enumerate(("a@b1", "b@b1", "c@b1")):
        ms = additive_latency(grid, archs, *additive_costs(grid, 11 + i))
        out[name] = predictors.create("lut", grid, target="linear").fit(archs, ms)
        truth[name] = ms
    return out, truth


def information(refs, archs, pool, ridge=0.1):
    """log det(ridge I + X^T X) of the design, features standardised over the pool."""
    z, p = reference_features(refs, archs), reference_features(refs, pool)
    x = np.c_[np.ones(len(archs)), (z - p.mean(0)) / (p.std(0) + 1e-9)]
    return np.linalg.slogdet(ridge * np.eye(x.shape[1]) + x.T @ x)[1]


def test_shots_are_distinct_members_of_the_pool_and_deterministic(grid, refs):
    pool = grid.sample_many(300, 1)
    shots = choose_shots(grid, refs[0], 10, pool)
    assert len(shots) == len(set(shots)) == 10 and set(shots) <= set(pool)
    assert choose_shots(grid, refs[0], 10, [grid.to_string(a) for a in pool]) == shots
    assert choose_shots(grid, refs[0], 10, seed=4) == choose_shots(grid, refs[0], 10, seed=4)


def test_design_holds_more_information_than_random_picks(grid, refs):
    pool = grid.sample_many(400, 2)
    designed = information(refs[0], choose_shots(grid, refs[0], 10, pool), pool)
    rng = np.random.default_rng(0)
    randoms = [information(refs[0], [pool[i] for i in rng.choice(len(pool), 10, replace=False)], pool)
               for _ in range(50)]
    assert designed > max(randoms)


def test_designed_shots_fit_a_new_device_better_than_random_shots(grid, refs):
    """A new device = a blend of the references, measured with 3 % noise; 10 shots each
    way, same predictor; error against the noiseless blend on every architecture never
    measured, 8 seeds."""
    references, truth = refs
    archs = all_archs(grid)
    noise = np.exp(np.random.default_rng(5).normal(0, 0.03, len(archs)))
    blend = truth["a@b1"] ** 0.5 * truth["b@b1"] ** 0.3 * truth["c@b1"] ** 0.2
    new = blend * noise
    index = {a: i for i, a in enumerate(archs)}

    def error(shots):
        rows = [index[a] for a in shots]
        pred = predictors.create("transfer", grid, references=references).fit(shots, new[rows])
        rest = np.setdiff1d(np.arange(len(archs)), rows)
        return float(np.mean(np.abs(np.log(pred.predict([archs[i] for i in rest]) / blend[rest]))))

    designed = [error(choose_shots(grid, references, 10, seed=s)) for s in range(8)]
    rng = np.random.default_rng(1)
    random = [error([archs[i] for i in rng.choice(len(archs), 10, replace=False)]) for _ in range(8)]
    assert np.mean(designed) < 0.7 * np.mean(random)  # measured: 0.0087 vs 0.0180


def test_design_continues_from_what_is_measured(grid, refs):
    pool = grid.sample_many(300, 3)
    ten = choose_shots(grid, refs[0], 10, pool)
    more = choose_shots(grid, refs[0], 5, pool, measured=ten[:5])
    assert more == ten[5:]  # greedy: the same design, resumed
    assert not set(choose_shots(grid, refs[0], 4, pool, measured=ten)) & set(ten)


def test_a_transfer_predictor_can_stand_for_its_references(grid, refs):
    tr = predictors.create("transfer", grid, references=refs[0])
    pool = grid.sample_many(100, 0)
    assert choose_shots(grid, tr, 5, pool) == choose_shots(grid, refs[0], 5, pool)


def test_small_pool_gives_what_it_has_with_a_warning(grid, refs, caplog):
    pool = grid.sample_many(6, 0)
    with caplog.at_level(logging.WARNING, logger="latency.shots"):
        shots = choose_shots(grid, refs[0], 10, pool, measured=pool[:2])
    assert len(shots) == 4 and set(shots) == set(pool[2:]) and "only 4 candidate" in caplog.text


def test_bad_input_is_one_sentence(grid, refs):
    pool = grid.sample_many(20, 0)
    with pytest.raises(PredictorError, match="at least 1"):
        choose_shots(grid, refs[0], 0, pool)
    with pytest.raises(PredictorError, match="needs reference predictors"):
        choose_shots(grid, {}, 3, pool)
    with pytest.raises(PredictorError, match="pool is empty or already measured"):
        choose_shots(grid, refs[0], 3, pool, measured=pool)
    other = GridSpace(3, 2, name="grid32")
    ref = predictors.create("lut", other).fit(all_archs(other), np.arange(1.0, 9.0))
    with pytest.raises(PredictorError, match="space grid32"):
        choose_shots(grid, {"x": ref}, 3, pool)
    with pytest.raises(Exception, match="grid64"):
        choose_shots(grid, refs[0], 3, [Arch("grid64", (9,) * 6)])
