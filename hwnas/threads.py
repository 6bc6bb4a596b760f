"""How many CPU threads torch computes with, set for a block and restored after.

Latency is timed with one thread (a measurement must not depend on how busy the other
cores are), but training and evaluating with weights is throughput work: the one-shot
engine trains its supernet, evaluates inherited accuracy and fine-tunes with every core
the process may use (1.5x faster per step with 2 threads than 1 on the 2-core CI
machine). Results are reproducible for one thread count; a different count may change
the last bits of a float sum.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` inside the block."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


__all__ = ["available_cores", "torch_threads"]
