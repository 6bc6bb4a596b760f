"""Data-parallel supernet training with ``torch.distributed`` (DDP), as torchrun starts it.

``torchrun --nproc-per-node N script.py`` sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; :func:`init_from_env` turns them into a process group
(gloo on CPU, NCCL on CUDA) and :func:`train_supernet
<hwnas.oneshot.training.train_supernet>` notices the group and trains data-parallel:

* every rank draws the same architectures per step, because the sampler's generator
  is derived from the shared seed and the step (never from the rank), and the trainer
  checks that the ranks agree (one small all-reduce per step);
* each rank takes its slice of each global batch (the batch order is the same on all
  ranks), and DDP averages the gradients, so N ranks step like one process on the whole
  batch -- except that batch norm sees each rank's slice (per-rank statistics, as
  plain DDP does everywhere);
* only one path of the supernet runs per forward, so DDP must be told that some
  parameters get no gradient (``find_unused_parameters=True``);
* only rank 0 writes checkpoints.
"""

from __future__ import annotations

import datetime
import logging
import os
import zlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from spaces.core.errors import InvalidOption, Unavailable

log = logging.getLogger(__name__)

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the group (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """The device this rank trains on: its own GPU under NCCL, else the CPU."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise InvalidOption(f"environment variable {name} must be a whole number, got "
                            f"{value!r}") from None


def init_from_env(backend: str | None = None, timeout_s: float = 600.0) -> DistContext:
    """Join the process group torchrun describes in the environment (a no-op when
    WORLD_SIZE is unset or 1, or the group already exists); NCCL when CUDA is available,
    else gloo, unless ``backend`` says."""
    if dist.is_available() and dist.is_initialized():
        return context()
    if "WORLD_SIZE" not in os.environ or _env_int("WORLD_SIZE") <= 1:
        return DistContext()
    missing = [v for v in ENV_VARS if v not in os.environ]
    if missing:
        raise InvalidOption(f"distributed training needs {', '.join(missing)} in the "
                            f"environment (start it with torchrun)")
    if not dist.is_available():
        raise Unavailable("this torch build has no torch.distributed")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    local_rank = _env_int("LOCAL_RANK")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    ctx = context()
    log.info("joined %s process group as rank %d of %d", backend, ctx.rank, ctx.world_size)
    return ctx


def context() -> DistContext:
    """The current process group's view of this process (single process if none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    local = os.environ.get("LOCAL_RANK")
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=int(local) if local and local.isdigit() else 0,
                       backend=str(dist.get_backend()))


def shutdown(wait: bool = True) -> None:
    """Leave the process group (idempotent). With ``wait`` every rank first waits for the
    others: a gloo group torn down while a peer still talks to it aborts the process
    ("terminate called without an active exception", 1 run in 4 of the two-rank test before
    this barrier). ``wait=False`` after an error, when a peer may never arrive."""
    if dist.is_available() and dist.is_initialized():
        try:
            if wait:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """``module`` in DDP when ``ctx`` is distributed, else ``module`` itself. Unused
    parameters are expected (one path per forward), and buffers (BN statistics) are
    broadcast from rank 0 at every forward so the ranks' copies stay identical."""
    if not ctx.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True,
                                   broadcast_buffers=True)


def shard(indices: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (equal slices: the batch size must
    be a multiple of the world size, checked by the trainer)."""
    if not ctx.active:
        return indices
    per = len(indices) // ctx.world_size
    return indices[ctx.rank * per:(ctx.rank + 1) * per]


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` averaged over the ranks (unchanged in a single process)."""
    ctx = context()
    if not ctx.active:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / ctx.world_size


def check_same(text: str, what: str, ctx: DistContext) -> None:
    """Raise if ``text`` differs between ranks (one all-reduce of a checksum): ranks that
    trained different architectures in one step would average unrelated gradients."""
    if not ctx.active:
        return
    value = zlib.crc32(text.encode("utf-8"))
    probe = torch.tensor([value, -value], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(probe, op=dist.ReduceOp.MAX)
    if int(probe[0]) != -int(probe[1]):
        raise RuntimeError(f"rank {ctx.rank}: the ranks disagree on {what}; a sampler must "
                           f"draw only from the generator it is given")


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        dist.barrier()


__all__ = ["DistContext", "barrier", "check_same", "context", "init_from_env",
           "mean_over_ranks", "shard", "shutdown", "wrap"]
