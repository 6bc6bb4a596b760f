"""Can a dataset rank architectures? Train random archs alone under two seeds and compare.

A dataset a search trains candidates on is only useful if the accuracies it gives are
an *architecture's* property, not a seed's: the same architectures trained with another
seed should come out in the same order, and they should be spread widely enough that
the order means something. For each ``--dataset`` (repeatable, e.g. ``digits`` against
``cluttered-digits``):

1. draw ``--n`` distinct random architectures of ``--space`` / ``--preset``
   (``space.sample_many(n, rng=--arch-seed)``: the same archs for every dataset);
2. load the dataset at ``--input-size`` with the split seed ``--split-seed`` (fixed: only
   the *training* seed varies between the runs compared);
3. train every arch alone for ``--epochs`` once per seed in ``--seeds`` with the search's
   own trainer (``TrainEvaluator.train_one``: AdamW, warm-up + cosine, BatchNorm
   recalibration, validation accuracy; one thread), and print both accuracies per arch;
4. summarise: the spread of the per-arch mean accuracy (max - min, and the 10-90 %
   range), Kendall's tau between every pair of seeds (their mean when more than two),
   the mean |accuracy difference| between seeds, wall time and the 1-minute load
   average before and after (other jobs on a shared machine slow it, not the numbers).

The accuracies do not depend on the machine or its load (fixed seeds, one thread);
the times do. ``--csv`` rewrites its file after every arch, so an interrupted run
keeps what it measured.

    python benchmarks/dataset_ranking.py                  # cluttered-digits, 30 archs x 2 seeds
    python benchmarks/dataset_ranking.py --dataset digits --dataset cluttered-digits --csv rank.csv
    python benchmarks/dataset_ranking.py --n 2 --seeds 0 --epochs 1   # smoke run
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hwnas.cli.profile_cmd import load_space  # noqa: E402
from hwnas.evaluators import datasets  # noqa: E402
from hwnas.evaluators.train import TrainEvaluator  # noqa: E402
from spaces.core import atomic_write  # noqa: E402

#: 30 archs x 2 seeds on cluttered-digits (5,748 training images at 16 px) at 5 epochs:
#: ~10-11 CPU-minutes (one thread: ~1.0 s + 1.3 s per million MACs per epoch, so ~1.8 s
#: for a median fbnetv2:tiny arch), ~15-20 minutes of wall time on a busy 2-core machine.
DEFAULT_EPOCHS = 5


def load_average() -> str:
    """The 1-minute load average (other jobs share this machine's cores)."""
    return f"{os.getloadavg()[0]:.2f}"


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (ties counted as in scipy); scipy's when it is installed."""
    try:
        from scipy.stats import kendalltau
    except ImportError:
        kendalltau = None
    if kendalltau is not None:
        return float(kendalltau(a, b).statistic)
    concordant = discordant = ties_a = ties_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif da == db:
            concordant += 1
        else:
            discordant += 1
    denom = np.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return float((concordant - discordant) / denom) if denom else float("nan")


def summarise(acc: np.ndarray, seeds: list[int]) -> dict[str, float]:
    """Spread, seed-to-seed agreement and disagreement of an (archs, seeds) accuracy table."""
    mean = acc.mean(axis=1)
    out = {"spread": float(mean.max() - mean.min()),
           "spread_10_90": float(np.percentile(mean, 90) - np.percentile(mean, 10)),
           "mean_acc": float(mean.mean()), "min_acc": float(mean.min()),
           "max_acc": float(mean.max())}
    if len(seeds) >= 2:
        pairs = list(itertools.combinations(range(len(seeds)), 2))
        out["kendall_tau"] = float(np.mean([kendall_tau(acc[:, i], acc[:, j]) for i, j in pairs]))
        out["mean_abs_seed_diff"] = float(np.mean([np.abs(acc[:, i] - acc[:, j]).mean()
                                                   for i, j in pairs]))
    return out


def load_data(name: str, space, args) -> tuple[str, datasets.DataSplit]:
    """(label, data): ``datasets.load``, or cluttered-digits with --level / --copies."""
    if name != "cluttered-digits" or (args.level is None and args.copies is None):
        return name, datasets.load(name, args.input_size, space.in_channels, root=args.data_root,
                                   max_samples=args.max_samples, seed=args.split_seed)
    from hwnas.evaluators import cluttered_digits as cd

    level = cd.DEFAULT_LEVEL if args.level is None else args.level
    copies = args.copies or cd.DEFAULT_COPIES
    data = cd.load(args.input_size, space.in_channels, level=level, copies=copies,
                   max_samples=args.max_samples, seed=args.split_seed)
    return f"{name}(level={level:g},copies={copies})", data


def write_csv(path: str, rows: list[dict]) -> None:
    import pandas as pd

    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    atomic_write(path, buf.getvalue())


def run_dataset(name: str, space, archs, args, rows: list[dict]) -> dict:
    """Train every arch under every seed on ``name``; print per-arch lines and the summary."""
    t0, load_before = time.perf_counter(), load_average()
    name, data = load_data(name, space, args)
    info = data.describe()
    print(f"\n== {name}: {info['train']} train / {info['val']} val, shape {info['shape']}, "
          f"{info['num_classes']} classes (loaded in {time.perf_counter() - t0:.1f} s); "
          f"{len(archs)} archs x seeds {args.seeds} x {args.epochs} epochs; load {load_before}",
          flush=True)
    header = "  #  " + " ".join(f"seed{s:<3d}" for s in args.seeds) + "   mean  train_s  arch"
    print(header)
    acc = np.zeros((len(archs), len(args.seeds)))
    train_s = np.zeros_like(acc)
    for i, arch in enumerate(archs):
        for j, seed in enumerate(args.seeds):
            ev = TrainEvaluator(space, ["accuracy"], data, epochs=args.epochs, seed=seed,
                                input_size=args.input_size, threads=args.threads)
            start = time.perf_counter()
            acc[i, j] = ev.train_one(arch)
            train_s[i, j] = time.perf_counter() - start
        text = space.to_string(arch)
        print(f"{i:3d}  " + " ".join(f"{a:7.2f}" for a in acc[i]) +
              f" {acc[i].mean():6.2f} {train_s[i].sum():8.1f}  {text}", flush=True)
        for j, seed in enumerate(args.seeds):
            rows.append({"dataset": name, "arch_index": i, "arch": text, "seed": seed,
                         "epochs": args.epochs, "accuracy": acc[i, j],
                         "train_s": round(train_s[i, j], 3),
                         "macs": space.cost(arch, args.input_size).macs,
                         "train_images": info["train"], "val_images": info["val"]})
        if args.csv:
            write_csv(args.csv, rows)
    wall = time.perf_counter() - t0
    summary = summarise(acc, args.seeds)
    summary.update(wall_s=wall, train_s=float(train_s.sum()), load_before=load_before,
                   load_after=load_average())
    line = (f"-- {name}: mean accuracy {summary['mean_acc']:.1f} (min {summary['min_acc']:.1f}, "
            f"max {summary['max_acc']:.1f}); spread {summary['spread']:.1f} points "
            f"(10-90 %: {summary['spread_10_90']:.1f})")
    if "kendall_tau" in summary:
        line += (f"; seed-to-seed Kendall tau {summary['kendall_tau']:.3f}, "
                 f"mean |seed difference| {summary['mean_abs_seed_diff']:.2f} points")
    print(line)
    print(f"   wall {wall:.0f} s (training {summary['train_s']:.0f} s, "
          f"{summary['train_s'] / acc.size:.1f} s per run); load average {load_before} -> "
          f"{summary['load_after']}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", metavar="NAME",
                        help="repeatable; default cluttered-digits (digits, cifar10 with "
                             "--data-root, an ImageFolder path ...)")
    parser.add_argument("--space", default="fbnetv2")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--input-size", type=int, help="default: the space's own (16 for tiny)")
    parser.add_argument("--n", type=int, default=30, help="random architectures (default 30)")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help=f"training epochs per run (default {DEFAULT_EPOCHS})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="training seeds (default 0 1)")
    parser.add_argument("--max-samples", type=int, metavar="N", help="use at most N images")
    parser.add_argument("--arch-seed", type=int, default=0, help="which random archs (default 0)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="train/validation split, the same for every training seed")
    parser.add_argument("--level", type=float,
                        help="cluttered-digits: difficulty (default 1.0; 0 = plain digits)")
    parser.add_argument("--copies", type=int,
                        help="cluttered-digits: generated images per source digit (default 4)")
    parser.add_argument("--data-root", help="folder holding CIFAR")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--csv", help="write one row per (dataset, arch, seed) here")
    args = parser.parse_args(argv)
    if args.n < 2 and len(args.seeds) > 1:
        parser.error("--n must be at least 2 to rank")
    names = args.dataset or ["cluttered-digits"]
    torch.set_num_threads(args.threads)
    space = load_space(args.space, args.preset, [])
    args.input_size = args.input_size or space.default_input_size
    archs = space.sample_many(args.n, rng=args.arch_seed)
    t0, load_before = time.perf_counter(), load_average()
    print(f"{space.key}: {len(archs)} random archs (arch seed {args.arch_seed}) at "
          f"{args.input_size}px; torch {torch.__version__}, {args.threads} thread(s); "
          f"{os.cpu_count()} CPUs; load average {load_before}")
    rows: list[dict] = []
    summaries = {name: run_dataset(name, space, archs, args, rows) for name in names}
    if len(names) > 1:
        print("\ndataset              spread  10-90   tau  |diff|  mean acc  wall s")
        for name, s in summaries.items():
            print(f"{name:20s} {s['spread']:6.1f} {s['spread_10_90']:6.1f} "
                  f"{s.get('kendall_tau', float('nan')):5.2f} "
                  f"{s.get('mean_abs_seed_diff', float('nan')):6.2f} {s['mean_acc']:8.1f} "
                  f"{s['wall_s']:7.0f}")
    print(f"\ntotal wall {time.perf_counter() - t0:.0f} s; load average {load_before} -> "
          f"{load_average()}")
    if args.csv:
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
