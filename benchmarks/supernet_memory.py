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

Then the whole fbnetv2 supernet, both kinds, next to the widest standalone
network of its space (largest kernel and expansion at the widest widths, the
supernet's resolution), one training step each with soft Gumbel block / width
weights that carry a gradient to alpha (as an alpha step does) and one
resolution (as the search's hard resolution sample):

* ``singlepath`` - one masked block per block decision (expansion / kernel masks,
  skip gate; ``hwnas.strategies.supernet.singlepath``);
* ``multipath`` - every block option its own masked branch (``FBNetV2Supernet``);

for the ``tiny`` preset (batch ``--batch``, r16) and a larger one (``--large``,
default ``mobile`` at r128, batch ``--large-batch``), and for the tiny preset as the
number of kernel x expansion options per block grows (1 to 18 combos, all with
the same largest kernel 5 and expansion 6, so the widest network stays the same).
Each group's steps are timed interleaved in ``--repeats`` rounds (a shared CPU's
speed drifts; the median per step is reported), so ratios come from one run side
by side. The last line is the whole single-path tiny supernet against its widest
network: ``... (N.Nx memory)``.

    python benchmarks/supernet_memory.py                 # K = 2, 4, 8, both presets, growth
    python benchmarks/supernet_memory.py --options 2 4 --repeats 3 --no-large
"""

from __future__ import annotations

import argparse
import json
import os
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
from hwnas.strategies.supernet.kinds import SUPERNETS, make_supernet  # noqa: E402
from hwnas.strategies.supernet.supernet import ArchParams  # noqa: E402
from spaces import Arch  # noqa: E402
from spaces.fbnetv2 import SKIP, FBNetV2Space  # noqa: E402
from spaces.fbnetv2_blocks import ConvBNReLU  # noqa: E402


#: (kernels, expansions) per block, growing, all with largest kernel 5 and expansion 6.
GROWTH: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((5,), (6,)), ((3, 5), (3, 6)), ((3, 5), (1, 3, 6)), ((1, 3, 5), (1, 2, 3, 4, 6)),
    ((1, 3, 5), (1, 2, 3, 4, 5, 6)))


def load() -> str:
    """The 1-minute load average (other jobs share this machine's cores)."""
    return f"{os.getloadavg()[0]:.2f}"


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


def measure_side_by_side(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, tuple[int, float]]:
    """Peak bytes and median seconds per step, the timed steps interleaved in rounds so a
    drift of the shared CPU's speed hits every variant alike."""
    peaks = {}
    for name, step in steps.items():
        step()  # warm-up
        peaks[name] = peak_tensor_bytes(step)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: (peaks[name], float(np.median(times[name]))) for name in steps}


def widest_arch(space: FBNetV2Space, resolution: int) -> Arch:
    """Largest kernel and expansion (never skip) at every stage's widest width."""
    choices = []
    for i, d in enumerate(space.decisions):
        if i == space.resolution_decision:
            choices.append(space.resolutions.index(resolution))
        else:  # options ascend (widths; kernel-major blocks), skip comes last
            choices.append(max(o for o in range(len(d)) if d.options[o] != SKIP))
    return space.arch(choices)


class _Supernet(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, w: list[torch.Tensor]) -> torch.Tensor:
        return self.net(x, w, sparse=True)


def fbnetv2_rows(space: FBNetV2Space, batch: int, resolution: int, repeats: int,
                 kinds: tuple[str, ...] = tuple(SUPERNETS)) -> dict:
    """One training step of each supernet kind and of the widest standalone net, side by side."""
    torch.manual_seed(0)
    x = torch.randn(batch, space.in_channels, resolution, resolution)
    y = torch.randint(0, space.default_num_classes, (batch,))
    res_index = space.resolutions.index(resolution)
    hard = [i == space.resolution_decision for i in range(len(space.decisions))]
    steps = {}
    for kind in kinds:
        torch.manual_seed(0)
        supernet = make_supernet(kind, space, input_size=resolution)
        alpha = ArchParams(space)

        def weights(alpha: ArchParams = alpha) -> list[torch.Tensor]:
            w = alpha.sample(5.0, hard=hard)
            w[space.resolution_decision] = torch.eye(len(space.resolutions))[res_index]
            return w

        steps[kind] = make_step(_Supernet(supernet), x, y, weights)
    standalone = space.build(widest_arch(space, resolution), input_size=resolution)
    steps["widest"] = make_step(_Plain(standalone), x, y, lambda: None)
    measured = measure_side_by_side(steps, repeats)
    return {name: {"mb": peak / 1e6, "s": sec} for name, (peak, sec) in measured.items()}


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
    parser.add_argument("--no-fbnetv2", action="store_true", help="only the conv-stack rows")
    parser.add_argument("--large", default="mobile", help="the larger preset (default mobile)")
    parser.add_argument("--large-width", type=float, default=1.0, help="its width multiplier")
    parser.add_argument("--large-resolution", type=int, help="its resolution (default: its smallest)")
    parser.add_argument("--large-batch", type=int, default=8)
    parser.add_argument("--large-repeats", type=int, default=3)
    parser.add_argument("--no-large", action="store_true", help="skip the larger preset")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread; load average {load()}")
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
    if args.no_fbnetv2:
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
        return 0

    def ratio_line(label: str, r: dict, kinds: tuple[str, ...]) -> str:
        w = r["widest"]
        parts = [f"{label:<28} widest {w['mb']:>7.1f} MB {1e3 * w['s']:>7.0f} ms"]
        for kind in kinds:
            parts.append(f"{kind} {r[kind]['mb']:>7.1f} MB {1e3 * r[kind]['s']:>7.0f} ms "
                         f"({r[kind]['mb'] / w['mb']:.2f}x, {r[kind]['s'] / w['s']:.2f}x)")
        return " | ".join(parts)

    kinds = tuple(SUPERNETS)
    print(f"\nwhole fbnetv2 supernet vs the widest standalone net of its space (one SGD step, soft "
          f"Gumbel block/width weights with grad to alpha, one resolution; medians of "
          f"{args.repeats} interleaved rounds; (memory x, time x) of widest); load {load()}")
    tiny = FBNetV2Space("tiny")
    presets = {"tiny r16 batch %d" % args.batch: fbnetv2_rows(tiny, args.batch, 16, args.repeats)}
    if not args.no_large:
        large = FBNetV2Space(args.large, width_mult=args.large_width)
        res = args.large_resolution or large.resolutions[0]
        label = f"{large.key} r{res} batch {args.large_batch}"
        presets[label] = fbnetv2_rows(large, args.large_batch, res, args.large_repeats)
    for label, r in presets.items():
        print(ratio_line(label, r, kinds))
    out["fbnetv2"] = presets

    print(f"\ntiny supernet as block options grow (kernels x expansions per block; the widest "
          f"net, k5e6, is the same for all); load {load()}")
    growth = {}
    for kernels, expansions in GROWTH:
        space = FBNetV2Space("tiny", kernels=kernels, expansions=expansions)
        label = f"{len(kernels) * len(expansions):>2} combos k{'-'.join(map(str, kernels))} " \
                f"e{'-'.join(map(str, expansions))}"
        growth[label] = fbnetv2_rows(space, args.batch, 16, args.repeats)
        print(ratio_line(label, growth[label], kinds))
    out["growth"] = growth
    sp = [r["singlepath"]["mb"] / r["widest"]["mb"] for r in [*presets.values(), *growth.values()]]
    st = [r["singlepath"]["s"] / r["widest"]["s"] for r in [*presets.values(), *growth.values()]]
    mp = [r["multipath"]["mb"] for r in growth.values()]
    print(f"\ntargets (every row above): single-path <= 1.3x memory: "
          f"{'met' if max(sp) <= 1.3 else 'MISSED'} (worst {max(sp):.2f}x); <= 1.5x step time: "
          f"{'met' if max(st) <= 1.5 else 'MISSED'} (worst {max(st):.2f}x); multi-path memory grows "
          f"with the options: {'yes' if all(a < b for a, b in zip(mp, mp[1:])) else 'no'} "
          f"({mp[0]:.0f} -> {mp[-1]:.0f} MB); load {load()}")
    t = presets[next(iter(presets))]
    print(f"fbnetv2 tiny single-path supernet (one masked block per decision, r16): "
          f"{t['singlepath']['mb']:.1f} MB, {1e3 * t['singlepath']['s']:.0f} ms/step vs widest "
          f"standalone {t['widest']['mb']:.1f} MB, {1e3 * t['widest']['s']:.0f} ms/step "
          f"({t['singlepath']['s'] / t['widest']['s']:.1f}x time, "
          f"{t['singlepath']['mb'] / t['widest']['mb']:.1f}x memory)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
