"""Pi-NAS, SMASH and InstaNAS measured at the embedded scale (issue 31).

Ranking (Pi-NAS, SMASH): the ground truth is the CSV of ``benchmarks/dataset_ranking.py``
(architectures trained alone with two seeds; its seed-to-seed Kendall tau is printed
first). For each method one supernet is trained for ``--epochs`` on the same data and
every ground-truth architecture is scored:

* ``uniform`` / ``sandwich`` -- the supervised one-shot samplers (SPOS, BigNAS), inherited
  weights with BN recalibrated: the reference, trained side by side in this run;
* ``pi`` -- Pi-NAS (``--objective pi``: no labels), scored by a linear probe on the
  inherited, frozen features (hwnas.oneshot.probe);
* ``pi-recal`` -- the same Pi-NAS supernet scored the supervised way would be meaningless
  (its classifier never saw a class), so it is not printed;
* ``smash`` -- SMASH (``--objective smash``), scored with the weights its hypernetwork
  generates (BN recalibrated).

InstaNAS (``--instanas``): on the ``sandwich`` supernet of this run, ``--archive`` random
architectures are scored (inherited accuracy) and their MACs taken as the latency proxy
that picks ``--paths`` paths spread over the accuracy x MACs front; per latency weight
the controller is trained (reward: correctness minus weight x the path's latency, timed
once, relative to the slowest path's; paths
fine-tuned ``--finetune-epochs`` as the pipeline ships them), the folder
(controller + paths) is exported and every file timed on ``--device`` (batch 1,
interleaved), and the mean latency per image -- controller included -- is compared with
the fastest single path that reaches the controller's validation accuracy alone, and
with the paths mixed at random at that accuracy (image-blind: what instance-awareness
has to beat).

    python benchmarks/seed_methods.py --truth benchmarks/results/dataset_ranking.csv \\
        --methods uniform sandwich pi smash --epochs 5 --instanas
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from oneshot_ranking import kendall, truth  # noqa: E402


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def train(method: str, space, data, epochs: int, seed: int, folder: Path):
    """(supernet, scorer(arch) -> accuracy %, seconds of training)."""
    import torch

    from hwnas.oneshot import make_supernet
    from hwnas.oneshot.evaluate import inherited_accuracy
    from hwnas.oneshot.training import train_supernet

    torch.manual_seed(seed)
    supernet = make_supernet(space, data.num_classes, int(data.x_train.shape[-1]))
    start = time.perf_counter()
    if method in ("uniform", "sandwich"):
        train_supernet(supernet, data, method, epochs, seed=seed)
        seconds = time.perf_counter() - start
        return supernet.eval(), lambda a: inherited_accuracy(supernet, a, data, seed=seed), seconds
    if method == "pi":
        from hwnas.oneshot.probe import probe_accuracy

        train_supernet(supernet, data, "uniform", epochs, seed=seed, objective="pi")
        seconds = time.perf_counter() - start
        return (supernet.eval(), lambda a: probe_accuracy(supernet.extract(a), data, seed=seed),
                seconds)
    if method == "smash":
        from hwnas.oneshot.smash import load_smash, smash_accuracy

        ckpt = folder / "smash.ckpt"
        train_supernet(supernet, data, "uniform", epochs, seed=seed, objective="smash",
                       checkpoint=ckpt)
        seconds = time.perf_counter() - start
        fresh = make_supernet(space, data.num_classes, int(data.x_train.shape[-1]))
        hyper = load_smash(ckpt, fresh, dataset=data.name)
        fresh.eval()
        return fresh, lambda a: smash_accuracy(fresh, hyper, a, data, seed=seed), seconds
    raise SystemExit(f"unknown method {method!r}")


def instanas_bench(supernet, space, data, args, folder: Path) -> pd.DataFrame:
    import devices
    import torch

    from hwnas.export.instance_folder import export_instance_folder
    from hwnas.oneshot import instanas
    from hwnas.oneshot.evaluate import inherited_accuracy
    from spaces.flops import count_cost

    rng = np.random.default_rng(args.seed)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(args.archive)))
    size = int(data.x_train.shape[-1])
    began = time.perf_counter()
    acc = {a: inherited_accuracy(supernet, a, data, seed=args.seed) for a in archs}
    macs = {a: float(count_cost(space.build(a, data.num_classes, size),
                                tuple(space.input_shape(size))).macs) for a in archs}
    chosen = instanas.choose_paths(acc, macs, args.paths)
    nets, accs = [], []
    for arch in chosen:  # as the pipeline ships them: inherited, fine-tuned --finetune-epochs
        net, acc = instanas.path_network(supernet, arch, data, args.finetune_epochs, size,
                                         args.seed)
        nets.append(net)
        accs.append(acc)
    print(f"InstaNAS: {len(archs)} archive architectures scored in "
          f"{time.perf_counter() - began:.0f} s; {len(chosen)} paths of the accuracy x MACs "
          f"front: " + ", ".join(f"{a:.1f}% / {macs[c] / 1e3:.0f}k MACs"
                                 for a, c in zip(accs, chosen)), flush=True)
    # the reward's latency: each path's file timed on the device (the pipeline uses the
    # device predictor's; MACs do not rank latency at this size on ONNX Runtime)
    from hwnas.export import export_arch

    files = []
    for k, (arch, net) in enumerate(zip(chosen, nets)):
        files.append(folder / f"cost-{k}.onnx")
        export_arch(space, arch, files[-1], model=net, input_size=size, measure=False,
                    num_classes=data.num_classes, accuracy=accs[k], data=data)
    profiler = devices.get(args.device)
    try:
        torch.set_num_threads(1)
        cost_ms = np.array([m.latency_ms for m in profiler.measure_many(
            files, tuple(space.input_shape(size)), 1)])
    finally:
        profiler.close()
        torch.set_num_threads(int(os.environ.get("HWNAS_THREADS", "2")))
    cost = cost_ms / cost_ms.max()
    print("  paths timed for the reward: " + ", ".join(f"{ms:.4f} ms" for ms in cost_ms))
    train_ok = instanas.correctness(nets, data.x_train, data.y_train)
    val_ok = instanas.correctness(nets, data.x_val, data.y_val)
    oracle = 100.0 * float(val_ok.any(axis=1).mean())
    print(f"  how well the image tells which path is right: ROC AUC on validation images of a "
          f"controller-size CNN trained supervised on each path's correctness: "
          + ", ".join(f"{a:.3f}" for a in predictability(space, size, data, train_ok, val_ok,
                                                         args.seed)), flush=True)
    rows = []
    profiler = devices.get(args.device)
    try:
        for weight in args.latency_weights:
            config = instanas.ControllerConfig(latency_weight=weight, seed=args.seed)
            controller = instanas.InstanceController(space.in_channels, size, len(chosen),
                                                     seed=args.seed)
            start = time.perf_counter()
            instanas.train_controller(controller, data.x_train,
                                      instanas.reward_table(train_ok, cost, config), config)
            trained = time.perf_counter() - start
            routing = instanas.route(controller, data.x_val, val_ok)
            records = [{"accuracy": a, "usage": u} for a, u in zip(accs, routing.usage)]
            torch.set_num_threads(1)
            manifest = export_instance_folder(
                folder / f"instanas-{weight}", space, controller, list(zip(chosen, nets, records)),
                input_size=size, data=data, profiler=profiler,
                check_images=data.x_val[:64].numpy(), info={"accuracy": routing.accuracy})
            torch.set_num_threads(int(os.environ.get("HWNAS_THREADS", "2")))
            path_ms = [p["latency_ms"] for p in manifest["paths"]]
            ctrl_ms = manifest["controller"]["latency_ms"]
            mean_ms = routing.mean_latency(path_ms, ctrl_ms)
            fixed = instanas.best_fixed(accs, path_ms, routing.accuracy)
            blind = instanas.mixture_latency(accs, path_ms, routing.accuracy)
            rows.append({"latency_weight": weight, "val_acc": routing.accuracy,
                         "usage": " ".join(f"{u:.2f}" for u in routing.usage),
                         "controller_ms": ctrl_ms, "mean_ms": mean_ms,
                         "fixed_path": fixed, "fixed_acc": accs[fixed], "fixed_ms": path_ms[fixed],
                         "reduction": 1 - mean_ms / path_ms[fixed],
                         "blind_mix_ms": blind,
                         "vs_blind": None if blind is None else 1 - mean_ms / blind,
                         "train_s": trained,
                         "load": os.getloadavg()[0]})
            print(f"  weight {weight}: {routing.accuracy:.2f}% at {mean_ms:.4f} ms/image "
                  f"(controller {ctrl_ms:.4f}); fastest path as accurate: {fixed} "
                  f"({accs[fixed]:.2f}%, {path_ms[fixed]:.4f} ms) -> "
                  f"{100 * rows[-1]['reduction']:.1f}% less latency; paths mixed image-blind at "
                  f"that accuracy: {blind if blind is None else round(blind, 4)} ms; "
                  f"load {load()}", flush=True)
    finally:
        profiler.close()
    print(f"  paths alone: " + ", ".join(f"{a:.2f}% {ms:.4f} ms" for a, ms in zip(accs, path_ms))
          + f"; oracle (an image is right if any path is): {oracle:.2f}%")
    return pd.DataFrame(rows)


def predictability(space, size: int, data, train_ok: np.ndarray, val_ok: np.ndarray,
                   seed: int, epochs: int = 10) -> list[float]:
    """Per path, the validation ROC AUC of the controller's network trained with labels
    (binary cross-entropy on "path k is right on this image"): an upper bound on what the
    controller can learn from the image by policy gradient."""
    import torch
    import torch.nn.functional as F
    from sklearn.metrics import roc_auc_score

    from hwnas.oneshot import instanas

    torch.manual_seed(seed)
    net = instanas.InstanceController(space.in_channels, size, train_ok.shape[1], seed=seed)
    target = torch.as_tensor(train_ok, dtype=torch.float32)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(target))
        for start in range(0, len(order) - 1, 128):
            idx = order[start:start + 128]
            loss = F.binary_cross_entropy_with_logits(net(data.x_train[idx]), target[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        scores = torch.sigmoid(net(data.x_val)).numpy()
    return [float(roc_auc_score(val_ok[:, k], scores[:, k])) if 0 < val_ok[:, k].mean() < 1
            else float("nan") for k in range(val_ok.shape[1])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, default=ROOT / "benchmarks/results/dataset_ranking.csv")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--space", default="fbnetv2")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--input-size", type=int, default=16,
                        help="image size (the ground truth's: 16; InstaNAS alone may use others)")
    parser.add_argument("--methods", nargs="*", default=["uniform", "sandwich", "pi", "smash"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--instanas", action="store_true", help="also measure InstaNAS")
    parser.add_argument("--archive", type=int, default=150)
    parser.add_argument("--paths", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=1,
                        help="fine-tune of each path's inherited weights (the pipeline's default 1)")
    parser.add_argument("--latency-weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0])
    parser.add_argument("--device", default="ort:cpu")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    import spaces
    from hwnas.evaluators import datasets

    torch.set_num_threads(int(os.environ.get("HWNAS_THREADS", "2")))
    gt, seeds = truth(args.truth, args.dataset)
    dataset = args.dataset or str(gt["dataset"].iloc[0])
    space = spaces.get(args.space, preset=args.preset)
    archs = [space.from_string(a) for a in gt["arch"]]
    data = datasets.load(dataset, args.input_size, space.in_channels, seed=args.seed)
    pair = kendall(gt[seeds[0]].to_numpy(), gt[seeds[1]].to_numpy())
    print(f"ground truth: {len(gt)} architectures of {space.key} trained alone on {dataset} at "
          f"{args.input_size}px; seed-to-seed Kendall tau {pair:.3f}")
    print(f"load average before: {load()}", flush=True)
    rows, supernets = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        methods = list(args.methods)
        if args.instanas and "sandwich" not in methods:
            methods.append("sandwich")
        for method in methods:
            supernet, score, seconds = train(method, space, data, args.epochs, args.seed, folder)
            supernets[method] = supernet
            if method not in args.methods:  # trained for InstaNAS only: no ranking asked
                print(f"{method}: {seconds:.0f} s training (for InstaNAS; load {load()})")
                continue
            start = time.perf_counter()
            scores = np.array([score(a) for a in archs])
            tau = kendall(scores, gt["mean"].to_numpy())
            rows.append({"method": method, "epochs": args.epochs, "kendall_tau": tau,
                         "tau_vs_seed0": kendall(scores, gt[seeds[0]].to_numpy()),
                         "mean_score": scores.mean(), "train_s": seconds,
                         "eval_s": time.perf_counter() - start, "load": os.getloadavg()[0]})
            gt[f"score_{method}"] = scores
            print(f"{method}: tau {tau:.3f} ({seconds:.0f} s training, "
                  f"{rows[-1]['eval_s']:.0f} s scoring; load {load()})", flush=True)
        table = pd.DataFrame(rows)
        if rows:
            print(f"\nKendall tau vs mean standalone accuracy ({len(gt)} archs; seed-to-seed tau of "
                  f"the ground truth {pair:.3f}):")
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if args.instanas:
            print()
            insta = instanas_bench(supernets["sandwich"], space, data, args, folder)
            print(insta.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"load average after: {load()}")
    if args.csv:
        from spaces.core import atomic_write

        atomic_write(args.csv, gt.to_csv(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
