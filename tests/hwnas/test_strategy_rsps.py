"""RSPS (random search with parameter sharing): each query is the best of its screened
round by the shared weights, a cheap latency budget filters the screen, and an evaluator
without a supernet is refused in one sentence."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.objectives import parse_objectives
from hwnas.oneshot.evaluate import OneShotEvaluator
from hwnas.oneshot.training import train_supernet
from hwnas.strategies import rsps
from hwnas.strategies.rsps import RSPSStrategy
from spaces.errors import HwnasError
from tests.hwnas.oneshot.tiny_supernet import FakeLatency, digits, tiny


@pytest.fixture(scope="module")
def evaluator():
    data = digits()
    supernet = tiny()
    train_supernet(supernet, data, "uniform", epochs=2, batch_size=16, lr=0.1)
    return OneShotEvaluator(supernet.space, ["accuracy", "latency_ms"], supernet, data,
                            calib_batches=1, batch_size=16, latency=FakeLatency(supernet.space))


def test_each_query_is_the_best_of_its_screened_round(evaluator, monkeypatch):
    rounds = []
    real = rsps.shared_weight_accuracy

    def spy(supernet, archs, x, y):
        scores = real(supernet, archs, x, y)
        rounds.append((list(archs), scores))
        return scores

    monkeypatch.setattr(rsps, "shared_weight_accuracy", spy)
    strategy = RSPSStrategy(seed=3, screen=4)
    result = strategy.run(evaluator.space, evaluator, parse_objectives(["accuracy", "latency_ms"]), 5)
    chosen = [evaluator.space.from_string(s) for s in result.history["arch"]]
    assert len(chosen) == 5 and result.info["screened"] == sum(len(p) for p, _ in rounds) == 20
    for arch, (pool, scores) in zip(chosen, rounds):
        assert arch == pool[int(np.argmax(scores))]
    again = RSPSStrategy(seed=3, screen=4).run(evaluator.space, evaluator,
                                               parse_objectives(["accuracy", "latency_ms"]), 5)
    assert list(again.history["arch"]) == list(result.history["arch"])


def test_a_cheap_latency_budget_filters_the_screen(evaluator):
    objectives = parse_objectives(["accuracy"], ["latency_ms<=3"])
    result = RSPSStrategy(seed=0, screen=8).run(evaluator.space, evaluator, objectives, 4)
    assert (result.history["latency_ms"] <= 3).all()


def test_an_evaluator_without_a_supernet_is_refused(evaluator):
    class Plain:
        name = "tabular"
        metrics = ("accuracy",)

    with pytest.raises(HwnasError, match="--evaluator oneshot") as error:
        RSPSStrategy().run(evaluator.space, Plain(), parse_objectives(["accuracy"]), 2)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("options", [{"screen": 0}, {"screen_images": 1}, {"batch_size": 0}])
def test_bad_options_are_refused(options):
    with pytest.raises(HwnasError):
        RSPSStrategy(**options)
