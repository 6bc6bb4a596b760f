"""Non-dominated sort, crowding and hypervolume on hand-made points with known answers."""

import numpy as np
import pandas as pd
import pytest

from hwnas import pareto
from hwnas.objectives import parse_objectives

POINTS = np.array([[1, 5], [2, 3], [4, 1], [3, 4], [5, 5], [2, 3], [4, 4]], dtype=float)


def test_non_dominated_sort_known_fronts():
    fronts = [sorted(f.tolist()) for f in pareto.non_dominated_sort(POINTS)]
    # duplicates (rows 1 and 5) share the first front; (4,4) is dominated by (3,4) only
    assert fronts == [[0, 1, 2, 5], [3], [6], [4]]
    assert pareto.ranks(POINTS).tolist() == [0, 0, 0, 1, 3, 0, 2]
    assert pareto.pareto_mask(POINTS).tolist() == [True, True, True, False, False, True, False]
    assert pareto.non_dominated_sort(np.zeros((0, 2))) == []


def test_crowding_distance_known_values():
    front = np.array([[1, 5], [2, 3], [4, 1], [3, 2]], dtype=float)
    d = pareto.crowding_distance(front)
    assert np.isinf(d[0]) and np.isinf(d[2])
    # (2,3): x neighbours 1 and 3 over range 3 -> 2/3; y neighbours 2 and 5 over range 4 -> 3/4
    assert d[1] == pytest.approx(2 / 3 + 3 / 4)
    assert d[3] == pytest.approx((4 - 2) / 3 + (3 - 1) / 4)
    assert np.isinf(pareto.crowding_distance(front[:2])).all()


def test_hypervolume_2d_known_value():
    # staircase: (6-1)(6-5) + (6-2)(5-3) + (6-4)(3-1) = 5 + 8 + 4
    assert pareto.hypervolume(POINTS, [6, 6]) == pytest.approx(17.0)
    assert pareto.hypervolume(POINTS[:1], [6, 6]) == pytest.approx(5.0)
    assert pareto.hypervolume(np.array([[7.0, 1.0]]), [6, 6]) == 0.0  # beyond the reference
    assert pareto.hypervolume(np.array([[2.0], [4.0]]), [5]) == pytest.approx(3.0)


def test_hypervolume_3d_via_library_known_value():
    pts = np.array([[0, 0, 0.5], [0.5, 0.5, 0], [0.9, 0.9, 0.9]])
    # two boxes 0.5 and 0.25 overlapping in 0.125; the third point is dominated
    assert pareto.hypervolume(pts, [1, 1, 1]) == pytest.approx(0.625)
    assert pareto.hypervolume(np.array([[0, 0, 0]]), [1, 2, 3]) == pytest.approx(6.0)


def test_hypervolume_3d_unit_corners_by_inclusion_exclusion():
    # boxes from (1,0,0), (0,1,0), (0,0,1) to (2,2,2): 3 x 4, minus 3 pairwise overlaps of
    # 2 (e.g. from (1,1,0)), plus the triple overlap from (1,1,1) of 1: 12 - 6 + 1 = 7
    pts = np.eye(3)
    assert pareto.hypervolume(pts, [2, 2, 2]) == pytest.approx(7.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_hypervolume_3d_library_matches_exact_2d_sweep(seed):
    # a 2-D front lifted into 3-D with a constant third objective: the volume is the
    # exact 2-D area times the depth to the reference
    rng = np.random.default_rng(seed)
    pts = rng.random((40, 2))
    area = pareto.hypervolume(pts, [1.1, 1.1])
    lifted = np.column_stack([pts, np.full(len(pts), 0.25)])
    assert pareto.hypervolume(lifted, [1.1, 1.1, 1.0]) == pytest.approx(area * 0.75)


def test_front_of_respects_directions_and_budgets():
    objs = parse_objectives(["accuracy", "latency_ms"], ["latency_ms<=6"])
    frame = pd.DataFrame({"arch": list("abcde"), "accuracy": [90, 92, 91, 95, 80],
                          "latency_ms": [3, 5, 6, 9, 2]})
    front = pareto.front_of(frame, objs)
    assert front["arch"].tolist() == ["b", "a", "e"]  # d breaks the budget, c is dominated by b
    assert pareto.front_of(frame, objs, feasible_only=False)["arch"].tolist() == ["d", "b", "a", "e"]
