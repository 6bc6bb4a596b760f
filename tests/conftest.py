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


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 256 KiB tmpfs (root and mount allowed), else skip."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                              capture_output=True)
    except OSError as error:
        pytest.skip(f"no mount command here ({error})")
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here: " + done.stderr.decode().strip())
    yield mount
    subprocess.run(["umount", str(mount)], check=False)
