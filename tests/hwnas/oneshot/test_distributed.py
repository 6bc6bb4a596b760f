"""Data-parallel supernet training: two gloo processes started as torchrun starts them
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) hold identical weights after training,
equal to one process training on the whole batches; only rank 0 writes checkpoints."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hwnas.oneshot import distributed
from hwnas.oneshot.checkpoint import read_meta
from hwnas.oneshot.training import train_supernet
from hwnas.threads import torch_threads
from spaces.core.errors import InvalidOption
from tests.hwnas.oneshot.tiny_supernet import digits, save_data, tiny

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks(world: int, args: list[str]) -> list[subprocess.CompletedProcess]:
    port = str(free_port())
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1",
               "CUDA_VISIBLE_DEVICES": ""}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.hwnas.oneshot.tiny_supernet", "ddp", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


@pytest.mark.parametrize("sampler", ["sandwich"])
def test_two_gloo_ranks_step_like_one_process_on_the_whole_batch(tmp_path, sampler):
    out, ckpt, data = tmp_path / "weights", tmp_path / "super.ckpt", tmp_path / "data.pt"
    save_data(digits(), data)
    # sandwich: several forward/backward passes per step, each using other parameters, so
    # DDP's unused-parameter handling and the no_sync accumulation are both exercised
    results = run_ranks(2, ["--sampler", sampler, "--epochs", "1", "--batch-size", "16",
                            "--checkpoint", str(ckpt), "--out", str(out), "--data", str(data)])
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    rank0 = torch.load(f"{out}.0", weights_only=True)
    rank1 = torch.load(f"{out}.1", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # the ranks never drift

    single = tiny(bn=False, seed=0)
    before = {k: v.clone() for k, v in single.state_dict().items()}
    with torch_threads(1):  # the ranks' thread count: float sums in the same order
        train_supernet(single, digits(), sampler, epochs=1, batch_size=16, seed=0)
    for k, v in single.state_dict().items():
        assert torch.allclose(rank0[k], v, atol=1e-5), k
    assert any(not torch.equal(before[k], v) for k, v in rank0.items())  # it did train

    meta = read_meta(ckpt)
    assert meta["world_size"] == 2 and meta["step"] == 4
    marks = sorted(p.name for p in tmp_path.iterdir() if ".wrote." in p.name)
    assert marks == ["weights.wrote.0"]  # only rank 0 wrote checkpoints


def test_single_process_context_and_sharding(monkeypatch):
    for var in distributed.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    ctx = distributed.init_from_env()
    assert not ctx.active and ctx.is_main and ctx.world_size == 1
    idx = torch.arange(12)
    assert torch.equal(distributed.shard(idx, ctx), idx)
    second = distributed.DistContext(rank=1, world_size=3)
    assert distributed.shard(idx, second).tolist() == [4, 5, 6, 7]
    assert distributed.wrap(torch.nn.Linear(2, 2), ctx).__class__ is torch.nn.Linear
    losses = torch.tensor([1.0, 2.0])
    assert torch.equal(distributed.mean_over_ranks(losses), losses)


def test_incomplete_torchrun_environment_is_refused(monkeypatch):
    for var in distributed.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InvalidOption, match="MASTER_ADDR"):
        distributed.init_from_env()
