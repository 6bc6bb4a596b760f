"""MONAS and MnasNet rewards against their written formulas."""

import numpy as np
import pytest

from hwnas import rewards
from hwnas.objectives import parse_objectives
from spaces import HwnasError


def test_mnasnet_soft_and_hard():
    # soft: w = -0.07 on both sides of T
    assert rewards.mnasnet(0.75, 10.0, 5.0) == pytest.approx(0.75 * 2.0 ** -0.07)
    assert rewards.mnasnet(0.75, 2.5, 5.0) == pytest.approx(0.75 * 0.5 ** -0.07)
    # hard: alpha = 0 within T (no bonus for being faster), beta = -1 above
    assert rewards.mnasnet_hard(0.75, 2.5, 5.0) == pytest.approx(0.75)
    assert rewards.mnasnet_hard(0.75, 10.0, 5.0) == pytest.approx(0.375)
    np.testing.assert_allclose(rewards.mnasnet([0.5, 0.5], [5.0, 5.0], 5.0), [0.5, 0.5])
    with pytest.raises(HwnasError, match="positive"):
        rewards.mnasnet(0.5, 1.0, 0.0)


def test_monas_weighted_and_constrained():
    assert rewards.monas_weighted(0.9, 4.0, alpha=0.8, cost_scale=8.0) == pytest.approx(0.8 * 0.9 - 0.2 * 0.5)
    got = rewards.monas_constrained([0.9, 0.95, 0.99], [[4.0, 6.0, 10.0]], [5.0])
    np.testing.assert_allclose(got, [0.9, -1.0 - 0.2, -1.0 - 1.0])
    flat = rewards.monas_constrained([0.95], [[6.0]], [5.0], graded=False)
    assert flat.tolist() == [-1.0]
    with pytest.raises(HwnasError, match="alpha"):
        rewards.monas_weighted(0.9, 1.0, alpha=1.5)


def test_scalariser_from_objectives():
    objs = parse_objectives(["accuracy"], ["latency_ms<=5"])
    m = {"accuracy": np.array([90.0, 95.0]), "latency_ms": np.array([4.0, 10.0])}
    np.testing.assert_allclose(rewards.scalariser(objs)(m), [0.90, -2.0])
    np.testing.assert_allclose(rewards.scalariser(objs, "mnasnet-hard")(m), [0.90, 0.95 * 0.5])
    np.testing.assert_allclose(rewards.scalariser(objs, "mnasnet-soft")(m),
                               [0.9 * 0.8 ** -0.07, 0.95 * 2.0 ** -0.07])
    np.testing.assert_allclose(rewards.scalariser(objs, "monas-weighted", alpha=0.5)(m),
                               [0.5 * 0.9 - 0.5 * 0.8, 0.5 * 0.95 - 0.5 * 2.0])
    # a lower bound on accuracy while minimising latency
    lat_first = parse_objectives(["latency_ms"], ["accuracy>=92"])
    np.testing.assert_allclose(rewards.scalariser(lat_first)(m), [-1.0 - 2.0 / 92.0, -10.0])
    with pytest.raises(HwnasError, match="exactly one searched"):
        rewards.scalariser(parse_objectives(["accuracy", "latency_ms"]))
    with pytest.raises(HwnasError, match="latency_ms budget"):
        rewards.scalariser(parse_objectives(["accuracy"], ["macs<=1M"]), "mnasnet-soft")
