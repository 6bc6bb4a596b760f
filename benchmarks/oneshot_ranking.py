"""How well does a trained supernet rank architectures? Kendall tau against standalone training.

Ground truth: the CSV written by ``benchmarks/dataset_ranking.py --csv`` (N random
architectures, each trained alone with two seeds); its seed-to-seed Kendall tau is
printed first, because a ranking correlation means nothing without knowing how
well the ground truth agrees with itself. Then, per sampler, one supernet is
trained on the same dataset (``hwnas.oneshot``), every architecture of the CSV is
evaluated with inherited weights (BN recalibrated), and the Kendall tau between
inherited accuracy and the mean standalone accuracy is printed, with the supernet's
training time and the machine's load. ``fbnetv2-search`` is the FBNetV2 search
supernet's warm-up (uniform Gumbel weights, the pipeline's default engine) evaluated
the same way.

    python benchmarks/dataset_ranking.py --dataset cluttered-digits --n 30 --csv gt.csv
    python benchmarks/oneshot_ranking.py --truth gt.csv --samplers uniform sandwich attentive \
        path_dropout fbnetv2-search --epochs 30

Target (issue 28): tau >= 0.7 for the default sampler.
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


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def truth(path: Path, dataset: str | None) -> tuple[pd.DataFrame, list[str]]:
    """Per arch: one column per seed and their mean (the ground truth)."""
    frame = pd.read_csv(path)
    if dataset is not None and "dataset" in frame.columns:
        frame = frame[frame["dataset"] == dataset]
    elif "dataset" in frame.columns:  # the first dataset of the file
        frame = frame[frame["dataset"] == frame["dataset"].iloc[0]]
    if "seed" in frame.columns:  # one row per (arch, seed): one column per seed
        wide = frame.pivot_table(index=["dataset", "arch"], columns="seed", values="accuracy")
        wide.columns = [f"acc_seed{int(c)}" for c in wide.columns]
        frame = wide.reset_index()
    seeds = [c for c in frame.columns if c.startswith("acc_seed")]
    if len(seeds) < 2:
        raise SystemExit(f"{path}: needs accuracies of at least two seeds (acc_seed* columns)")
    frame = frame.copy()
    frame["mean"] = frame[seeds].mean(axis=1)
    return frame.reset_index(drop=True), seeds


def trained_supernet(kind: str, space, data, epochs: int, seed: int):
    import torch

    from hwnas.oneshot import make_supernet
    from hwnas.oneshot.training import train_supernet

    torch.manual_seed(seed)
    supernet = make_supernet(space, data.num_classes, int(data.x_train.shape[-1]))
    if kind == "fbnetv2-search":
        from hwnas.strategies.supernet.search import SupernetSearch
        from hwnas.strategies.supernet.strategy import SupernetStrategy

        config = SupernetStrategy(seed=seed, warmup_epochs=epochs, search_epochs=1).config
        search = SupernetSearch(supernet.masked, data.x_train, data.y_train, None, config)
        search.warmup()
    else:
        train_supernet(supernet, data, kind, epochs, seed=seed)
    return supernet.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, required=True,
                        help="CSV of benchmarks/dataset_ranking.py (arch, acc_seed0, acc_seed1, ...)")
    parser.add_argument("--dataset", default=None, help="dataset (default: the CSV's)")
    parser.add_argument("--space", default="fbnetv2")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--input-size", type=int, default=16)
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--samplers", nargs="+",
                        default=["uniform", "sandwich", "attentive", "path_dropout",
                                 "fbnetv2-search"])
    parser.add_argument("--epochs", type=int, default=30, help="supernet training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None, help="write per-arch results here")
    args = parser.parse_args(argv)

    import torch

    import spaces
    from hwnas.evaluators import datasets
    from hwnas.oneshot.evaluate import inherited_accuracy
    from spaces.core.errors import HwnasError

    torch.set_num_threads(int(os.environ.get("HWNAS_THREADS", "2")))
    gt, seeds = truth(args.truth, args.dataset)
    dataset = args.dataset or str(gt["dataset"].iloc[0] if "dataset" in gt.columns else "digits")
    space = spaces.get(args.space, **({"preset": args.preset} if args.preset else {}))
    archs = [space.from_string(a) for a in gt["arch"]]
    data = datasets.load(dataset, args.input_size, space.in_channels,
                         max_samples=args.max_samples, seed=args.seed)
    pair = kendall(gt[seeds[0]].to_numpy(), gt[seeds[1]].to_numpy())
    print(f"ground truth: {len(gt)} architectures of {space.key} trained alone on {dataset} at "
          f"{args.input_size}px, seeds {', '.join(s.removeprefix('acc_seed') for s in seeds)}; "
          f"spread of the mean {gt['mean'].max() - gt['mean'].min():.1f} points; "
          f"seed-to-seed Kendall tau {pair:.3f}")
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rows = []
    for kind in args.samplers:
        start = time.perf_counter()
        try:
            supernet = trained_supernet(kind, space, data, args.epochs, args.seed)
        except HwnasError as error:
            print(f"{kind}: skipped ({error})")
            continue
        trained = time.perf_counter() - start
        inherited = np.array([inherited_accuracy(supernet, a, data, seed=args.seed) for a in archs])
        gt[f"inherited_{kind}"] = inherited
        tau = kendall(inherited, gt["mean"].to_numpy())
        rows.append({"sampler": kind, "epochs": args.epochs, "kendall_tau": tau,
                     "tau_vs_seed0": kendall(inherited, gt[seeds[0]].to_numpy()),
                     "inherited_mean": inherited.mean(), "train_s": trained,
                     "eval_s": time.perf_counter() - start - trained})
        print(f"{kind}: tau {tau:.3f} ({trained:.0f} s training; load "
              f"{os.getloadavg()[0]:.2f})", flush=True)
    table = pd.DataFrame(rows)
    print(f"\nKendall tau, inherited accuracy vs mean standalone accuracy ({len(gt)} archs; "
          f"seed-to-seed tau of the ground truth {pair:.3f}):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.csv:
        from spaces.core import atomic_write

        atomic_write(args.csv, gt.to_csv(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
