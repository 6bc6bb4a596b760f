"""Evaluators: table lookups, latency sources, the per-arch cache, real training on digits."""

import json

import numpy as np
import pytest
import torch

import spaces
from hwnas.evaluators import datasets, get, names
from hwnas.evaluators.base import coordinate_minimum
from hwnas.evaluators.cache import CacheFileError, CachedEvaluator
from hwnas.evaluators.latency_sources import DeviceLatency, PredictorLatency, TableLatency
from hwnas.evaluators.tabular import TabularEvaluator
from hwnas.evaluators.train import TrainEvaluator
from spaces import HwnasError, UnknownName
from tests.spaces.test_base import ToySpace


@pytest.fixture(scope="module")
def nb201():
    return spaces.get("nb201")


@pytest.fixture(scope="module")
def tabular(nb201):
    return TabularEvaluator(nb201, ["accuracy", "latency_ms"], latency=TableLatency(nb201, "gold_6226"))


def test_registry():
    assert names() == ["oneshot", "smash", "tabular", "train"] and get("train") is TrainEvaluator
    with pytest.raises(UnknownName, match="unknown evaluator"):
        get("oracle")


def test_tabular_reads_rows_by_benchmark_index(nb201, tabular, shared_data):
    import pandas as pd

    acc = pd.read_csv(shared_data / "nas-bench-201/nats_bench.csv")
    lat = pd.read_csv(shared_data / "help-latency/nasbench201_latency.csv")
    before = tabular.queries
    idx = [0, 1, 15624, 7777]
    got = tabular.evaluate_many([nb201.from_index(i) for i in idx])
    for i, m in zip(idx, got):
        assert m["accuracy"] == pytest.approx(acc["CIFAR10TestAccuracy200Epochs"][i])
        assert m["latency_ms"] == pytest.approx(lat.loc[lat["arch_index"] == i, "gold_6226"].item())
    assert tabular.queries == before + 4
    assert got[0]["accuracy"] == pytest.approx(85.86333, abs=1e-4)  # README sanity value
    best = tabular.best_possible()
    assert best["accuracy"] == pytest.approx(94.37333, abs=1e-4)
    assert best["latency_ms"] == pytest.approx(lat["gold_6226"].min())


def test_tabular_bad_options(nb201):
    with pytest.raises(HwnasError, match="no device 'gold_9999'"):
        TableLatency(nb201, "gold_9999")
    with pytest.raises(HwnasError, match="no NB201 accuracy for dataset 'mnist'"):
        TabularEvaluator(nb201, ["accuracy"], dataset="mnist")
    with pytest.raises(HwnasError, match="cannot report latency_ms"):
        TabularEvaluator(nb201, ["accuracy", "latency_ms"])
    with pytest.raises(HwnasError, match="nb201"):
        TabularEvaluator(ToySpace(), ["accuracy"])


class FakePredictor:
    meta = {"space": "nb201", "device": "fake"}

    def predict(self, archs):
        return np.array([1.0 + sum(a.choices) for a in archs])


class FakeProfiler:
    """Records what it was asked to time: the whole batch in one call."""

    spec = "fake:cpu"

    def __init__(self):
        self.calls = []

    def measure_many(self, modules, input_shape, batch=1):
        self.calls.append((len(modules), tuple(input_shape), batch))
        return [type("M", (), {"latency_ms": float(sum(p.numel() for p in m.parameters()))})()
                for m in modules]

    def fingerprint(self):
        return {"id": "fake", "label": "fake"}


def test_predictor_and_device_sources(nb201):
    pred = PredictorLatency(nb201, FakePredictor())
    archs = [nb201.from_index(i) for i in (3, 4, 5)]
    assert pred.latency_ms(archs).tolist() == [1.0 + sum(a.choices) for a in archs]
    assert pred.minimum() == 1.0  # coordinate descent reaches the all-zero choice
    FakePredictor.meta = {"space": "fbnet"}
    with pytest.raises(HwnasError, match="fitted on space 'fbnet'"):
        PredictorLatency(nb201, FakePredictor())
    FakePredictor.meta = {"space": "nb201"}

    toy = ToySpace()
    prof = FakeProfiler()
    live = DeviceLatency(toy, prof)
    ms = live.latency_ms([toy.arch((1, 0, 0)), toy.arch((1, 2, 1))])
    assert prof.calls == [(2, (1, 4, 4), 1)]  # one interleaved batch
    assert ms[0] < ms[1]


def test_coordinate_minimum_is_exact_for_monotone_costs():
    toy = ToySpace()
    def cost(archs):  # parameter count of the built net: grows with every decision
        return np.array([sum(p.numel() for p in toy.build(a).parameters()) for a in archs], float)

    exhaustive = min(cost(toy.sample_many(toy.size, 0)))
    assert coordinate_minimum(toy, cost, seed=3) == exhaustive


def test_cache_persists_and_skips_cached(nb201, tmp_path):
    path = tmp_path / "cache.jsonl"
    inner = TabularEvaluator(nb201, ["accuracy", "latency_ms"], latency=TableLatency(nb201, "fpga"))
    cached = CachedEvaluator(inner, path)
    archs = [nb201.from_index(i) for i in (10, 11, 12)]
    first = cached.evaluate_many(archs)
    assert cached.queries == 3 and inner.queries == 3 and len(path.read_text().splitlines()) == 3
    again = cached.evaluate_many(archs[:2] + [nb201.from_index(13)])
    assert again[:2] == first[:2] and cached.queries == 4 and cached.hits == 2
    with path.open("a") as fh:
        fh.write('{"space": "nb201", "choi')  # a line cut by a kill
    reopened = CachedEvaluator(TabularEvaluator(nb201, ["accuracy", "latency_ms"],
                                                latency=TableLatency(nb201, "fpga")), path)
    assert len(reopened) == 4
    assert reopened.evaluate_many(archs) == first and reopened.queries == 0
    entry = json.loads(path.read_text().splitlines()[0])
    assert entry["arch"] == nb201.to_string(archs[0]) and "eval_s" in entry
    # the next entry starts on its own line: the cut one stays skippable, nothing is lost
    reopened.evaluate_many([nb201.from_index(14)])
    again = CachedEvaluator(TabularEvaluator(nb201, ["accuracy", "latency_ms"],
                                             latency=TableLatency(nb201, "fpga")), path)
    assert len(again) == 5


@pytest.mark.parametrize("damage", [b'{"space": "nb201", "choi\n', b"\x00\xff\xfe garbage\n"])
def test_damaged_cache_is_one_sentence_naming_the_file(nb201, tmp_path, damage):
    path = tmp_path / "cache.jsonl"
    cached = CachedEvaluator(TabularEvaluator(nb201, ["accuracy"]), path)
    cached.evaluate_many([nb201.from_index(i) for i in (1, 2)])
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + damage + lines[1])  # damage in the middle, not a cut last line
    with pytest.raises(CacheFileError, match=r"cache.jsonl (line 2 )?is corrupt"):
        CachedEvaluator(TabularEvaluator(nb201, ["accuracy"]), path)


def test_cache_append_is_all_or_nothing_on_a_full_disk(nb201, tmp_path, monkeypatch):
    import errno

    from spaces.core import OutputError, files

    path = tmp_path / "cache.jsonl"
    cached = CachedEvaluator(TabularEvaluator(nb201, ["accuracy"]), path)
    cached.evaluate_many([nb201.from_index(1)])
    before = path.read_bytes()

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "write", full)
    with pytest.raises(OutputError, match="No space left"):
        cached.evaluate_many([nb201.from_index(2)])
    assert path.read_bytes() == before


def test_digits_split_shapes_and_no_overlap():
    data = datasets.load("digits", 12, 3, seed=0)
    assert data.x_train.shape[1:] == (3, 12, 12) and data.num_classes == 10
    assert len(data.y_train) + len(data.y_val) == 1797
    assert abs(len(data.y_val) / 1797 - 0.2) < 0.01
    assert torch.allclose(data.x_train[:, 0], data.x_train[:, 2])  # grey repeated
    assert abs(float(data.x_train.mean())) < 1e-4  # normalised on the training split
    small = datasets.load("digits", 8, 1, max_samples=300, seed=1)
    assert len(small.y_train) + len(small.y_val) == 300


def test_missing_datasets_fail_clearly(tmp_path):
    with pytest.raises(datasets.DatasetNotFound, match="--data-root"):
        datasets.load("cifar10", 32, 3)
    with pytest.raises(datasets.DatasetNotFound, match="not found under"):
        datasets.load("cifar100", 32, 3, root=tmp_path)
    with pytest.raises(datasets.DatasetNotFound, match="neither one of"):
        datasets.load(str(tmp_path / "nope"), 32, 3)


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, value in (("dark", 30), ("light", 220)):
        (tmp_path / label).mkdir()
        for i in range(10):
            pixels = np.clip(value + rng.integers(-20, 20, (10, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    data = datasets.load(str(tmp_path), 6, 3, val_fraction=0.3)
    assert data.num_classes == 2 and data.x_train.shape[1:] == (3, 6, 6)
    assert len(data.y_train) == 14 and len(data.y_val) == 6


def test_train_evaluator_learns_and_is_deterministic():
    toy = ToySpace()  # one conv + linear, 1 channel, 4x4 input: trains in well under a second
    data = datasets.load("digits", 4, 1, max_samples=600, seed=0)
    ev = TrainEvaluator(toy, ["accuracy", "params"], data, epochs=3, seed=0)
    a, b = toy.arch((1, 2, 1)), toy.arch((0, 1, 0))
    first = ev.evaluate_many([a, b])
    assert ev.evaluate(a) == first[0]  # same seed, same number
    assert first[0]["accuracy"] > 40.0  # chance is 10%
    assert first[0]["params"] == toy.cost(a, num_classes=10).params
    assert ev.best_possible()["accuracy"] == 100.0
    with pytest.raises(HwnasError, match="space takes"):
        TrainEvaluator(toy, ["accuracy"], datasets.load("digits", 8, 1, max_samples=100))
    with pytest.raises(HwnasError, match="epochs"):
        TrainEvaluator(toy, ["accuracy"], data, epochs=0)
