"""Stage two of the one-shot engine: NSGA-II over the archive, best under a budget, and the
band search that fills the gap between two budgets sharing a network."""

from __future__ import annotations

import numpy as np

import spaces
from hwnas.oneshot.search import Archive, best_under, nsga2, search_band
from spaces import Arch

SPACE = spaces.get("nb201")  # 6 decisions of 5 options


def _latency(archs: list[Arch]) -> np.ndarray:
    """A fake predictor: latency grows with the option indices (0 .. 24 ms)."""
    return np.array([float(sum(a.choices)) for a in archs])


class CountingAccuracy:
    """A fake inherited accuracy that grows with latency, with a within-band spread; it
    counts the architectures it was asked about, to check memoisation and budgets."""

    def __init__(self) -> None:
        self.asked: list[Arch] = []

    def __call__(self, archs: list[Arch]) -> np.ndarray:
        self.asked += archs
        return np.array([2.0 * sum(a.choices) + 0.1 * sum(c * c for c in a.choices)
                         for a in archs])


def test_nsga2_spends_its_budget_once_per_architecture_and_covers_the_range() -> None:
    accuracy = CountingAccuracy()
    archive = nsga2(SPACE, accuracy, _latency, evaluations=96, population=16, seed=0)
    assert len(archive) == len(accuracy.asked) <= 96
    assert len(set(accuracy.asked)) == len(accuracy.asked)  # memoised: nobody asked twice
    ms = _latency(list(archive.accuracy))
    assert ms.min() <= 8 and ms.max() >= 16  # the archive spans the latency range
    again = nsga2(SPACE, CountingAccuracy(), _latency, evaluations=96, population=16, seed=0)
    assert list(again.accuracy) == list(archive.accuracy)  # deterministic for a seed


def test_best_under_takes_the_most_accurate_fitting_and_else_the_fastest() -> None:
    archs = [SPACE.arch([i, 0, 0, 0, 0, 0]) for i in range(5)]
    archive = Archive({a: acc for a, acc in zip(archs, [10.0, 30.0, 20.0, 50.0, 40.0])})
    predicted = dict(zip(archs, [1.0, 2.0, 3.0, 4.0, 5.0]))
    assert best_under(archive, predicted, 3.5) == archs[1]
    assert best_under(archive, predicted, 3.5, avoid={archs[1]}) == archs[2]
    assert best_under(archive, predicted, 0.5) == archs[0]  # nothing fits: the fastest
    assert best_under(archive, predicted, 9.0, avoid=set(archs)) == archs[3]  # all avoided


def test_band_search_evaluates_only_inside_the_band_and_fills_it() -> None:
    slow = SPACE.arch([4, 4, 4, 4, 4, 4])  # 24 ms
    fast = [SPACE.arch([1, 1, 1, 0, 0, 0]), SPACE.arch([2, 2, 2, 2, 0, 0])]  # 3 and 8 ms
    accuracy = CountingAccuracy()
    archive = Archive({a: float(acc) for a, acc in zip([*fast, slow], accuracy([*fast, slow]))})
    accuracy.asked.clear()
    predicted = dict(zip(archive.accuracy, _latency(list(archive.accuracy))))
    assert best_under(archive, predicted, 14.0) == fast[1]  # the 8 ms network for 14 ms
    new = search_band(SPACE, accuracy, _latency, archive, 8.0, 14.0, evaluations=12, seed=3)
    assert 0 < len(new) <= 12 and new == accuracy.asked  # only new architectures, once each
    assert all(8.0 < m <= 14.0 for m in _latency(new))  # and only inside the band
    predicted = dict(zip(archive.accuracy, _latency(list(archive.accuracy))))
    better = best_under(archive, predicted, 14.0)
    assert better in new and archive.accuracy[better] > archive.accuracy[fast[1]]
    again = Archive({a: acc for a, acc in list(archive.accuracy.items())[:3]})
    assert search_band(SPACE, CountingAccuracy(), _latency, again, 8.0, 14.0, 12, seed=3) == new


def test_band_search_stops_when_the_band_is_empty() -> None:
    archive = Archive({SPACE.arch([1, 0, 0, 0, 0, 0]): 1.0})
    accuracy = CountingAccuracy()
    # latencies are whole numbers: nothing lies in (5.2, 5.8]
    assert search_band(SPACE, accuracy, _latency, archive, 5.2, 5.8, evaluations=8) == []
    assert accuracy.asked == [] and len(archive) == 1
