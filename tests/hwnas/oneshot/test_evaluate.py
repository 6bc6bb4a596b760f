"""Inherited-weight evaluation: BN recalibration changes the running statistics and not
the weights; an architecture's inherited accuracy equals that of its extracted network
recalibrated alike and leaves the supernet as it was; the ``oneshot`` evaluator serves
accuracy, latency and costs, memoised, and refuses a supernet of another space."""

from __future__ import annotations

import pytest
import torch

from hwnas.evaluators import get as get_evaluator
from hwnas.evaluators.cache import CachedEvaluator
from hwnas.oneshot import evaluate
from hwnas.oneshot.evaluate import (OneShotEvaluator, accuracy, calibration_batches,
                                    inherited_accuracy, recalibrate_bn)
from hwnas.oneshot.training import train_supernet
from spaces.core.errors import Incompatible
from tests.hwnas.oneshot.tiny_supernet import FakeLatency, TinySpace, TinySupernet, digits, tiny


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def trained(data) -> TinySupernet:
    supernet = tiny()
    train_supernet(supernet, data, "uniform", epochs=4, batch_size=16, lr=0.1)
    return supernet


def bn_stats(module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k}


def params(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_recalibration_changes_the_statistics_not_the_weights(trained, data):
    net = trained.extract(trained.space.arch([2, 1, 2]))
    weights, stats = params(net), bn_stats(net)
    momenta = [m.momentum for m in evaluate.batchnorms(net)]
    used = recalibrate_bn(net, calibration_batches(data.x_train, 2, 16))
    assert used == 2 and not net.training
    after = bn_stats(net)
    assert any(not torch.allclose(stats[k], after[k]) for k in stats if "mean" in k or "var" in k)
    assert all(torch.equal(weights[k], v) for k, v in params(net).items())
    assert [m.momentum for m in evaluate.batchnorms(net)] == momenta
    # cumulative average: the statistics are exactly those of the batches seen
    x = data.x_train[:32]
    recalibrate_bn(net, [x])
    stem_out = net.stem[0](x)
    assert torch.allclose(net.stem[1].running_mean, stem_out.mean(dim=(0, 2, 3)), atol=1e-5)


def test_inherited_accuracy_equals_the_extracted_network_and_leaves_no_trace(trained, data):
    arch = trained.space.arch([2, 2, 1])
    trained.set_active(trained.space.arch([0, 0, 0]))
    state = {k: v.clone() for k, v in trained.state_dict().items()}
    acc = inherited_accuracy(trained, arch, data, calib_batches=2, batch_size=16)
    assert all(torch.equal(state[k], v) for k, v in trained.state_dict().items())
    assert trained.active.choices == (0, 0, 0)

    net = trained.extract(arch)
    recalibrate_bn(net, calibration_batches(data.x_train, 2, 16))
    assert acc == pytest.approx(accuracy(net, data.x_val, data.y_val))
    assert 0.0 <= acc <= 100.0
    # the same call twice gives the same number (fixed calibration batches)
    assert inherited_accuracy(trained, arch, data, calib_batches=2, batch_size=16) == acc


def test_oneshot_evaluator_serves_memoised_metrics(trained, data, monkeypatch, tmp_path):
    assert get_evaluator("oneshot") is OneShotEvaluator
    space = trained.space
    evaluator = OneShotEvaluator(space, ["accuracy", "latency_ms", "macs", "params"], trained,
                                 data, calib_batches=2, batch_size=16, latency=FakeLatency(space))
    calls = []
    real = evaluate.inherited_accuracy
    monkeypatch.setattr(evaluate, "inherited_accuracy",
                        lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    archs = [space.arch([2, 1, 0]), space.arch([0, 0, 1])]
    rows = evaluator.evaluate_many(archs)
    assert [set(r) for r in rows] == [{"accuracy", "latency_ms", "macs", "params"}] * 2
    assert rows[0]["latency_ms"] == 4.0 and rows[0]["macs"] > rows[1]["macs"]
    assert evaluator.evaluate_many(archs[::-1]) == rows[::-1]
    assert calls == archs  # the second batch came from the memo
    assert evaluator.describe()["supernet"] == space.key
    cached = CachedEvaluator(evaluator, tmp_path / "cache.jsonl")
    assert cached.evaluate_many(archs) == rows and (tmp_path / "cache.jsonl").exists()


def test_oneshot_evaluator_refuses_another_network(trained, data):
    with pytest.raises(Incompatible, match="space"):
        OneShotEvaluator(TinySpace(C=6), ["accuracy"], trained, data)
    with pytest.raises(Incompatible, match="classes"):
        OneShotEvaluator(trained.space, ["accuracy"],
                         TinySupernet(TinySpace(), num_classes=4), data)


def test_oneshot_evaluator_from_a_checkpoint(trained, data, tmp_path):
    ckpt = tmp_path / "super.ckpt"
    supernet = tiny()
    train_supernet(supernet, data, "uniform", epochs=1, batch_size=16, checkpoint=ckpt)
    evaluator = OneShotEvaluator.from_checkpoint(
        str(ckpt), supernet.space, ["accuracy"], data,
        factory=lambda space, classes, size: TinySupernet(space, classes, size),
        calib_batches=2, batch_size=16)
    arch = supernet.space.arch([1, 2, 1])
    assert evaluator.evaluate(arch)["accuracy"] == pytest.approx(
        inherited_accuracy(supernet, arch, data, calib_batches=2, batch_size=16))
    data_elsewhere = type(data)(**{**data.__dict__, "name": "cifar10"})
    with pytest.raises(Incompatible, match="dataset"):
        OneShotEvaluator.from_checkpoint(
            str(ckpt), supernet.space, ["accuracy"], data_elsewhere,
            factory=lambda space, classes, size: TinySupernet(space, classes, size))


def test_a_label_free_checkpoint_is_scored_by_a_linear_probe(data, tmp_path):
    """Pi-NAS never trains the classifier: its checkpoint's evaluator reads the frozen
    features with a logistic regression, equal to probe_accuracy of the extracted net."""
    from hwnas.oneshot.probe import features, final_linear, probe_accuracy

    ckpt = tmp_path / "pi.ckpt"
    supernet = tiny()
    train_supernet(supernet, data, "uniform", epochs=1, batch_size=16, checkpoint=ckpt,
                   objective="pi")
    evaluator = OneShotEvaluator.from_checkpoint(
        str(ckpt), supernet.space, ["accuracy"], data,
        factory=lambda space, classes, size: TinySupernet(space, classes, size),
        calib_batches=2, batch_size=16)
    assert evaluator.protocol == "probe" and evaluator.describe()["protocol"] == "probe"
    arch = supernet.space.arch([2, 1, 2])
    expected = probe_accuracy(supernet.extract(arch), data, calib_batches=2, batch_size=16)
    assert evaluator.evaluate(arch)["accuracy"] == pytest.approx(expected)
    assert expected > 20.0  # well above chance (10 classes) on digits
    net = supernet.extract(arch)
    assert features(net, data.x_val[:5]).shape == (5, final_linear(net).in_features)
