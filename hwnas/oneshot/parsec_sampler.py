"""PARSEC's joint training (Casale et al. 2019, "Probabilistic Neural Architecture
Search") as a supernet sampler: each step trains one architecture drawn from a learned
distribution, and the distribution follows the architectures that fit the data.

What the paper does: a categorical distribution per decision, ``p(alpha | pi)``; at each
step ``K`` architectures are sampled, the network weights are trained on the sampled
architecture (only one is ever held, so memory is that of a single architecture), and
the hyper-parameters ``pi`` move along the Monte-Carlo, importance-weighted gradient of
the marginal likelihood ``sum_k w_k grad log p(alpha_k | pi)``, each sample weighted by
its normalised likelihood on the data ``w_k = p(Y | X, alpha_k) / sum_j p(Y | X, alpha_j)``.

What is kept (registered as ``"parsec"`` in :data:`~hwnas.oneshot.samplers.SAMPLERS`
when this module is imported):

* one categorical per decision, as logits starting uniform; independent per decision,
  as in the paper (:class:`hwnas.strategies.parsec.Categoricals`, shared with the
  ``parsec`` search strategy); a draw the space forbids is drawn again;
* every step trains ONE architecture drawn from the current distribution: the plan is a
  single :class:`~hwnas.oneshot.samplers.Step`, so training memory is that of one path;
* every ``update_every`` steps, before the draw, ``samples`` (``K``) architectures are
  drawn and scored by their log-likelihood on the step's own minibatch, the mean
  negative cross-entropy per image, computed without gradients in train mode with every
  batch-norm statistic restored afterwards
  (:func:`~hwnas.oneshot.samplers.minibatch_losses`, averaged over the ranks of a
  data-parallel run so every rank moves alike); the weights are
  ``softmax(log-likelihood / temperature)`` -- the paper's normalised likelihoods, with
  a temperature because the per-image mean is the paper's batch log-likelihood divided
  by the batch size -- and the logits move by
  ``lr * sum_k w_k (onehot(alpha_k) - p)``.

What is simplified: plain gradient steps on the logits (no optimiser state); the
weights are trained on one architecture drawn after the update, by the trainer's usual
label loss, not on the ``K`` scored ones; the samples are scored on the training
minibatch itself (no held-out split). Defaults: ``samples=4``, ``update_every=1``,
``lr=0.05``, ``temperature=0.05`` (a loss gap of 0.05 nats between two samples is a
weight ratio of e); each update costs ``K`` forward passes without gradients.

All randomness comes from the ``rng`` the trainer passes for the step (seeded by
``(seed, step)``); the logits and counters are the sampler's state (in every
checkpoint), so a resumed training equals an uninterrupted one. The learned distribution
is :attr:`PARSECSampler.probs`; :meth:`PARSECSampler.most_likely` gives its mode.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwnas.oneshot.base import OneShotSupernet
from hwnas.oneshot.samplers import SAMPLERS, Batch, Sampler, Step, minibatch_losses
from hwnas.strategies.parsec import Categoricals, importance_weights
from spaces import Arch
from spaces.core.errors import InvalidOption


def _whole(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise InvalidOption(f"the PARSEC sampler's {name} must be a whole number of at least "
                            f"{least}, got {value!r}")
    return int(value)


def _positive(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise InvalidOption(f"the PARSEC sampler's {name} must be a positive number, "
                            f"got {value!r}")
    return number


@SAMPLERS.register("parsec")
class PARSECSampler(Sampler):
    """PARSEC (Casale et al. 2019): one architecture per step drawn from learned
    per-decision categoricals, moved every ``update_every`` steps by the
    importance-weighted gradient of ``samples`` draws scored by their minibatch
    log-likelihood (see the module docstring)."""

    def __init__(self, supernet: OneShotSupernet, samples: int = 4, update_every: int = 1,
                 lr: float = 0.05, temperature: float = 0.05) -> None:
        self.samples = _whole("number of samples per update", samples, 2)
        self.update_every = _whole("update interval (update_every)", update_every, 1)
        self.lr = _positive("learning rate", lr)
        self.temperature = _positive("temperature", temperature)
        super().__init__(supernet)
        self.dist = Categoricals(self.space)
        self.updates = 0   # logit updates done
        self.steps = 0     # steps planned
        self.last_weights: list[float] = []

    @property
    def probs(self) -> list[np.ndarray]:
        """The probability of every option, one array per decision."""
        return self.dist.probs

    def most_likely(self) -> Arch:
        """The most likely architecture under the learned distribution."""
        return self.dist.most_likely()

    def update(self, rng: np.random.Generator, batch: Batch) -> None:
        """Draw ``samples`` architectures, weigh them by their normalised minibatch
        likelihood and move the logits by the importance-weighted gradient."""
        archs = [self.dist.draw(rng) for _ in range(self.samples)]
        loglik = -minibatch_losses(self.supernet, archs, batch)
        weights = importance_weights(loglik, self.temperature, standardise=False)
        self.dist.update(archs, weights, self.lr)
        self.last_weights = [float(w) for w in weights]
        self.updates += 1

    def plan(self, step: int, total_steps: int, rng: np.random.Generator,
             batch: Batch | None = None) -> list[Step]:
        if step % self.update_every == 0:
            if batch is None:
                raise InvalidOption("the PARSEC sampler scores its samples on the minibatch; "
                                    "the trainer must pass it")
            self.update(rng, batch)
        self.steps += 1
        return [Step(arch=self.dist.draw(rng))]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "samples": self.samples, "update_every": self.update_every,
                "lr": self.lr, "temperature": self.temperature}

    def state_dict(self) -> dict[str, Any]:
        return {"logits": [[float(v) for v in row] for row in self.dist.logits],
                "updates": self.updates, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "logits" in state:
            self.dist.load(state["logits"])
        self.updates = int(state.get("updates", self.updates))
        self.steps = int(state.get("steps", self.steps))


__all__ = ["PARSECSampler"]
