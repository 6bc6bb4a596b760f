"""A tiny hand-made space and its one-shot supernet, for testing samplers, training and
evaluation without the per-space supernets; also the child process of the kill/resume
and DDP tests (``python -m tests.hwnas.oneshot.tiny_supernet ...``).

The space: a stem, ``layers`` cells each choosing ``skip``, ``conv1x1`` or ``conv3x3``
(MACs grow in that order), global pooling and a linear head; 8x8 grey images.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from hwnas.evaluators.latency_sources import LatencySource

from hwnas.oneshot.base import OneShotSupernet
from spaces import Arch, Decision, Space
from spaces.base import IndexStrings

OPS = ("skip", "conv1x1", "conv3x3")


class TinySpace(IndexStrings, Space):
    name = "tiny_oneshot"
    default_input_size = 8
    default_num_classes = 10
    in_channels = 1

    def __init__(self, C: int = 4, layers: int = 3, bn: bool = True) -> None:
        self.C, self.layers, self.bn = C, layers, bn
        self.decisions = tuple(Decision(f"layer{i}", OPS) for i in range(layers))

    @property
    def key(self) -> str:
        return f"{self.name}(C={self.C},layers={self.layers},bn={self.bn})"

    def _build(self, arch: Arch, num_classes: int, input_size: int) -> nn.Module:
        return TinyNet(self, [make_op(OPS[c], self.C, self.bn) for c in arch.choices], num_classes)


def conv_block(c: int, k: int, bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c, c, k, padding=k // 2, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(c))
    return nn.Sequential(*layers, nn.ReLU())


def make_op(op: str, c: int, bn: bool) -> nn.Module:
    if op == "skip":
        return nn.Identity()
    return conv_block(c, 1 if op == "conv1x1" else 3, bn)


class TinyNet(nn.Module):
    def __init__(self, space: TinySpace, ops: Sequence[nn.Module], num_classes: int) -> None:
        super().__init__()
        self.stem = conv_block_in(space.in_channels, space.C, space.bn)
        self.layers = nn.ModuleList(ops)
        self.head = nn.Linear(space.C, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for op in self.layers:
            x = op(x)
        return self.head(x.mean(dim=(2, 3)))


def conv_block_in(cin: int, c: int, bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, c, 3, padding=1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(c))
    return nn.Sequential(*layers, nn.ReLU())


class TinySupernet(OneShotSupernet):
    """Every option of every layer held side by side; the active ones' outputs summed."""

    supports_paths = True

    def __init__(self, space: TinySpace, num_classes: int = 10, input_size: int = 8) -> None:
        super().__init__(space, num_classes, input_size)
        self.stem = conv_block_in(space.in_channels, space.C, space.bn)
        self.choices = nn.ModuleList(
            nn.ModuleList(make_op(op, space.C, space.bn) for op in OPS) for _ in space.decisions)
        self.head = nn.Linear(space.C, num_classes)
        self._keep: tuple[tuple[int, ...], ...] | None = None

    def _on_active(self, arch: Arch) -> None:
        self._keep = tuple((c,) for c in arch.choices)

    def set_active_paths(self, keep: Sequence[Sequence[int]]) -> None:
        self._keep = tuple(tuple(int(j) for j in k) for k in keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._keep is None:
            self.active  # raises the one-sentence error
        x = self.stem(x)
        for options, keep in zip(self.choices, self._keep or ()):
            outs = [options[j](x) for j in keep]
            x = outs[0] if len(outs) == 1 else torch.stack(outs).sum(0)
        return self.head(x.mean(dim=(2, 3)))

    def extract(self, arch: Arch) -> nn.Module:
        net = self.space.build(arch, self.num_classes, self.input_size)
        net.stem.load_state_dict(self.stem.state_dict())
        for i, c in enumerate(arch.choices):
            net.layers[i].load_state_dict(self.choices[i][c].state_dict())
        net.head.load_state_dict(self.head.state_dict())
        return net


def tiny(C: int = 4, layers: int = 3, bn: bool = True, seed: int = 0) -> TinySupernet:
    torch.manual_seed(seed)
    return TinySupernet(TinySpace(C, layers, bn))


def digits(samples: int = 80):
    """64 training and 16 validation digits at 8x8, one grey channel."""
    from hwnas.evaluators import datasets

    return datasets.load("digits", 8, 1, max_samples=samples)


def save_data(data, path: str | Path) -> None:
    """The split's tensors in a file, so a child process need not import scikit-learn."""
    torch.save({"name": data.name, "x_train": data.x_train, "y_train": data.y_train,
                "x_val": data.x_val, "y_val": data.y_val, "num_classes": data.num_classes}, path)


def child_data(path: str | None):
    from hwnas.evaluators.datasets import DataSplit

    return digits() if path is None else DataSplit(**torch.load(path, weights_only=True))


class FakeLatency(LatencySource):
    """A latency source for tests: 1 ms plus the sum of the option indices (cheap)."""

    def latency_ms(self, archs):
        return np.asarray([1.0 + sum(a.choices) for a in archs])

    def describe(self):
        return {"kind": "fake"}


# -- child processes ------------------------------------------------------------------------
def _train_child(args: argparse.Namespace) -> None:
    """Train (or resume) with a step log; SIGKILL itself right after checkpoint
    ``--kill-after`` is written, as a crash would."""
    from hwnas.oneshot.training import train_supernet
    from spaces.core import atomic_append

    torch.set_num_threads(1)
    def on_step(step, plan, losses) -> None:
        if args.log:
            atomic_append(args.log, f"{step}\n")

    def on_checkpoint(done: int, path: Path) -> None:
        if args.kill_after is not None and done == args.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    supernet = tiny(bn=True, seed=args.seed)
    train_supernet(supernet, child_data(args.data), args.sampler, epochs=args.epochs,
                   batch_size=args.batch_size, seed=args.seed, checkpoint=args.checkpoint,
                   resume=args.resume, every_steps=args.every, on_step=on_step,
                   on_checkpoint=on_checkpoint, sampler_options=args.sampler_options)
    torch.save(supernet.state_dict(), args.out)


def _ddp_child(args: argparse.Namespace) -> None:
    """One rank of a torchrun-style group (env vars set by the parent): data-parallel
    training; rank r saves its weights to ``{out}.{r}`` and marks every checkpoint it
    writes in ``{out}.wrote.{r}``."""
    from hwnas.oneshot import distributed
    from hwnas.oneshot.training import train_supernet

    torch.set_num_threads(1)
    ctx = distributed.init_from_env(backend="gloo")
    try:
        supernet = tiny(bn=False, seed=args.seed)
        mark = Path(f"{args.out}.wrote.{ctx.rank}")
        train_supernet(supernet, child_data(args.data), args.sampler, epochs=args.epochs,
                       batch_size=args.batch_size, seed=args.seed, checkpoint=args.checkpoint,
                       on_checkpoint=lambda done, path: mark.write_text(f"{done}\n"))
        torch.save(supernet.state_dict(), f"{args.out}.{ctx.rank}")
        print(json.dumps({"rank": ctx.rank, "world": ctx.world_size}))
    except BaseException:
        distributed.shutdown(wait=False)
        raise
    distributed.shutdown()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("train", "ddp"))
    parser.add_argument("--sampler", default="uniform")
    parser.add_argument("--sampler-options", type=json.loads, default=None,
                        help="the sampler's options as JSON (train mode)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--every", type=int)
    parser.add_argument("--kill-after", type=int)
    parser.add_argument("--log", help="append each step done to this file")
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", help="a file written by save_data (default: load digits)")
    args = parser.parse_args(argv)
    (_train_child if args.mode == "train" else _ddp_child)(args)


if __name__ == "__main__":
    main(sys.argv[1:])
