"""Statistics of a Measurement: derived from the pooled samples, the reported one a setting."""

import math

import numpy as np
import pytest

from devices import InvalidSetting, Measurement, check_statistic, statistic_of


def _measure(rounds, statistic="p10"):
    return Measurement.from_samples(rounds, statistic, batch=2, input_shape=(3, 8, 8),
                                    warmup_iters=5, warmup_s=0.1, device="test")


def test_statistics_are_computed_from_pooled_samples():
    rng = np.random.default_rng(0)
    rounds = [list(rng.gamma(20.0, 0.1, 40)) for _ in range(5)]
    m = _measure(rounds)
    pooled = np.concatenate(rounds)
    assert m.n_samples == 200 and m.rounds == 5 and len(m.samples_ms) == 200
    assert m.median_ms == pytest.approx(np.median(pooled), rel=1e-5)
    assert m.p10_ms == pytest.approx(np.percentile(pooled, 10), rel=1e-5)
    assert m.p90_ms == pytest.approx(np.percentile(pooled, 90), rel=1e-5)
    assert m.mean_ms == pytest.approx(pooled.mean(), rel=1e-5)
    assert m.cv == pytest.approx(pooled.std(ddof=1) / pooled.mean(), rel=1e-5)
    q25, q75 = np.percentile(pooled, [25, 75])
    assert m.robust_cv == pytest.approx((q75 - q25) / 1.349 / np.median(pooled), rel=1e-5)
    assert m.min_ms <= m.p10_ms <= m.median_ms <= m.p90_ms
    assert m.statistic == "p10" and m.latency_ms == m.p10_ms
    per_round = [np.percentile(r, 10) for r in rounds]
    assert m.round_cv == pytest.approx(np.std(per_round, ddof=1) / np.mean(per_round), rel=1e-6)


def test_robust_cv_ignores_a_rare_stall_that_inflates_cv():
    rounds = [[1.0, 1.01, 0.99, 1.0] * 10, [1.0, 1.02, 0.98, 50.0] + [1.0] * 36]
    m = _measure(rounds)
    assert m.cv > 0.5
    assert m.robust_cv < 0.02


def test_reported_statistic_is_a_setting_and_can_be_recomputed():
    rounds = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    median = _measure(rounds, "median")
    assert (median.statistic, median.latency_ms) == ("median", 4.5)
    assert _measure(rounds, "min").latency_ms == 1.0
    assert _measure(rounds, "mean").latency_ms == 4.5
    assert _measure(rounds, "p25").latency_ms == pytest.approx(np.percentile(range(1, 9), 25))
    again = median.restat("p10")
    assert again.latency_ms == pytest.approx(np.percentile(range(1, 9), 10))
    assert median.latency_ms == 4.5  # restat returns a copy


@pytest.mark.parametrize("bad", ["p0", "p100", "average", "P10", ""])
def test_unknown_statistic_is_refused(bad):
    with pytest.raises(InvalidSetting, match="unknown statistic"):
        check_statistic(bad)


def test_dict_round_trip_keeps_every_field():
    m = _measure([[1.5, 2.5, 3.5]])
    data = m.to_dict()
    assert data["input_shape"] == [3, 8, 8] and data["batch"] == 2
    assert Measurement.from_dict(data) == m
    assert Measurement.from_dict({**data, "unrelated": 1}) == m


def test_empty_samples_are_refused():
    with pytest.raises(InvalidSetting):
        _measure([[]])
    assert math.isnan(statistic_of([], "median"))
