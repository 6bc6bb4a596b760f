"""InstaNAS core: which paths, the reward, and a controller that learns per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas.oneshot import instanas
import spaces
from spaces import Arch
from spaces.core.errors import InvalidOption


def _archs(n: int) -> list[Arch]:
    space = spaces.get("nb201")
    return [space.arch([i // 5, i % 5, 0, 0, 0, 0]) for i in range(n)]


def test_front_and_choose_paths_spread_over_latency() -> None:
    archs = _archs(8)
    ms = dict(zip(archs, [1, 2, 3, 4, 5, 6, 7, 8.0]))
    acc = dict(zip(archs, [50, 60, 55, 70, 80, 79, 85, 90.0]))  # 2 and 5 are dominated
    front = instanas.front_of(acc, ms)
    assert front == [archs[i] for i in (0, 1, 3, 4, 6, 7)]
    chosen = instanas.choose_paths(acc, ms, 3)
    assert chosen[0] == archs[0] and chosen[-1] == archs[7] and len(chosen) == 3
    assert ms[chosen[1]] in (4.0, 5.0)  # the front's architecture nearest the middle
    assert instanas.choose_paths(acc, ms, 16) == front  # fewer than asked: the whole front
    with pytest.raises(InvalidOption):
        instanas.choose_paths(acc, ms, 1)
    with pytest.raises(InvalidOption, match="at least 2"):
        instanas.choose_paths({archs[0]: 1.0}, {archs[0]: 1.0}, 2)


def test_reward_table_prefers_right_then_fast() -> None:
    correct = np.array([[True, True], [False, True]])
    config = instanas.ControllerConfig(latency_weight=0.5, wrong_penalty=1.0)
    table = instanas.reward_table(correct, [0.25, 1.0], config)
    np.testing.assert_allclose(table, [[1 - 0.125, 0.5], [-1.125, 0.5]])
    with pytest.raises(InvalidOption):
        instanas.reward_table(correct, [1.0], config)
    with pytest.raises(InvalidOption):
        instanas.ControllerConfig(latency_weight=-1).check()


def _easy_and_hard(n: int = 512, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Images whose mean brightness says whether the cheap path (0) gets them right; the
    expensive path (1) is always right."""
    g = torch.Generator().manual_seed(seed)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g) + sign.view(n, 1, 1, 1)
    correct = np.stack([sign.numpy() > 0, np.ones(n, dtype=bool)], axis=1)
    return x, correct


def test_controller_learns_which_images_the_cheap_path_gets_right() -> None:
    x, correct = _easy_and_hard()
    config = instanas.ControllerConfig(latency_weight=0.5, epochs=6, batch_size=64, lr=1e-2,
                                       seed=0)
    controller = instanas.InstanceController(1, 8, 2, width=8, low_res=4)
    history = instanas.train_controller(controller, x, instanas.reward_table(
        correct, [0.2, 1.0], config), config)
    assert history.reward[-1] > history.reward[0]
    x_val, correct_val = _easy_and_hard(256, seed=1)
    routing = instanas.route(controller, x_val, correct_val)
    assert routing.accuracy > 95.0  # hard images go to the accurate path...
    assert 0.35 < routing.usage[0] < 0.65  # ...easy ones (about half) to the cheap one
    assert routing.mean_latency([1.0, 5.0], 0.5) < 0.5 + 5.0 * 0.7
    # eval mode is deterministic: the same decision every time, in any batch size
    first = controller.decide(x_val)
    np.testing.assert_array_equal(first, controller.decide(x_val, batch_size=7))
    np.testing.assert_array_equal(first, routing.paths)


def test_best_fixed_is_the_fastest_path_as_accurate() -> None:
    assert instanas.best_fixed([70, 80, 90], [1, 2, 3], 79.0) == 1
    assert instanas.best_fixed([70, 80, 90], [1, 2, 3], 95.0) == 2  # none reaches it


def test_mixture_latency_is_the_image_blind_baseline() -> None:
    accs, ms = [60.0, 80.0, 90.0], [1.0, 3.0, 4.0]
    assert instanas.mixture_latency(accs, ms, 70.0) == pytest.approx(2.0)  # half 0, half 1
    assert instanas.mixture_latency(accs, ms, 85.0) == pytest.approx(3.5)
    assert instanas.mixture_latency(accs, ms, 80.0) == pytest.approx(3.0)
    assert instanas.mixture_latency(accs, ms, 50.0) == pytest.approx(1.0)
    assert instanas.mixture_latency(accs, ms, 95.0) is None
