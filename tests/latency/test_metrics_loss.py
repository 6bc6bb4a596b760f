"""Accuracy metrics against scipy / hand values; latency losses, values and autograd."""

import numpy as np
import pytest
import torch
from scipy import stats

from latency import metrics
from latency.loss import LossError, latency_loss
from latency.metrics import MetricError

PRED = np.array([1.0, 2.2, 2.9, 4.5, 4.0, 7.0])
TRUE = np.array([1.1, 2.0, 3.0, 4.0, 5.0, 6.0])


def test_metrics_against_hand_values_and_scipy():
    rel = np.abs(PRED - TRUE) / TRUE
    assert metrics.mape(PRED, TRUE) == pytest.approx(100 * rel.mean())
    assert metrics.rmse(PRED, TRUE) == pytest.approx(np.sqrt(np.mean((PRED - TRUE) ** 2)))
    # |rel| = 0.0909, 0.1, 0.0333, 0.125, 0.2, 0.1667
    assert metrics.within(PRED, TRUE, 0.05) == pytest.approx(1 / 6)
    assert metrics.within(PRED, TRUE, 0.10) == pytest.approx(3 / 6)  # 0.1 exactly counts
    assert metrics.spearman(PRED, TRUE) == pytest.approx(stats.spearmanr(PRED, TRUE)[0])
    assert metrics.spearman(PRED, TRUE) == pytest.approx(1 - 6 * 2 / (6 * 35))  # one swap
    assert metrics.kendall(PRED, TRUE) == pytest.approx(stats.kendalltau(PRED, TRUE)[0])
    assert metrics.kendall(PRED, TRUE) == pytest.approx((14 - 1) / 15)


def test_kendall_handles_ties_like_scipy():
    true = np.array([3, 3, 4, 5, 5, 5, 9], dtype=float)  # a phone rounding to whole ms
    pred = np.array([2.9, 3.2, 4.1, 4.8, 5.3, 5.1, 8.0])
    assert metrics.kendall(pred, true) == pytest.approx(stats.kendalltau(pred, true)[0])
    assert metrics.spearman(pred, true) == pytest.approx(stats.spearmanr(pred, true)[0])
    assert np.isnan(metrics.spearman(np.ones(4), np.arange(4.0)))


def test_summary_masks_relative_metrics_only():
    true = np.append(TRUE, 0.001)  # a disconnected NB201 cell on raspi4
    pred = np.append(PRED, 3.0)
    mask = np.append(np.ones(6, bool), False)
    got = metrics.summary(pred, true, mask)
    assert got["n"] == 7
    assert got["mape"] == pytest.approx(metrics.mape(PRED, TRUE))
    assert got["within10"] == pytest.approx(0.5)
    assert got["spearman"] == pytest.approx(stats.spearmanr(pred, true)[0])
    assert metrics.summary(pred, true)["mape"] > 1000  # unmasked: dominated by the 0.001
    with pytest.raises(MetricError, match="selects no rows"):
        metrics.summary(pred, true, np.zeros(7, bool))


@pytest.mark.parametrize("pred,true,message", [
    ([1.0, 2.0], [1.0], "2 predictions but 1 measurements"),
    ([], [], "no predictions"),
    ([1.0, np.nan], [1.0, 2.0], "finite"),
])
def test_metrics_refuse_bad_input(pred, true, message):
    with pytest.raises(MetricError, match=message):
        metrics.spearman(pred, true)
    with pytest.raises(MetricError, match="positive measured"):
        metrics.mape([1.0], [0.0])


def test_hinge_is_zero_inside_the_budget_and_linear_outside():
    lat = torch.tensor([2.0, 5.0, 7.5], requires_grad=True)
    loss = latency_loss(lat, 5.0, "hinge")
    assert loss.tolist() == pytest.approx([0.0, 0.0, 0.5])
    loss.sum().backward()
    assert lat.grad.tolist() == pytest.approx([0.0, 0.0, 1 / 5])
    squared = latency_loss(torch.tensor(7.5), 5.0, "hinge", power=2, weight=3)
    assert float(squared) == pytest.approx(3 * 0.25)


def test_mnasnet_soft_constraint_values():
    lat = torch.tensor([2.5, 5.0, 10.0])
    soft = latency_loss(lat, 5.0, "mnasnet")
    assert soft.tolist() == pytest.approx([0.5 ** 0.07, 1.0, 2.0 ** 0.07])
    hard = latency_loss(lat, 5.0, "mnasnet", alpha=0.0, beta=-1.0)
    assert hard.tolist() == pytest.approx([1.0, 1.0, 2.0])  # free inside, steep outside


def test_fbnet_form_and_its_clamp():
    lat = torch.tensor([20.0, 100.0])
    got = latency_loss(lat, None, "fbnet")
    assert got.tolist() == pytest.approx((0.2 * np.log([20.0, 100.0]) ** 0.6).tolist())
    assert got[1] > got[0]
    tiny = latency_loss(torch.tensor(0.5, requires_grad=True), None, "fbnet")
    assert torch.isfinite(tiny)  # below unit_ms: clamped, not NaN
    scaled = latency_loss(torch.tensor(0.5), None, "fbnet", unit_ms=0.01)
    assert float(scaled) == pytest.approx(0.2 * np.log(50.0) ** 0.6)


@pytest.mark.parametrize("form,params", [("hinge", {}), ("hinge", {"power": 2.0}),
                                         ("mnasnet", {}), ("fbnet", {"alpha": 0.5, "beta": 0.7})])
def test_losses_pass_gradcheck(form, params):
    lat = torch.tensor([3.0, 6.5, 9.0], dtype=torch.float64, requires_grad=True)
    budget = None if form == "fbnet" else 5.0
    assert torch.autograd.gradcheck(lambda x: latency_loss(x, budget, form, **params), (lat,))
    latency_loss(lat, budget, form, **params).sum().backward()
    assert (lat.grad[1:] > 0).all()  # above budget every form pushes latency down


def test_loss_refuses_bad_input():
    with pytest.raises(LossError, match="unknown latency loss form 'l2'"):
        latency_loss(torch.tensor(1.0), 1.0, "l2")
    with pytest.raises(LossError, match="needs a budget"):
        latency_loss(torch.tensor(1.0), None, "hinge")
    with pytest.raises(LossError, match="must be positive"):
        latency_loss(torch.tensor(1.0), 0.0, "mnasnet")
    with pytest.raises(LossError, match="unknown gamma"):
        latency_loss(torch.tensor(1.0), 1.0, "hinge", gamma=2)
