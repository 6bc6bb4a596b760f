"""Thread counts are set for a block and restored after it, even when the block fails."""

from __future__ import annotations

import pytest
import torch

from hwnas.threads import available_cores, torch_threads


def test_threads_are_set_inside_and_restored_after():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    assert available_cores() >= 1
