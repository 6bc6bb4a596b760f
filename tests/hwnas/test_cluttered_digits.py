"""The generated ``cluttered-digits`` dataset: deterministic, balanced, split by source,
loadable through ``datasets.load`` like any built-in, with its preprocessing recorded."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.evaluators import cluttered_digits as cd
from hwnas.evaluators import datasets
from spaces.errors import HwnasError


@pytest.fixture(scope="module")
def generated():
    return cd.generate()


def test_generation_is_deterministic_and_pinned(generated):
    images, y, sources = generated
    assert images.shape == (4 * 1797, 32, 32) and images.dtype == np.uint8
    assert not images.flags.writeable  # the per-process cache cannot be edited by a caller
    cd._generate.cache_clear()
    again, y2, s2 = cd.generate()
    assert again is not images  # really generated a second time
    assert again.tobytes() == images.tobytes()
    assert np.array_equal(y, y2) and np.array_equal(sources, s2)
    # Fixed statistics of the default dataset (any change to the generator moves them).
    pixels = images.astype(np.float64)
    assert pixels.mean() == pytest.approx(65.9466, abs=0.01)
    assert pixels.std() == pytest.approx(57.7354, abs=0.01)
    assert pixels[:16].mean() == pytest.approx(68.9421, abs=0.01)
    assert pixels[-16:].mean() == pytest.approx(73.1563, abs=0.01)
    assert np.array_equal(sources, np.repeat(np.arange(1797), 4))


def test_classes_are_balanced(generated):
    _, y, _ = generated
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10 and counts.sum() == 4 * 1797
    assert counts.min() >= 0.09 * counts.sum() and counts.max() <= 0.11 * counts.sum()


@pytest.mark.parametrize("seed, max_samples", [(0, None), (1, None), (0, 300), (3, 1000)])
def test_no_source_in_both_train_and_val(generated, seed, max_samples):
    _, y, sources = generated
    tr, va = cd.split_by_source(y, sources, 0.2, max_samples, seed)
    assert not set(sources[tr]) & set(sources[va])
    assert not set(tr) & set(va)
    if max_samples is None:
        assert len(tr) + len(va) == len(y)
        assert len(va) == 4 * len(set(sources[va]))  # every copy of a val source is in val
    else:
        assert len(tr) + len(va) == max_samples and len(va) == max_samples // 5
    assert set(np.unique(y[va])) == set(range(10))  # stratified: every class validated


@pytest.mark.parametrize("size, channels", [(16, 3), (32, 1)])
def test_load_through_the_normal_entry_point(size, channels):
    data = datasets.load("cluttered-digits", size, channels, max_samples=500, seed=0)
    assert data.name == "cluttered-digits" and data.num_classes == 10
    assert data.x_train.shape[1:] == (channels, size, size)
    assert data.x_val.shape[1:] == (channels, size, size)
    assert len(data.y_train) + len(data.y_val) == 500 and len(data.y_val) == 100
    assert data.class_names == tuple(str(i) for i in range(10))
    assert abs(float(data.x_train.mean())) < 1e-4  # normalised on the training split
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.long
    pre = data.preprocessing
    assert pre is not None
    assert pre.source_size == (32, 32) and pre.source_channels == 1
    assert pre.source_layout == "HW" and pre.scale == pytest.approx(1 / 255)
    assert pre.input_size == (size, size) and pre.channels == channels
    assert pre.channel_map == ("repeat" if channels == 3 else "none")
    assert len(pre.mean) == len(pre.std) == channels
    assert pre.to_json()["source_size"] == [32, 32]
    # The same images as splitting by hand: the run's seed picks the split, not the data.
    _, y, sources = cd.generate()
    tr, va = cd.split_by_source(y, sources, 0.2, 500, 0)
    assert torch.equal(data.y_train, torch.as_tensor(y[tr])) and torch.equal(
        data.y_val, torch.as_tensor(y[va]))


def test_full_load_and_listing():
    data = datasets.load("cluttered-digits", 16, 3, seed=1)
    assert len(data.y_train) + len(data.y_val) == 4 * 1797
    assert "cluttered-digits" in datasets.BUILTIN and datasets.BUILTIN[0] == "digits"


def test_knobs_and_their_limits():
    plain, _, _ = cd.generate(level=0.0, copies=1, size=16)
    assert plain.shape == (1797, 16, 16)
    assert (plain == 0).mean() > 0.4  # level 0: no clutter, background or noise
    with pytest.raises(ValueError, match="level"):
        cd.generate(level=-1)
    with pytest.raises(ValueError, match="copies"):
        cd.generate(copies=0)
    with pytest.raises(ValueError, match="size"):
        cd.generate(size=4)
    with pytest.raises(HwnasError, match="max_samples=15"):
        datasets.load("cluttered-digits", 16, 3, max_samples=15)


def test_benchmark_kendall_tau_fallback_matches_scipy(monkeypatch):
    from scipy.stats import kendalltau

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "dataset_ranking.py"
    spec = importlib.util.spec_from_file_location("dataset_ranking", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    a = np.array([50.0, 60.0, 60.0, 70.0, 40.0, 55.0])
    b = np.array([52.0, 58.0, 61.0, 61.0, 45.0, 50.0])
    expected = float(kendalltau(a, b).statistic)
    assert bench.kendall_tau(a, b) == pytest.approx(expected)
    monkeypatch.setitem(__import__("sys").modules, "scipy.stats", None)  # no scipy
    assert bench.kendall_tau(a, b) == pytest.approx(expected)
    out = bench.summarise(np.stack([a, b], axis=1), [0, 1])
    assert out["spread"] == pytest.approx(np.ptp((a + b) / 2))
    assert out["mean_abs_seed_diff"] == pytest.approx(np.abs(a - b).mean())
