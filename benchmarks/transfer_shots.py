"""Ablation of the few-shot transfer predictor: which ideas make 10 measurements of a
new device worth what 20 were.

Same data and split as ``predictor_accuracy.py``: HELP's tables imported through the
store; test devices NB201 titan_rtx@b256, gold_6226, fpga, pixel2, raspi4, eyeriss and
FBNet titan_rtx@b64, gold_6226, fpga, pixel2, raspi4, eyeriss (HELP's own FBNet
meta-test devices are fpga, raspi4 and eyeriss: column ``fbnet HELP3``); references
only HELP's meta-train devices. Per row, size and seed: the shots are measured
(looked up), the predictor fitted on them and scored (Spearman) on every *other*
architecture of the table; mean over devices, then over seeds.

Rows (each changes one thing):
* shots: ``random`` (the benchmark's random split), ``HELP fixed`` (HELP's 10
  "hardware embedding" architectures, shared data README; 10 only), ``k-means``
  (pool architectures nearest the k-means centres of the standardised reference
  features), ``maximin`` (greedy farthest point in that space), ``D-optimal``
  (:func:`latency.shots.choose_shots`). Designed shots come from a random pool of
  2,000 architectures of the table drawn with the seed; none looks at the new device.
* model: ``corr@10`` = the one-hot correction from the first measurement (the previous
  default), ``corr@30`` = none below 30 measurements (now), ``LOO-penalty`` = ridge
  penalty per reference proportional to its single-reference leave-one-out error,
  ``LOO-ensemble`` = references blended by their leave-one-out fit instead of a
  joint mixture, ``no corr`` = never a correction.

    python benchmarks/transfer_shots.py                 # 5 seeds, 10 and 20 shots (~8 min)
    python benchmarks/transfer_shots.py --sizes 30,50,90 --rows "random shots"   # the correction
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from scipy.cluster.vq import kmeans2  # noqa: E402
from scipy.optimize import nnls  # noqa: E402

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import predictor_accuracy as pa  # noqa: E402
from latency import metrics  # noqa: E402
from latency.predictors.base import Predictor  # noqa: E402
from latency.predictors.lut import ridge_loo  # noqa: E402
from latency.predictors.transfer import MIX_ALPHAS, TransferPredictor, design_archs  # noqa: E402
from latency.shared_data import data_file  # noqa: E402
from latency.shots import choose_shots, reference_features  # noqa: E402

POOL = 2000
# HELP's fixed hardware-embedding architectures (shared data README, hardware_embedding_index.pt):
# NB201 arch_index, FBNet sample_index.
HELP_FIXED = {"nb201": (11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462),
              "fbnet": (3328, 3790, 3313, 890, 3052, 2538, 1640, 2514, 457, 2100)}
HELP3 = ("fpga", "raspi4", "eyeriss")


class Memo(Predictor):
    """A fitted reference predictor whose predictions are computed once per architecture:
    the same numbers as the predictor itself, so a 10-point fit scored on 15,625
    architectures does not re-run seven MLPs each time."""

    kind = "memo"

    def __init__(self, inner: Predictor) -> None:
        super().__init__(inner.space, seed=inner.seed)
        self.inner, self.device, self.fitted = inner, inner.device, True
        self.cache: dict[Any, float] = {}

    def _predict(self, archs: list) -> np.ndarray:
        missing = [a for a in dict.fromkeys(archs) if a not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner._predict(missing)))
        return np.array([self.cache[a] for a in archs])

    def _fit(self, archs: list, ms: np.ndarray) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


def single_fits(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per reference: slope, intercept and leave-one-out MSE of ``y ~ a + b z_r``."""
    slopes, icepts, errors = [], [], []
    for r in range(z.shape[1]):
        design = np.c_[z[:, r], np.ones(len(y))]
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        hat = design @ np.linalg.pinv(design.T @ design) @ design.T
        loo = (y - design @ coef) / np.clip(1 - np.diag(hat), 1e-9, None)
        slopes.append(coef[0]), icepts.append(coef[1]), errors.append(float(np.mean(loo ** 2)))
    return np.array(slopes), np.array(icepts), np.array(errors)


class LooPenalty(TransferPredictor):
    """Ridge penalty of each reference scaled by its single-reference LOO error (a reference
    that alone explains the shots badly is shrunk harder), averaged with NNLS as usual."""

    def _mix(self, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        errors = single_fits(z, y)[2]
        design = self._features(design_archs(self.space, self.design_size, self.seed))
        mu, sd = design.mean(0), design.std(0) + 1e-9
        w, b, _, _ = ridge_loo((z - mu) / sd, y, MIX_ALPHAS, penalty=errors / errors.min())
        coef, _ = nnls(np.concatenate([z, np.ones((len(y), 1)), -np.ones((len(y), 1))], 1), y)
        return 0.5 * (w / sd + coef[:-2]), float(0.5 * (b - (mu / sd) @ w + coef[-2] - coef[-1]))


class LooEnsemble(TransferPredictor):
    """No joint mixture: each reference fitted alone, blended with weights
    ``exp(1 - e_r / min e)`` of its leave-one-out error."""

    def _mix(self, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        slopes, icepts, errors = single_fits(z, y)
        weights = np.exp(1.0 - errors / errors.min())
        weights /= weights.sum()
        return weights * slopes, float(weights @ icepts)


# ---- shots ---------------------------------------------------------------------------------
def pool_of(table: pa.Table, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(len(table.archs), min(POOL, len(table.archs)),
                                              replace=False)


def standardised(refs: dict, table: pa.Table, pool: np.ndarray) -> np.ndarray:
    feats = reference_features(refs, [table.archs[i] for i in pool])
    return (feats - feats.mean(0)) / (feats.std(0) + 1e-9)


def shots_random(table: pa.Table, refs: dict, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(1000 * seed + size).permutation(len(table.archs))[:size]


def shots_dopt(table: pa.Table, refs: dict, size: int, seed: int) -> np.ndarray:
    pool = pool_of(table, seed)
    index = {a: i for i, a in enumerate(table.archs)}
    return np.array([index[a] for a in choose_shots(table.space, refs, size,
                                                    [table.archs[i] for i in pool], seed=seed)])


def shots_kmeans(table: pa.Table, refs: dict, size: int, seed: int) -> np.ndarray:
    pool = pool_of(table, seed)
    feats = standardised(refs, table, pool)
    centres, _ = kmeans2(feats, size, minit="++", seed=seed, iter=30)
    chosen: list[int] = []
    for centre in centres:
        dist = ((feats - centre) ** 2).sum(1)
        dist[chosen] = np.inf
        chosen.append(int(np.argmin(dist)))
    return pool[chosen]


def shots_maximin(table: pa.Table, refs: dict, size: int, seed: int) -> np.ndarray:
    pool = pool_of(table, seed)
    feats = standardised(refs, table, pool)
    chosen = [int(np.argmin((feats ** 2).sum(1)))]  # start at the most typical network
    dist = ((feats - feats[chosen[0]]) ** 2).sum(1)
    while len(chosen) < size:
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, ((feats - feats[j]) ** 2).sum(1))
    return pool[chosen]


def help_fixed_indices(space_key: str, table: pa.Table) -> np.ndarray:
    column = {"nb201": ("arch_index", "arch_str"), "fbnet": ("sample_index", "op_idx_list")}[space_key]
    raw = pd.read_csv(data_file(pa.TABLES[space_key]), usecols=list(column))
    strings = raw.set_index(column[0]).loc[list(HELP_FIXED[space_key]), column[1]].astype(str)
    index = {s: i for i, s in enumerate(table.strings)}
    return np.array([index[s] for s in strings])


def shots_help(table: pa.Table, refs: dict, size: int, seed: int) -> np.ndarray | None:
    return table.help_fixed if size == len(table.help_fixed) else None


# ---- rows ----------------------------------------------------------------------------------
def corr10(space: Any, refs: dict) -> TransferPredictor:
    return TransferPredictor(space, references=refs, lut_from=0)  # the previous default


def corr30(space: Any, refs: dict) -> TransferPredictor:
    return TransferPredictor(space, references=refs)  # now


def no_corr(space: Any, refs: dict) -> TransferPredictor:
    return TransferPredictor(space, references=refs, correction="none")


Row = tuple[str, Callable, Callable]
ROWS: list[Row] = [
    ("random shots, corr@10 (before)", shots_random, corr10),
    ("random shots, corr@30", shots_random, corr30),
    ("random shots, no corr", shots_random, no_corr),
    ("HELP fixed 10, corr@30", shots_help, corr30),
    ("k-means shots, corr@30", shots_kmeans, corr30),
    ("maximin shots, corr@30", shots_maximin, corr30),
    ("D-optimal shots, corr@10", shots_dopt, corr10),
    ("D-optimal shots, corr@30 (now)", shots_dopt, corr30),
    ("D-optimal + LOO-penalty", shots_dopt, lambda space, refs: LooPenalty(space, references=refs)),
    ("D-optimal + LOO-ensemble", shots_dopt, lambda space, refs: LooEnsemble(space, references=refs)),
    ("random shots + LOO-penalty", shots_random, lambda space, refs: LooPenalty(space, references=refs)),
]


def run(tables: dict, refs: dict, sizes: list[int], seeds: int, rows: list[Row]) -> pd.DataFrame:
    out = []
    for label, shots, make in rows:
        for name, table in tables.items():
            for size in sizes:
                for seed in range(seeds):
                    train = shots(table, refs[name], size, seed)
                    if train is None:
                        continue
                    test = np.setdiff1d(np.arange(len(table.archs)), train)
                    for series in pa.test_series(name):
                        y = table.y(series)
                        tr, te = train[np.isfinite(y[train])], test[np.isfinite(y[test])]
                        pred = make(table.space, refs[name]).fit([table.archs[i] for i in tr], y[tr])
                        guess = pred.predict([table.archs[i] for i in te])
                        out.append({"row": label, "space": name, "device": pa.short(series),
                                    "size": size, "seed": seed,
                                    "spearman": metrics.spearman(guess, y[te])})
        print(f"  done: {label}", flush=True)
    return pd.DataFrame(out)


def summarise(frame: pd.DataFrame, sizes: list[int], chosen: list[Row]) -> pd.DataFrame:
    per = frame.groupby(["row", "space", "size", "device"], sort=False)["spearman"].mean().reset_index()
    rows = []
    for label, *_ in chosen:
        row: dict[str, Any] = {"idea": label}
        for size in sizes:
            sub = per[(per.row == label) & (per["size"] == size)]
            nb = sub[sub.space == "nb201"]
            fb = sub[sub.space == "fbnet"]
            row[f"nb201@{size}"] = nb.spearman.mean() if len(nb) else np.nan
            row[f"fbnet HELP3@{size}"] = fb[fb.device.isin(HELP3)].spearman.mean() if len(fb) else np.nan
            row[f"fbnet all6@{size}"] = fb.spearman.mean() if len(fb) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", default="10,20")
    parser.add_argument("--csv", default=None, help="write every (row, device, size, seed) score here")
    parser.add_argument("--rows", default="", metavar="TEXT",
                        help="only the rows whose label contains TEXT (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    chosen = [row for row in ROWS if args.rows in row[0]]
    if not chosen:
        parser.error(f"no row contains {args.rows!r}")
    started = time.time()
    tables, refs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("nb201", "fbnet"):
            table = pa.load_help(name, Path(tmp) / f"{name}.sqlite")
            table.help_fixed = help_fixed_indices(name, table)
            tables[name] = table
            refs[name] = {k: Memo(p) for k, p in
                          pa.fit_references(table, pa.reference_series(name)).items()}
    frame = run(tables, refs, sizes, args.seeds, chosen)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    table = summarise(frame, sizes, chosen)
    base = table.iloc[0]
    pd.set_option("display.width", 250)
    print(f"\n=== transfer ablation: mean Spearman, {args.seeds} seed(s), test = every other "
          f"architecture; nb201 = HELP's 6 test devices, fbnet HELP3 = fpga/raspi4/eyeriss ===")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\ndifference to the first row:")
    delta = table.set_index("idea").sub(base.drop("idea").astype(float), axis=1)
    print(delta.to_string(float_format=lambda v: f"{v:+.4f}"))
    print(f"\ntotal {time.time() - started:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
