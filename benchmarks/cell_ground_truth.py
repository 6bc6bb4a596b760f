"""Can the cell-search benchmark's training rank cells? Random cells trained alone, two seeds.

``benchmarks/cell_search.py`` judges each method by its derived cell *trained alone*
(:func:`hwnas.export_train.train_for_export`, ``--train-epochs`` on ``--max-samples``
images of the harder embedded dataset, the seed choosing both the split and the
initialisation). A claim such as "EnTranNAS is at least as accurate as DARTS" is only
as good as that ground truth: if the same cell trained with another seed lands many
points away, a difference between two methods' cells of that size says nothing.

This script measures it with the cell benchmark's own settings: ``--n`` random
architectures of ``--space`` (``darts`` C=8 layers=5 or ``nb201`` C=8 N=1, as there),
each trained alone once per seed in ``--seeds``, and prints per architecture the
accuracies and the share of parameter-free ops, then Kendall's tau between the seeds'
rankings, the mean |difference| between seeds, the spread of the mean accuracy, and
Kendall's tau of the mean accuracy against the parameter-free share (does a collapsed
cell cost accuracy at this scale?). The load is printed before and after.

    python benchmarks/cell_ground_truth.py --space darts --n 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="darts", choices=["darts", "nb201"])
    parser.add_argument("--n", type=int, default=20, help="random architectures")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=3, help="as cell_search --train-epochs")
    parser.add_argument("--max-samples", type=int, default=1500)
    parser.add_argument("--dataset", default="cluttered-digits")
    parser.add_argument("--input-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch-seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.n < 3 or len(args.seeds) < 2:
        parser.error("--n must be at least 3 and --seeds needs two seeds")

    import spaces
    from scipy.stats import kendalltau

    from benchmarks.cell_search import SPACE_OPTIONS, param_free_share
    from hwnas.export_train import train_for_export
    from spaces.core import atomic_write

    space = spaces.get(args.space, **SPACE_OPTIONS[args.space])
    archs = space.sample_many(args.n, rng=args.arch_seed)
    print(f"{args.n} random {space.key} cells trained alone, seeds {args.seeds}, "
          f"{args.epochs} epochs on {args.max_samples} images of {args.dataset} at "
          f"{args.input_size} px, {args.threads} threads (cell_search.py's training); "
          f"load {_load()}", flush=True)
    rows = []
    began = time.perf_counter()
    for i, arch in enumerate(archs):
        row = {"arch": space.to_string(arch), "param_free": param_free_share(space, arch)}
        for seed in args.seeds:
            trained = train_for_export(space, arch, args.dataset, args.epochs,
                                       input_size=args.input_size, seed=seed,
                                       threads=args.threads, max_samples=args.max_samples)
            row[f"seed{seed}"] = float(trained.accuracy)
        rows.append(row)
        print(f"  {i:2d} param-free {100 * row['param_free']:3.0f}%  "
              + "  ".join(f"seed {s}: {row[f'seed{s}']:5.1f}%" for s in args.seeds), flush=True)
        if args.csv:  # after every arch, atomically: an interrupted run keeps what it measured
            atomic_write(args.csv, pd.DataFrame(rows).to_csv(index=False))
    wall = time.perf_counter() - began
    frame = pd.DataFrame(rows)
    accs = frame[[f"seed{s}" for s in args.seeds]].to_numpy(dtype=float)
    taus = [kendalltau(accs[:, a], accs[:, b])[0]
            for a in range(accs.shape[1]) for b in range(a + 1, accs.shape[1])]
    mean = accs.mean(axis=1)
    diffs = [np.abs(accs[:, a] - accs[:, b]).mean()
             for a in range(accs.shape[1]) for b in range(a + 1, accs.shape[1])]
    print(f"\nseed-to-seed Kendall tau {np.mean(taus):.3f}; mean |difference| between seeds "
          f"{np.mean(diffs):.1f} points (largest {np.abs(accs[:, 0] - accs[:, 1]).max():.1f}); "
          f"spread of the mean accuracy {mean.max() - mean.min():.1f} points "
          f"({mean.min():.1f}-{mean.max():.1f}%)")
    print(f"Kendall tau of the mean accuracy vs the parameter-free share: "
          f"{kendalltau(mean, frame['param_free'])[0]:.3f}")
    print(f"{wall:.0f} s; load after {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
