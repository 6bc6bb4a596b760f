"""Memory and time of one training step: channel masking vs multi-path vs the widest net.

For K = 2, 4, 8 channel options per layer, the same stack of conv-BN-ReLU layers
(batch, input and widest width fixed) is built three ways and given one training
step (forward, backward, SGD update) on the same batch:

(a) ``masking`` - hwnas's masked layer: one conv at the widest width, the Gumbel
    mixture ``sum_k g_k mask_k`` folded into BN's affine (``MaskedConvBN``);
(b) ``multipath`` - DARTS / FBNet style: one conv per channel option
    (c_k outputs), each zero-padded to the widest width, weighted and summed;
(c) ``widest`` - the plain widest network, no search.

Peak memory is the peak of *live tensor bytes* during the step, from PyTorch's own
profiler memory timeline (``torch.profiler.profile(profile_memory=True,
record_shapes=True, with_stack=True).export_memory_timeline``, summed over its
categories: parameters, inputs, activations, gradients, temporaries...). No CUDA
is needed and allocator caching / RSS noise does not enter. Step time is the
median of ``--repeats`` un-profiled steps (1 thread).

Also printed: the full fbnetv2 ``tiny`` supernet (6 block branches per block on
top of the masks) next to its widest standalone network, for scale.

    python benchmarks/supernet_memory.py                 # K = 2, 4, 8
    python benchmarks/supernet_memory.py --options 2 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hwnas.strategies.supernet.masked_layers import MaskedConvBN, mix_masks, prefix_masks  # noqa: E402
from hwnas.strategies.supernet.supernet import ArchParams, FBNetV2Supernet  # noqa: E402
from spaces.fbnetv2 import FBNetV2Space  # noqa: E402
from spaces.fbnetv2_blocks import ConvBNReLU  # noqa: E402


def option_widths(max_width: int, k: int) -> tuple[int, ...]:
    """K widths evenly spaced up to ``max_width`` (the widest is always an option)."""
    return tuple(int(round(max_width * (i + 1) / k)) for i in range(k))


class MaskingStack(nn.Module):
    """Layers of masked conv-BN-ReLU, each with its own channel decision."""

    def __init__(self, cin: int, width: int, k: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(MaskedConvBN(cin if i == 0 else width, width, 3) for i in range(layers))
        self.register_buffer("masks", prefix_masks(option_widths(width, k), width))
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
        for layer, g in zip(self.layers, weights):
            x = layer(x, mix_masks(g, self.masks))
        return self.head(x.mean((2, 3)))


class MultiPathStack(nn.Module):
    """Layers of K separate conv-BN-ReLU paths (c_k outputs), padded and summed."""

    def __init__(self, cin: int, width: int, k: int, layers: int) -> None:
        super().__init__()
        self.width = width
        self.layers = nn.ModuleList(
            nn.ModuleList(ConvBNReLU(cin if i == 0 else width, c, 3) for c in option_widths(width, k))
            for i in range(layers))
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
        for paths, g in zip(self.layers, weights):
            out = None
            for path, w in zip(paths, g):
                y = path(x)
                y = w * F.pad(y, (0, 0, 0, 0, 0, self.width - y.shape[1]))
                out = y if out is None else out + y
            x = out
        return self.head(x.mean((2, 3)))


class WidestStack(nn.Module):
    def __init__(self, cin: int, width: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(ConvBNReLU(cin if i == 0 else width, width, 3) for i in range(layers)))
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor, weights: list[torch.Tensor] | None = None) -> torch.Tensor:
        return self.head(self.layers(x).mean((2, 3)))


def peak_tensor_bytes(step: Callable[[], None]) -> int:
    """Peak of live tensor bytes during ``step`` (profiler memory timeline, CPU)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "deprecated in favour of torch.cuda.memory": no CUDA here
        path = Path(tmp) / "timeline.json"
        prof.export_memory_timeline(str(path), device="cpu")
        _, sizes = json.loads(path.read_text())
    return int(np.asarray(sizes, dtype=np.int64).sum(axis=1).max())


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
              weights: Callable[[], list[torch.Tensor] | None]) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x, weights()), y)
        loss.backward()
        opt.step()

    return step


def measure(step: Callable[[], None], repeats: int) -> tuple[int, float]:
    step()  # warm-up (oneDNN kernels, gradient buffers)
    peak = peak_tensor_bytes(step)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return peak, float(np.median(times))


def gumbel(alpha: list[torch.Tensor]) -> Callable[[], list[torch.Tensor]]:
    """Fresh soft Gumbel weights per step (with gradient to alpha, as in a search step)."""
    return lambda: [F.gumbel_softmax(a, tau=1.0) for a in alpha]


def stack_rows(options: list[int], batch: int, size: int, width: int, layers: int,
               repeats: int) -> list[dict]:
    torch.manual_seed(0)
    x = torch.randn(batch, 16, size, size)
    y = torch.randint(0, 10, (batch,))
    widest = measure(make_step(WidestStack(16, width, layers), x, y, lambda: None), repeats)
    rows = []
    for k in options:
        alpha = [torch.zeros(k, requires_grad=True) for _ in range(layers)]
        sample = gumbel(alpha)
        masking = measure(make_step(MaskingStack(16, width, k, layers), x, y, sample), repeats)
        multi = measure(make_step(MultiPathStack(16, width, k, layers), x, y, sample), repeats)
        rows.append({"options": k, "widest_mb": widest[0] / 1e6, "masking_mb": masking[0] / 1e6,
                     "multipath_mb": multi[0] / 1e6, "widest_s": widest[1], "masking_s": masking[1],
                     "multipath_s": multi[1]})
    return rows


def fbnetv2_row(batch: int, repeats: int) -> dict:
    """The whole tiny supernet (masks + 6 block branches + one resolution per step)."""
    torch.manual_seed(0)
    space = FBNetV2Space("tiny")
    x = torch.randn(batch, 3, 16, 16)
    y = torch.randint(0, 10, (batch,))
    supernet = FBNetV2Supernet(space)
    alpha = ArchParams(space)
    hard = [i == space.resolution_decision for i in range(len(space.decisions))]

    def weights() -> list[torch.Tensor]:
        w = alpha.sample(5.0, hard=hard)
        w[space.resolution_decision] = torch.eye(len(space.resolutions))[-1]  # 16x16, like the widest
        return w

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = supernet

        def forward(self, xx: torch.Tensor, w: list[torch.Tensor]) -> torch.Tensor:
            return self.net(xx, w, sparse=True)

    widest_arch = space.from_string("r16|c24-40-64|k5e6-k5e6-k5e6-k5e6-k5e6-k5e6")
    standalone = space.build(widest_arch)
    s = measure(make_step(Wrapped(), x, y, weights), repeats)
    w = measure(make_step(_Plain(standalone), x, y, lambda: None), repeats)
    return {"supernet_mb": s[0] / 1e6, "widest_mb": w[0] / 1e6, "supernet_s": s[1], "widest_s": w[1]}


class _Plain(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, weights: object = None) -> torch.Tensor:
        return self.net(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--options", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32, help="input height = width")
    parser.add_argument("--width", type=int, default=64, help="widest channel count")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-fbnetv2", action="store_true", help="skip the full tiny supernet row")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    print(f"one SGD step, batch {args.batch}, input 16x{args.size}x{args.size}, {args.layers} conv3x3 "
          f"layers, widest {args.width} channels; peak = live tensor bytes (profiler memory timeline)")
    rows = stack_rows(args.options, args.batch, args.size, args.width, args.layers, args.repeats)
    print(f"{'K':>3} {'widest MB':>10} {'masking MB':>11} {'multipath MB':>13} {'mask/widest':>12} "
          f"{'multi/widest':>13} | {'widest ms':>9} {'masking ms':>10} {'multi ms':>9}")
    for r in rows:
        print(f"{r['options']:>3} {r['widest_mb']:>10.1f} {r['masking_mb']:>11.1f} "
              f"{r['multipath_mb']:>13.1f} {r['masking_mb'] / r['widest_mb']:>12.2f} {r['multipath_mb'] / r['widest_mb']:>13.2f} | "
              f"{1e3 * r['widest_s']:>9.1f} {1e3 * r['masking_s']:>10.1f} {1e3 * r['multipath_s']:>9.1f}")
    worst = max(r["masking_mb"] / r["widest_mb"] for r in rows)
    grows = all(a["multipath_mb"] < b["multipath_mb"] for a, b in zip(rows, rows[1:]))
    print(f"target masking <= 1.3x widest: {'met' if worst <= 1.3 else 'MISSED'} (worst {worst:.2f}x); "
          f"multipath grows with K: {'yes' if grows else 'no'}")
    out = {"stack": rows, "args": vars(args)}
    if not args.no_fbnetv2:
        f = fbnetv2_row(args.batch, args.repeats)
        out["fbnetv2_tiny"] = f
        print(f"fbnetv2 tiny supernet (masks + 6 block branches, r16): {f['supernet_mb']:.1f} MB, "
              f"{1e3 * f['supernet_s']:.0f} ms/step vs widest standalone {f['widest_mb']:.1f} MB, "
              f"{1e3 * f['widest_s']:.0f} ms/step ({f['supernet_mb'] / f['widest_mb']:.1f}x memory)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
