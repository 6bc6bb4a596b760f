"""Shared fixtures: the benchmark tables beside the checkout, fixed seeds."""

from pathlib import Path

import numpy as np
import pytest
import torch

from latency.shared_data import data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = data_dir()
    assert path.is_dir(), f"shared data folder {path} is missing (it lives beside the checkout)"
    return path


@pytest.fixture(autouse=True)
def _fixed_seeds():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(1)
