"""What Ray costs and gains on this machine: evaluate candidates locally vs on a local Ray instance.

Workload (issue 10): 40 tabular candidates (NB201, accuracy + HELP-table
latency) and 8 trained candidates (fbnetv2 tiny on digits, 1 epoch). Local
runs them in this process, one after another. Ray starts a private instance
on every core, and its workers rebuild each evaluator from a picklable recipe.

Every overhead is counted: "total" includes Ray's start-up and the workers'
cold start (importing torch, loading the data, building the evaluator). The
"warm" lines evaluate a second, different set of candidates once workers and
evaluators exist, which is what each later batch of a long search costs.
Results are checked to be identical to local ones.

    python benchmarks/ray_overhead.py [--tabular 40] [--trained 8] [--epochs 1] [--json FILE]

The load average is printed because on a shared machine it changes the
numbers far more than Ray does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import spaces  # noqa: E402
from hwnas.executors import EvaluatorRecipe  # noqa: E402


def tabular(metrics: tuple[str, ...]):
    from hwnas.evaluators.latency_sources import TableLatency
    from hwnas.evaluators.tabular import TabularEvaluator

    space = spaces.get("nb201")
    return TabularEvaluator(space, metrics, latency=TableLatency(space, "gold_6226"))


def trained(epochs: int, metrics: tuple[str, ...]):
    import torch

    from hwnas.evaluators import datasets
    from hwnas.evaluators.train import TrainEvaluator

    torch.set_num_threads(1)
    space = spaces.get("fbnetv2", preset="tiny")
    data = datasets.load("digits", space.default_input_size, space.in_channels)
    return TrainEvaluator(space, metrics, data, epochs=epochs)


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabular", type=int, default=40)
    parser.add_argument("--trained", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the numbers here")
    args = parser.parse_args()

    import functools

    from hwnas.executors.ray_executor import RayExecutor

    jobs = {
        "tabular": (EvaluatorRecipe(tabular, ("accuracy", "latency_ms")),
                    spaces.get("nb201"), args.tabular),
        "trained": (EvaluatorRecipe(functools.partial(trained, args.epochs),
                                    ("accuracy", "macs", "params")),
                    spaces.get("fbnetv2", preset="tiny"), args.trained),
    }
    load_before = os.getloadavg()[0]
    rows: dict[str, dict[str, float]] = {}
    expected: dict[str, list] = {}
    sets = {}
    for name, (recipe, space, n) in jobs.items():
        both = space.sample_many(2 * n, args.seed)
        sets[name] = (both[:n], both[n:])
        evaluator, build_s = _timed(recipe)
        first, cold_s = _timed(evaluator.evaluate_many, sets[name][0])
        second, warm_s = _timed(evaluator.evaluate_many, sets[name][1])
        expected[name] = first + second
        evaluator.close()
        rows[name] = {"local_total": build_s + cold_s, "local_warm": warm_s}
        print(f"local {name:8} build {build_s:6.2f} s, {n} archs {cold_s:6.2f} s, "
              f"next {n} {warm_s:6.2f} s", flush=True)

    executor, start_s = _timed(lambda: RayExecutor(num_cpus=os.cpu_count()))
    print(f"ray start-up {start_s:.2f} s on {executor.parallelism} CPUs", flush=True)
    try:
        for name, (recipe, space, n) in jobs.items():
            first, cold_s = _timed(executor.map_evaluate, recipe, sets[name][0])
            second, warm_s = _timed(executor.map_evaluate, recipe, sets[name][1])
            got = [o.value for o in first + second]
            if got != expected[name]:
                print(f"MISMATCH in {name}: ray results differ from local", file=sys.stderr)
                return 1
            rows[name].update(ray_cold=cold_s, ray_warm=warm_s)
            print(f"ray   {name:8} {n} archs {cold_s:6.2f} s (cold workers), "
                  f"next {n} {warm_s:6.2f} s", flush=True)
    finally:
        executor.close()
    load_after = os.getloadavg()[0]

    total_local = sum(r["local_total"] for r in rows.values())
    total_ray = start_s + sum(r["ray_cold"] for r in rows.values())
    print(f"\n{'':24}{'local':>10}{'ray':>10}")
    for name, r in rows.items():
        n = jobs[name][2]
        print(f"{name + f' x{n}, first':24}{r['local_total']:>9.2f}s{r['ray_cold']:>9.2f}s")
        print(f"{name + f' x{n}, warm':24}{r['local_warm']:>9.2f}s{r['ray_warm']:>9.2f}s")
    print(f"{'ray start-up':24}{'':>10}{start_s:>9.2f}s")
    print(f"{'total (first sets)':24}{total_local:>9.2f}s{total_ray:>9.2f}s")
    print(f"results identical: yes; {os.cpu_count()} cores, load average {load_before:.1f} "
          f"before, {load_after:.1f} after")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "ray_start_s": start_s,
                                               "cores": os.cpu_count(),
                                               "load": [load_before, load_after]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
