"""Checks of the NAO engine (hwnas.strategies.nao), printed as tables.

1. Reconstruction, per space: a NAO search is run (NB201: the tabular
   evaluator, CIFAR-10 accuracy + gold_6226 latency; fbnet, fbnetv2, nao: a
   synthetic evaluator, see ``SyntheticEvaluator``) until its controller's
   last training round is on 100 seen architectures; the share of them that
   decode back exactly is reported, and for scale the share of unseen random
   architectures that do (the autoencoder's generalisation, no target).
2. Latency head, per space: the controller is trained as a search trains it
   (initial round, same options) on 100 random architectures, and the
   Spearman rank correlation of the cost head on held-out ones is reported.
   NB201 and FBNet use the HELP tables' gold_6226 latencies; fbnetv2 and nao
   have no latency table, so MACs (counted on the built network) stand in
   for latency there, as the output says. For scale, the Spearman of a ridge
   regression on one-hot choices with the same split is printed beside it.
3. Budget sweep, NB201: from the 20 most accurate of 100 trained-on
   architectures, embeddings move up ``acc - penalty * hinge(lat, T)`` for
   several budgets T; the mean *true* (table) latency and accuracy of the
   decoded architectures is reported per budget, with the strategy's default
   (``walk``: a new arch counts once its predicted latency meets T) and with
   NAO's rule (the first new arch along the step).
4. Optional (``--efficiency-seeds N``): benchmarks/search_efficiency.py with
   nao and evolution only, into benchmarks/results/nao_checks/ (a quick
   comparison while tuning; the full table is search_efficiency.py's own).

Usage:  python benchmarks/nao_checks.py [--quick] [--efficiency-seeds 30]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

import spaces
from hwnas.evaluators.base import Evaluator
from hwnas.objectives import parse_objectives
from hwnas.strategies.nao import NAOModel, NAOStrategy, make_score, make_overshoot, propose
from hwnas.strategies.nao.data import Scaler, token_matrix
from spaces import Arch, Space

SPACES = ("nb201", "fbnet", "fbnetv2", "nao")
DEVICE = "gold_6226"


class SyntheticEvaluator(Evaluator):
    """Accuracy and latency for spaces without tables: fixed random functions of the choices.

    Latency is additive (a positive cost per decision and option, as a lookup
    table would be); accuracy is an additive term plus pairwise interactions
    between neighbouring decisions, squashed into 10..95 %. Both are fixed
    by ``seed``, so every run sees the same "benchmark"."""

    name = "synthetic"

    def __init__(self, space: Space, metrics: Sequence[str] = ("accuracy", "latency_ms"),
                 seed: int = 0) -> None:
        super().__init__(space, metrics)
        rng = np.random.default_rng(seed)
        self._cost = rng.uniform(0.05, 1.0, space.num_options)
        self._gain = rng.normal(0.0, 1.0, space.num_options)
        self._pair = rng.normal(0.0, 0.5, (len(space.decisions), space.num_options))

    def supported_metrics(self) -> tuple[str, ...]:
        return ("accuracy", "latency_ms")

    def _evaluate_many(self, archs: list[Arch]) -> list[dict[str, float]]:
        out = []
        for a in archs:
            t = np.array(self.space.tokens(a))
            score = self._gain[t].sum() + sum(self._pair[i, t[i + 1]] * (self._gain[t[i]] > 0)
                                              for i in range(len(t) - 1))
            score /= np.sqrt(len(t))
            out.append({"accuracy": 10.0 + 85.0 / (1.0 + np.exp(-score)),
                        "latency_ms": float(self._cost[t].sum())})
        return out


def _tabular(space: Space):
    from hwnas.evaluators.latency_sources import TableLatency
    from hwnas.evaluators.tabular import TabularEvaluator

    return TabularEvaluator(space, ["accuracy", "latency_ms"], latency=TableLatency(space, DEVICE))


def _exact(model: NAOModel, space: Space, archs: list[Arch]) -> float:
    tokens = token_matrix(space, archs)
    return float((model.reconstruct(tokens) == tokens).all(dim=1).float().mean())


def _train_as_search(model: NAOModel, space: Space, archs: list[Arch], y: np.ndarray,
                     d: NAOStrategy) -> None:
    """A search's first training round: ``init_epochs``, then more rounds of ``epochs``
    until ``exact`` of ``archs`` decode back (at most ``extra_epochs`` more)."""
    tokens, fit = token_matrix(space, archs), dict(
        lr=d.lr, generator=torch.Generator().manual_seed(0),
        unlabeled=token_matrix(space, space.sample_many(d.unlabeled, 1)))
    model.fit(tokens, y, d.init_epochs, (d.lam, d.mu), **fit)
    model.fit_until_exact(tokens, y, d.epochs, (d.lam, d.mu), d.exact, d.extra_epochs, **fit)


# ---- 1. reconstruction -------------------------------------------------------------------

def check_reconstruction(queries: int, unseen: int = 500) -> pd.DataFrame:
    """The search runs ``queries + batch_size`` queries, so its last training round is
    on exactly ``queries`` seen architectures (anytime: the same controller a
    ``queries`` run would train next)."""
    rows = []
    objectives = parse_objectives(["accuracy", "latency_ms"])
    for name in SPACES:
        space = spaces.get(name)
        ev = _tabular(space) if name == "nb201" else SyntheticEvaluator(space)
        strategy = NAOStrategy(seed=0)
        start = time.perf_counter()
        strategy.run(space, ev, objectives, queries + strategy.batch_size)
        seconds = time.perf_counter() - start
        model, trained = strategy.model, strategy.trained_on
        others = [a for a in space.sample_many(unseen, 11) if a not in set(trained)]
        rows.append({"space": name, "evaluator": ev.name, "tokens": len(space.decisions),
                     "trained on": len(trained), "exact": f"{100 * _exact(model, space, trained):.1f}%",
                     "unseen random": len(others),
                     "exact (unseen)": f"{100 * _exact(model, space, others):.1f}%",
                     "search s": f"{seconds:.1f}"})
        print(f"  reconstruction {name}: {rows[-1]}", file=sys.stderr)
    return pd.DataFrame(rows)


# ---- 2. latency head ---------------------------------------------------------------------

def _latency_data(name: str, space: Space, n_train: int, n_test: int, seed: int = 0):
    """(archs, latency-or-stand-in, what it is) for the latency head check."""
    from latency.shared_data import HELP_FBNET_LATENCY, data_file

    if name == "nb201":
        archs = space.sample_many(n_train + n_test, seed)
        return archs, _tabular(space).latency.latency_ms(archs), f"{DEVICE} latency (HELP table)"
    if name == "fbnet":
        table = pd.read_csv(data_file(HELP_FBNET_LATENCY), usecols=["op_idx_list", DEVICE])
        rows = table.sample(n_train + n_test, random_state=seed)
        archs = [space.from_string(s) for s in rows["op_idx_list"]]
        return archs, rows[DEVICE].to_numpy(float), f"{DEVICE} latency (HELP table)"
    archs = space.sample_many(n_train + n_test, seed)
    return archs, np.array([space.cost(a).macs for a in archs], float), "MACs (stand-in: no latency table)"


def _ridge_spearman(space: Space, train: list[Arch], test: list[Arch], cost: np.ndarray) -> float:
    """Spearman of a ridge regression of log cost on one-hot choices (same split): a
    reference for how hard the target is with this many samples, not a NAO figure."""
    from sklearn.linear_model import RidgeCV

    def onehot(archs: list[Arch]) -> np.ndarray:
        x = np.zeros((len(archs), space.num_options))
        for row, a in enumerate(archs):
            x[row, space.tokens(a)] = 1.0
        return x

    y = np.log(cost)
    fit = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(onehot(train), y[:len(train)])
    return float(spearmanr(fit.predict(onehot(test)), y[len(train):])[0])


def check_latency_head(n_train: int, n_test: dict[str, int]) -> pd.DataFrame:
    rows = []
    defaults = NAOStrategy()
    for name in SPACES:
        space = spaces.get(name)
        archs, cost, what = _latency_data(name, space, n_train, n_test[name])
        quality = pd.DataFrame(SyntheticEvaluator(space).evaluate_many(archs))["accuracy"].to_numpy()
        if name == "nb201":
            quality = np.array([m["accuracy"] for m in _tabular(space).evaluate_many(archs)])
        train, test = slice(0, n_train), slice(n_train, None)
        sq, sc = Scaler.fit(quality[train], log=False), Scaler.fit(cost[train], log=True)
        y = np.column_stack([sq.transform(quality[train]), sc.transform(cost[train])])
        torch.manual_seed(0)
        model = NAOModel.for_space(space, 2, defaults.hidden)
        _train_as_search(model, space, archs[train], y, defaults)
        pred = model.predict(token_matrix(space, archs[test])).numpy()
        rows.append({"space": name, "target": what, "train": n_train, "held out": len(archs[test]),
                     "Spearman cost head": f"{spearmanr(pred[:, 1], cost[test])[0]:.3f}",
                     "(ridge on one-hot)": f"{_ridge_spearman(space, archs[train], archs[test], cost):.3f}",
                     "Spearman quality head": f"{spearmanr(pred[:, 0], quality[test])[0]:.3f}",
                     "quality": "NB201 CIFAR-10 acc" if name == "nb201" else "synthetic"})
        print(f"  latency head {name}: {rows[-1]}", file=sys.stderr)
    return pd.DataFrame(rows)


# ---- 3. budget sweep ---------------------------------------------------------------------

def check_budget_sweep(n_train: int = 100, n_seeds: int = 20, walk: bool = True) -> pd.DataFrame:
    """``walk``: the strategy's default (a new arch counts once its predicted latency meets
    the budget); False: NAO's rule (the first new arch along the step)."""
    space = spaces.get("nb201")
    ev = _tabular(space)
    archs = space.sample_many(n_train, 7)
    m = pd.DataFrame(ev.evaluate_many(archs))
    sq = Scaler.fit(m["accuracy"].to_numpy(), log=False)
    sc = Scaler.fit(m["latency_ms"].to_numpy(), log=True)
    y = np.column_stack([sq.transform(m["accuracy"]), sc.transform(m["latency_ms"])])
    d = NAOStrategy()
    torch.manual_seed(0)
    model = NAOModel.for_space(space, 2, d.hidden)
    _train_as_search(model, space, archs, y, d)
    seeds = [archs[i] for i in np.argsort(-m["accuracy"].to_numpy())[:n_seeds]]
    seed_m = pd.DataFrame(ev.evaluate_many(seeds))
    rows = [{"budget ms": "(seeds)", "decoded": len(seeds),
             "mean true latency ms": f"{seed_m['latency_ms'].mean():.2f}",
             "mean true accuracy": f"{seed_m['accuracy'].mean():.2f}", "within budget": "-"}]
    budgets = np.quantile(m["latency_ms"], [0.05, 0.25, 0.5, 0.75, 0.95])
    for T in budgets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = make_score(0, 1, sc, float(T), d.penalty, "hinge")
        checks = [make_overshoot(1, sc, float(T)) if walk else None] * len(seeds)
        props = propose(model, space, seeds, score, set(archs), d.eta, d.max_steps, 1, checks)
        got = pd.DataFrame(ev.evaluate_many([p.arch for p in props]))
        rows.append({"budget ms": f"{T:.2f}", "decoded": len(props),
                     "mean true latency ms": f"{got['latency_ms'].mean():.2f}",
                     "mean true accuracy": f"{got['accuracy'].mean():.2f}",
                     "within budget": f"{100 * (got['latency_ms'] <= T).mean():.0f}%"})
    return pd.DataFrame(rows)


# ---- 4. search efficiency ----------------------------------------------------------------

def run_search_efficiency(seeds: int, jobs: int, queries: str = "100,300") -> None:
    sys.path.insert(0, "benchmarks")
    import search_efficiency

    search_efficiency.main(["--seeds", str(seeds), "--strategies", "nao,evolution", "--queries", queries,
                            "--jobs", str(jobs), "--out", "benchmarks/results/nao_checks"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer held-out archs (MACs are slow)")
    parser.add_argument("--efficiency-seeds", type=int, default=0)
    parser.add_argument("--efficiency-queries", default="100,300")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)

    print("1. Reconstruction: a NAO search's controller after training on 100 seen archs "
          "(default options, seed 0)")
    print(check_reconstruction(100).to_string(index=False))
    held = {"nb201": 1000, "fbnet": 1000, "fbnetv2": 100 if args.quick else 300,
            "nao": 50 if args.quick else 150}
    print("\n2. Cost head: Spearman on held-out architectures (trained on 100, one search round)")
    print(check_latency_head(100, held).to_string(index=False))
    print(f"\n3. NB201, {DEVICE}: budget -> decoded architectures (20 most accurate of 100 as seeds, "
          f"hinge loss, penalty {NAOStrategy().penalty:g})")
    print("  a new arch counts once its predicted latency meets the budget (the default, walk):")
    print(check_budget_sweep().to_string(index=False))
    print("  NAO's rule, the first new arch along the step (walk=False):")
    print(check_budget_sweep(walk=False).to_string(index=False))
    if args.efficiency_seeds:
        print("\n4. Search efficiency (benchmarks/search_efficiency.py, nao vs evolution)")
        run_search_efficiency(args.efficiency_seeds, args.jobs, args.efficiency_queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
