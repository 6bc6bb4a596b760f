"""PARSEC (Casale et al. 2019, "Probabilistic Neural Architecture Search"): a learned
probability distribution over architectures, moved by empirical Bayes.

What the paper does: architectures ``alpha`` have a prior ``p(alpha | pi)``, a
categorical distribution per decision with hyper-parameters ``pi``; each step samples
``K`` architectures from it (only one network is ever held, so memory is that of one
architecture), weighs each by its normalised validation likelihood
``w_k = p(Y | alpha_k) / sum_j p(Y | alpha_j)`` and moves ``pi`` along the Monte-Carlo,
importance-weighted gradient of the marginal likelihood,
``sum_k w_k grad log p(alpha_k | pi)``; the network weights are trained on the sampled
architectures at every step. The search result is the learned distribution (its most
likely architecture, or samples from it).

What is kept here:

* one categorical per decision, parametrised by logits (``pi`` = softmax of the
  logits), starting uniform. The paper's categoricals are independent per decision and
  so are these: no decision is conditioned on another ("dependencies where the paper
  has them": it has none). A space's own rules (``space.is_valid``) restrict the
  distribution by rejection: a draw the space forbids is drawn again;
* ``K = batch_size`` architectures drawn per update (default 8; at least 2, since one
  sample alone has a normalised weight of 1 whatever its score and the update would
  only follow the draw);
* the importance weights are a softmax of the sampled architectures' scores, the
  paper's normalised likelihoods: ``w = softmax(z / temperature)``, where ``z`` are the
  samples' rewards standardised over the batch (minus their mean, over their standard
  deviation; equal rewards give equal weights), because a reward has no natural
  likelihood scale;
* the update is the gradient of the paper, for a softmax-parametrised categorical:
  ``logits[d] += lr * sum_k w_k (onehot(alpha_k[d]) - p[d])``.

What is simplified:

* on an evaluator an architecture's "likelihood" is its reward, not a validation
  likelihood under shared weights. The reward is a quantile among every architecture
  evaluated so far (1 the best, 0 the worst), so that it has one scale whatever the
  metrics: with one searched objective, the quantile of
  :func:`hwnas.rewards.scalariser`'s value (MONAS's constraint form by default, so
  budgets count; ``reward`` picks another form; the objective itself when there is
  neither a budget nor a ``reward``); with several searched objectives a Pareto reward
  -- hwnas's choice, the paper has one objective -- the quantile in NSGA-II's
  constrained order (non-dominated rank, then crowding distance within the front;
  budget breakers after every feasible architecture, by their overshoot, as in
  :mod:`hwnas.strategies.evolution`);
* the joint training of the network weights with the distribution is the one-shot
  supernet's business: :mod:`hwnas.oneshot.parsec_sampler` trains one sampled path
  of a supernet per step and scores the ``K`` samples by their minibatch
  log-likelihood;
* a query is one distinct architecture evaluated: an architecture drawn again keeps
  its known reward (free, the context remembers it) and still counts in the update.
  Once the distribution has concentrated its draws can all be known; after
  ``PATIENCE`` (3) updates in a row with nothing new, each update adds
  ``batch_size // 2`` fresh uniform samples (:meth:`Strategy.fresh_samples`) to its
  ``K`` draws until a draw is new again, so the search always ends. The fresh samples
  enter the update with the draws (they were not drawn from ``p``, so such an update
  is a step towards the better architectures rather than an unbiased gradient; the
  draws, all of the concentrated architecture, keep most of the weight unless a fresh
  sample beats it). ``info["fresh"]`` counts them.

Defaults (``batch_size=8, lr=2.0, temperature=1.0``) were picked on
``benchmarks/search_efficiency.py`` (NB201 tables, accuracy vs latency; 30 seeds): median
HV ratio 0.981 on gold_6226 and 0.993 on fpga after 100 queries (regularized evolution:
0.979 and 0.994), 0.996 on both after 300 (evolution: 0.992 and 0.9985). The first 100
queries are drawn from the distribution (a median of no fresh samples among them); it
has usually concentrated by then, and about 140 of the next 200 (median, 10 seeds) are
fresh samples: past that point the search is mostly uniform sampling. A smaller ``lr``
concentrates later (lr 1: about 50 fresh samples in 300 queries) and found less after
100 queries (0.970 and 0.983). With one objective and a latency budget (MONAS reward) its
regret was no better than random search's.

The learned distribution is :attr:`PARSECStrategy.probs` after the search (a list of
numpy arrays, one per decision), in the result's ``info["probs"]`` (lists) with
``info["most_likely"]``, and :meth:`PARSECStrategy.most_likely` gives the most likely
architecture. Like every strategy here it is anytime (nothing depends on the total
number of queries) and deterministic for a seed.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from hwnas import rewards
from hwnas.strategies.base import BatchCallback, SearchContext, SearchResult, Strategy
from spaces import Arch, Space
from spaces.errors import HwnasError

PATIENCE = 3  # updates in a row that evaluate nothing new before fresh samples fill in
FILL = 0.5    # fresh samples added to a stalled update, as a fraction of batch_size


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    e = np.exp(x - x.max())
    return e / e.sum()


def importance_weights(scores: Sequence[float], temperature: float = 1.0,
                       standardise: bool = True) -> np.ndarray:
    """The normalised weights ``softmax(z / temperature)`` of ``scores`` (higher is
    better); ``z`` are the scores standardised over the batch when ``standardise``
    (equal scores: equal weights), the scores themselves otherwise (log-likelihoods)."""
    z = np.asarray(scores, dtype=float)
    if standardise:
        spread = z.std()
        z = (z - z.mean()) / spread if spread > 1e-12 else np.zeros_like(z)
    return softmax(z / float(temperature))


class Categoricals:
    """Independent categorical distributions, one per decision of ``space``, as logits
    (all zero: uniform). Shared by the PARSEC strategy and the PARSEC supernet sampler."""

    def __init__(self, space: Space, logits: Sequence[Sequence[float]] | None = None) -> None:
        self.space = space
        self.logits = [np.zeros(len(d)) for d in space.decisions]
        if logits is not None:
            self.load(logits)

    def load(self, logits: Sequence[Sequence[float]]) -> None:
        sizes = [len(d) for d in self.space.decisions]
        if len(logits) != len(sizes) or any(len(row) != n for row, n in zip(logits, sizes)):
            raise HwnasError(f"the PARSEC logits do not fit the {self.space.name} space's "
                             f"{len(sizes)} decisions")
        self.logits = [np.asarray(row, dtype=float).copy() for row in logits]

    @property
    def probs(self) -> list[np.ndarray]:
        return [softmax(row) for row in self.logits]

    def draw(self, rng: np.random.Generator, tries: int = 1000) -> Arch:
        """One architecture drawn from the distribution, redrawn while the space forbids
        it (after ``tries`` forbidden draws, a uniform valid sample)."""
        probs = self.probs
        for _ in range(tries):
            choices = tuple(int(rng.choice(len(p), p=p)) if len(p) > 1 else 0 for p in probs)
            arch = Arch(self.space.key, choices)
            if self.space.is_valid(arch):
                return arch
        return self.space.sample(rng)

    def log_prob(self, arch: Arch) -> float:
        return float(sum(math.log(max(p[c], 1e-300)) for p, c in zip(self.probs, arch.choices)))

    def update(self, archs: Sequence[Arch], weights: Sequence[float], lr: float) -> None:
        """``logits[d] += lr * sum_k w_k (onehot(archs[k][d]) - p[d])``: the gradient of
        ``sum_k w_k log p(archs[k])`` (the paper's importance-weighted estimate)."""
        w = np.asarray(weights, dtype=float)
        total = float(w.sum())
        for d, (logit, p) in enumerate(zip(self.logits, self.probs)):
            grad = -total * p
            for a, wk in zip(archs, w):
                grad[a.choices[d]] += wk
            logit += lr * grad
            logit -= logit.max()  # same distribution, bounded numbers

    def most_likely(self, candidates: Sequence[Arch] = ()) -> Arch:
        """The most probable option of every decision; if the space forbids that
        combination, the most probable of ``candidates`` (else a uniform sample)."""
        arch = Arch(self.space.key, tuple(int(np.argmax(row)) for row in self.logits))
        if self.space.is_valid(arch):
            return arch
        valid = [a for a in candidates if self.space.is_valid(a)]
        if valid:
            return max(valid, key=self.log_prob)
        return self.space.sample(0)


def _quantiles(values: np.ndarray) -> np.ndarray:
    """Each value's quantile among ``values`` (ties share their mean rank): 0 the
    smallest, 1 the largest."""
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return np.ones(len(values))
    return (rankdata(values) - 1.0) / (len(values) - 1)


def _check_positive(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise HwnasError(f"the PARSEC {name} must be a positive number, got {value!r}")
    return number


class PARSECStrategy(Strategy):
    name = "parsec"

    def __init__(self, seed: int = 0, batch_size: int = 8, lr: float = 2.0,
                 temperature: float = 1.0, reward: str | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 2:
            raise HwnasError(f"PARSEC needs a batch size of at least 2 samples per update "
                             f"(their scores are weighed against each other), got {batch_size!r}")
        super().__init__(seed, batch_size)
        self.lr = _check_positive("learning rate", lr)
        self.temperature = _check_positive("temperature", temperature)
        if reward is not None and reward not in rewards.REWARDS:
            raise HwnasError(f"unknown reward {reward!r}; known: {', '.join(rewards.REWARDS)}")
        self.reward = reward
        self.dist: Categoricals | None = None
        self.updates = self.filled = 0
        self._drawn: dict[Arch, None] = {}
        self._cache: tuple[tuple[int, int], dict[Arch, float]] | None = None

    def options(self) -> dict[str, Any]:
        return {**super().options(), "lr": self.lr, "temperature": self.temperature,
                "reward": self.reward}

    # ---- the learned distribution -----------------------------------------------------
    @property
    def probs(self) -> list[np.ndarray] | None:
        """The probability of every option, one array per decision (None before a search)."""
        return None if self.dist is None else self.dist.probs

    def most_likely(self) -> Arch:
        """The most likely architecture under the learned distribution."""
        if self.dist is None:
            raise HwnasError("PARSEC has no learned distribution before a search has run")
        return self.dist.most_likely(list(self._drawn))

    def run(self, space: Space, evaluator: Any, objectives: Sequence, n_queries: int, *,
            progress: bool = False, on_batch: BatchCallback | None = None) -> SearchResult:
        result = super().run(space, evaluator, objectives, n_queries, progress=progress,
                             on_batch=on_batch)
        if self.dist is not None:
            result.info["probs"] = [p.tolist() for p in self.dist.probs]
            result.info["most_likely"] = space.to_string(self.most_likely())
            result.info["updates"] = self.updates
            result.info["fresh"] = self.filled
        return result

    # ---- rewards ------------------------------------------------------------------------
    def _scores(self, ctx: SearchContext, archs: Sequence[Arch]) -> np.ndarray:
        """Reward of each of ``archs`` (all evaluated) as its quantile among every
        architecture evaluated so far: 1 the best, 0 the worst (higher is better);
        computed again only when something new has been evaluated."""
        if self._cache is None or self._cache[0] != (id(ctx), ctx.used):
            known, quantile = self._quantiles(ctx)
            self._cache = ((id(ctx), ctx.used), {a: float(q) for a, q in zip(known, quantile)})
        where = self._cache[1]
        return np.array([where[a] for a in archs])

    def _quantiles(self, ctx: SearchContext) -> tuple[list[Arch], np.ndarray]:
        known, F = ctx.evaluated()
        if len(ctx.searched) == 1:
            metrics = {o.name: np.array([ctx.metrics_of(a)[o.name] for a in known], dtype=float)
                       for o in ctx.objectives}
            has_budget = any(o.budget is not None for o in ctx.objectives)
            if has_budget or self.reward:
                reward = rewards.scalariser(ctx.objectives, self.reward or "monas")(metrics)
            else:
                reward = -ctx.searched[0].to_min(metrics[ctx.searched[0].name])
            quantile = _quantiles(reward)
        else:
            quantile = self._pareto_quantiles(ctx, known, F)
        return known, quantile

    @staticmethod
    def _pareto_quantiles(ctx: SearchContext, known: list[Arch], F: np.ndarray) -> np.ndarray:
        """Every evaluated architecture's place in NSGA-II's constrained order (rank, then
        crowding, budget breakers last by overshoot) as a reward: 1 best, 0 worst."""
        n = len(known)
        if n == 1:
            return np.ones(1)
        rank, crowd = ctx.constrained_rank(known, F)
        order = np.lexsort((-crowd, rank))  # primary key: rank; then larger crowding first
        quantile = np.empty(n)
        quantile[order] = 1.0 - np.arange(n) / (n - 1)
        return quantile

    # ---- loop ---------------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> None:
        self.dist, self.updates, self.filled, self._drawn = Categoricals(ctx.space), 0, 0, {}
        self._cache = None
        stalled = 0
        while not ctx.done:
            batch = [self.dist.draw(ctx.rng) for _ in range(self.batch_size)]
            self._drawn.update(dict.fromkeys(batch))
            if all(ctx.is_known(a) for a in batch):
                stalled += 1
                if stalled >= PATIENCE:  # concentrated: fresh samples join the known draws
                    fresh = self.fresh_samples(ctx, min(max(1, int(self.batch_size * FILL)),
                                                        ctx.remaining))
                    if not fresh:
                        return
                    batch = batch + fresh
                    self.filled += len(fresh)
            else:
                stalled = 0
            got = ctx.evaluate(batch)
            archs = [a for a, _ in got]
            if not archs:
                return
            weights = importance_weights(self._scores(ctx, archs), self.temperature)
            self.dist.update(archs, weights, self.lr)
            self.updates += 1
