"""What one-shot training and evaluation cost per step on this machine, for a space.

``hwnas search --space fbnet`` runs the one-shot engine: ``SUPERNET_STEPS`` (450) steps of
the sandwich sampler, then ``--queries`` (400) inherited-accuracy evaluations, then a
fine-tune of each chosen network. This prints the seconds of one supernet step per
sampler (median of the steps after the first, one epoch of ``--images`` training images,
batch 64) and of one inherited-accuracy evaluation (BN recalibration on 8 batches +
the validation split), on ``--threads`` torch threads, with the load before and after,
and the time the defaults would take.

    python benchmarks/oneshot_cost.py --space fbnet
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="fbnet")
    parser.add_argument("--dataset", default="cluttered-digits")
    parser.add_argument("--images", type=int, default=480, help="images loaded (80%% train)")
    parser.add_argument("--samplers", nargs="+", default=["uniform", "sandwich"])
    parser.add_argument("--evaluations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    import spaces
    from hwnas.evaluators import datasets
    from hwnas.oneshot import make_supernet
    from hwnas.oneshot.evaluate import inherited_accuracy
    from hwnas.oneshot.training import train_supernet
    from hwnas.pipeline.settings import SUPERNET_STEPS

    torch.set_num_threads(args.threads)
    load = lambda: ", ".join(f"{x:.2f}" for x in os.getloadavg())  # noqa: E731
    print(f"load before {load()}")
    space = spaces.get(args.space)
    size = space.default_input_size
    data = datasets.load(args.dataset, size, space.in_channels, max_samples=args.images, seed=0)
    full = datasets.load(args.dataset, size, space.in_channels, seed=0)
    print(f"{space.key} at {size} px, {args.dataset}: {len(data.y_train)} training images "
          f"for the steps; {args.threads} threads")
    net = None
    for sampler in args.samplers:
        torch.manual_seed(0)
        net = make_supernet(space, data.num_classes, size)
        stamps: list[float] = []
        train_supernet(net, data, sampler, 1, batch_size=64, seed=0,
                       on_step=lambda *_: stamps.append(time.perf_counter()))
        step = float(np.median(np.diff(stamps)))
        print(f"{sampler}: {step:.2f} s per step ({len(stamps)} steps); the default "
              f"{SUPERNET_STEPS} steps: {SUPERNET_STEPS * step / 60:.1f} min", flush=True)
    net.eval()
    archs = space.sample_many(args.evaluations, rng=0)
    began = time.perf_counter()
    for arch in archs:
        inherited_accuracy(net, arch, full)
    each = (time.perf_counter() - began) / len(archs)
    print(f"inherited accuracy on the full validation split ({len(full.y_val)} images): "
          f"{each:.2f} s per architecture; the default 400 evaluations: {400 * each / 60:.1f} min")
    print(f"load after {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
