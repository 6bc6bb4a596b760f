"""Does ENAS's controller condition on its past decisions? The study "Understanding Neural
Architecture Search Techniques" (Adam & Lorraine 2019), reproduced on NB201 at the
embedded scale, and ENAS against random search with weight sharing.

(a) ``hidden``: for each seed, an NB201 supernet is trained on cluttered-digits with the
``enas`` sampler (controller and shared weights alternately), without and with the
memory buffer. Then 200 architectures are sampled from each trained controller; for
every pair, the distance between the controller's hidden states after the whole
architecture (Euclidean) and the graph edit distance of the two cells (NB201's
topology is fixed, so: the number of edges whose operation differs) are computed, and
their Spearman correlation printed. The study: near zero without the buffer (the
hidden state does not encode past decisions), higher with it. An untrained controller
is printed as the reference.

(b) ``search``: at the same number of supernet evaluations (``--queries``; each one is
an inherited-accuracy evaluation with BN recalibration), under a latency budget (the
median of the HELP NB201 gold_6226 column, table latency as the search's latency):
``enas`` (the controller of (a), continued with REINFORCE on the run's reward), ``enas``
with the buffer, ``rsps`` (Li & Talwalkar) and ``random``, the last two on a supernet
trained with the ``uniform`` sampler (the paper's). The chosen cell (most accurate
within the budget) is then trained alone (``--standalone-epochs``) and its ONNX file
timed on ort:cpu (one thread): its standalone accuracy and measured latency are
printed. Ground-truth noise: the seed-to-seed Kendall tau of standalone training at
this scale is in benchmarks/results/dataset_ranking.txt.

    python benchmarks/controller_analysis.py --part hidden search --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPACE_OPTIONS = {"C": 8, "N": 1}


def load() -> float:
    return os.getloadavg()[0]


def space_and_data(max_samples: int, seed: int):
    import spaces
    from hwnas.evaluators import datasets

    space = spaces.get("nb201", **SPACE_OPTIONS)
    data = datasets.load("cluttered-digits", 32, 3, max_samples=max_samples, seed=seed)
    return space, data


def train(space, data, sampler: str, epochs: int, seed: int, path: Path,
          options: dict | None = None) -> float:
    """Train (or reuse) one supernet checkpoint; seconds spent training."""
    import torch

    from hwnas.oneshot import make_supernet
    from hwnas.oneshot.training import train_supernet

    if path.exists():
        return 0.0
    torch.manual_seed(seed)
    supernet = make_supernet(space, data.num_classes, 32)
    start = time.perf_counter()
    train_supernet(supernet, data, sampler, epochs, batch_size=64, lr=0.05, seed=seed,
                   checkpoint=path, sampler_options=options)
    return time.perf_counter() - start


def edit_distances(choices: np.ndarray) -> np.ndarray:
    """Condensed pairwise graph edit distance of NB201 cells (fixed topology: differing ops)."""
    n = len(choices)
    i, j = np.triu_indices(n, 1)
    return (choices[i] != choices[j]).sum(axis=1).astype(float)


def hidden_correlation(controller, samples: int, seed: int) -> float:
    import torch
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    with torch.no_grad():
        rollout = controller.sample(samples, torch.Generator().manual_seed(seed))
    final = rollout.hidden[:, -1, :].numpy()
    return float(spearmanr(pdist(final), edit_distances(rollout.choices.numpy())).statistic)


def distinct_share(controller, samples: int, seed: int) -> float:
    """Share of distinct architectures among ``samples`` draws: how far the policy has
    concentrated (1.0 = still near uniform on NB201's 15,625 cells)."""
    import torch

    with torch.no_grad():
        rollout = controller.sample(samples, torch.Generator().manual_seed(seed + 1))
    return len(set(rollout.archs)) / samples


def part_hidden(args, out: Path) -> list[dict]:
    from hwnas.controllers import LSTMController
    from hwnas.oneshot import make_supernet
    from hwnas.oneshot.enas import controller_from_checkpoint

    rows = []
    for seed in args.seeds:
        space, data = space_and_data(args.max_samples, seed)
        untrained = LSTMController(space)
        rows.append({"seed": seed, "controller": "untrained",
                     "spearman": hidden_correlation(untrained, args.samples, seed)})
        for buffer in (None, args.memory_buffer):
            label = "enas" if buffer is None else f"enas+buffer{buffer}"
            ckpt = out / f"{label}_seed{seed}.ckpt"
            options = {"controller_steps": args.controller_steps, "lr": args.controller_lr}
            if buffer:
                options["memory_buffer"] = buffer
            before = load()
            seconds = train(space, data, "enas", args.epochs, seed, ckpt, options)
            sampler = controller_from_checkpoint(str(ckpt), make_supernet(space, data.num_classes, 32))
            rho = hidden_correlation(sampler.controller, args.samples, seed)
            last = sampler.history[-1] if sampler.history else {}
            rows.append({"seed": seed, "controller": label, "spearman": rho,
                         "distinct": distinct_share(sampler.controller, args.samples, seed),
                         "train_s": round(seconds, 1), "load": f"{before:.1f}-{load():.1f}",
                         "final_reward": last.get("reward"), "entropy": last.get("entropy"),
                         "reconstruction": last.get("reconstruction")})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def measured_latency_ms(space, arch, repeats: int = 3) -> float:
    from hwnas.evaluators.latency_sources import DeviceLatency

    source = DeviceLatency(space, "ort:cpu", input_size=32, num_classes=10)
    try:
        return float(np.median([source.latency_ms([arch])[0] for _ in range(repeats)]))
    finally:
        source.close()


def standalone_accuracy(space, data, arch, epochs: int, seed: int) -> float:
    from hwnas.evaluators.train import TrainEvaluator

    evaluator = TrainEvaluator(space, ["accuracy"], data, epochs=epochs, seed=seed)
    return float(evaluator.evaluate_many([arch])[0]["accuracy"])


def part_search(args, out: Path) -> list[dict]:
    from hwnas import strategies
    from hwnas.evaluators.latency_sources import TableLatency
    from hwnas.objectives import parse_objectives
    from hwnas.oneshot.evaluate import OneShotEvaluator

    rows = []
    for seed in args.seeds:
        space, data = space_and_data(args.max_samples, seed)
        table = TableLatency(space, "gold_6226")
        budget = float(np.median(table._by_index))
        objectives = parse_objectives(["accuracy"], [f"latency_ms<={budget!r}"])
        uniform = out / f"uniform_seed{seed}.ckpt"
        train(space, data, "uniform", args.epochs, seed, uniform)
        runs = [("enas", out / f"enas_seed{seed}.ckpt", "enas"),
                (f"enas+buffer{args.memory_buffer}",
                 out / f"enas+buffer{args.memory_buffer}_seed{seed}.ckpt", "enas"),
                ("rsps", uniform, "rsps"), ("random", uniform, "random")]
        for label, ckpt, strategy in runs:
            if not ckpt.exists():
                print(f"{ckpt} missing: run --part hidden first", file=sys.stderr)
                continue
            evaluator = OneShotEvaluator.from_checkpoint(str(ckpt), space, ["accuracy", "latency_ms"],
                                                         data, latency=TableLatency(space, "gold_6226"),
                                                         seed=seed)
            before, start = load(), time.perf_counter()
            result = strategies.create(strategy, seed=seed).run(space, evaluator, objectives,
                                                                 args.queries)
            search_s = time.perf_counter() - start
            best = result.best()
            if best is None:
                rows.append({"seed": seed, "method": label, "chosen": None})
                continue
            arch = space.from_string(best["arch"])
            acc = standalone_accuracy(space, data, arch, args.standalone_epochs, seed)
            rows.append({"seed": seed, "method": label, "chosen": best["arch"],
                         "inherited_acc": round(float(best["accuracy"]), 2),
                         "table_ms": round(float(best["latency_ms"]), 3), "budget_ms": round(budget, 3),
                         "standalone_acc": round(acc, 2),
                         "ort_cpu_ms": round(measured_latency_ms(space, arch), 3),
                         "search_s": round(search_s, 1), "load": f"{before:.1f}-{load():.1f}"})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def summarise(rows: list[dict], key: str, value: str) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty or value not in frame:
        return
    table = frame.groupby(key)[value].agg(["mean", "std", "count"])
    print(table.round(3).to_string())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", choices=("hidden", "search"), default=["hidden"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5, help="supernet epochs")
    parser.add_argument("--max-samples", type=int, default=4000)
    parser.add_argument("--memory-buffer", type=int, default=50)
    parser.add_argument("--samples", type=int, default=200, help="architectures per controller (a)")
    parser.add_argument("--controller-steps", type=int, default=50,
                        help="REINFORCE updates per ENAS controller phase")
    parser.add_argument("--controller-lr", type=float, default=0.0035)
    parser.add_argument("--queries", type=int, default=20, help="supernet evaluations per search (b)")
    parser.add_argument("--standalone-epochs", type=int, default=5)
    parser.add_argument("--out", default="/tmp/controller_analysis")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"NB201 {SPACE_OPTIONS} on cluttered-digits ({args.max_samples} images), supernet "
          f"{args.epochs} epochs, ENAS controller phases of {args.controller_steps} updates "
          f"(lr {args.controller_lr}), seeds {args.seeds}, 1 thread; load at start {load():.1f}")
    if "hidden" in args.part:
        rows = part_hidden(args, out)
        (out / "hidden.json").write_text(json.dumps(rows, indent=1))
        print("\n(a) Spearman(hidden-state distance, graph edit distance) over sampled pairs:")
        summarise(rows, "controller", "spearman")
    if "search" in args.part:
        rows = part_search(args, out)
        (out / "search.json").write_text(json.dumps(rows, indent=1))
        print(f"\n(b) chosen cell at {args.queries} supernet evaluations:")
        for value in ("standalone_acc", "ort_cpu_ms", "inherited_acc"):
            print(f"-- {value}")
            summarise(rows, "method", value)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
