"""ENAS (Pham et al. 2018), its derivation stage, as the ``enas`` strategy.

ENAS trains its controller and the shared weights together; in hwnas that is the
supernet's training with the ``enas`` sampler (:mod:`hwnas.oneshot.enas`:
``hwnas supernet train --sampler enas [--memory-buffer N]``), which stores the trained
controller in the checkpoint. This strategy is what ENAS does afterwards: sample
architectures from that controller and keep the best by validation accuracy with the
shared weights. Here every sampled architecture is one query of the one-shot
evaluator (inherited accuracy after BN recalibration, and the run's latency), and the
controller keeps learning from those results with REINFORCE and the run's reward (the
``rl`` strategy's loop, MONAS's rewards under the budgets), so the choice is
hardware-aware even though the controller was trained on accuracy alone.

Refused, in one sentence: an evaluator without a supernet, and a checkpoint trained
with another sampler (it holds no controller; ``rl`` trains one from scratch on the
same evaluator). ``--memory-buffer`` and ``--entropy-weight`` are the checkpoint's
(ENAS's training is where they matter); giving other values here is refused.
"""

from __future__ import annotations

from typing import Any

from hwnas.oneshot.enas import controller_from_checkpoint
from hwnas.strategies.base import SearchContext
from hwnas.strategies.rl import RLStrategy
from hwnas.strategies.shared_weights import supernet_and_data, unwrapped
from spaces.errors import HwnasError


class EnasStrategy(RLStrategy):
    """Samples from the controller ENAS trained with the shared weights; see the module."""

    name = "enas"

    def __init__(self, seed: int = 0, batch_size: int = 5, reward: str | None = None,
                 memory_buffer: int | None = None, entropy_weight: float | None = None) -> None:
        super().__init__(seed=seed, batch_size=batch_size, reward=reward)
        self.memory_buffer, self.wanted_entropy_weight = memory_buffer, entropy_weight

    def options(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.batch_size, "reward": self.reward,
                "memory_buffer": self.memory_buffer, "entropy_weight": self.wanted_entropy_weight}

    def check_evaluator(self, evaluator: Any) -> None:
        """Refuse, before a run folder is written, an evaluator without an ENAS controller."""
        self._stored_controller(evaluator)

    def make_controller(self, ctx: SearchContext):
        sampler = self._stored_controller(ctx.evaluator)
        return sampler.controller, sampler.trainer

    def _stored_controller(self, evaluator: Any):
        supernet, _ = supernet_and_data(evaluator, self.name)
        checkpoint = getattr(unwrapped(evaluator), "checkpoint", None)
        sampler = controller_from_checkpoint(checkpoint, supernet) if checkpoint else None
        if sampler is None:
            raise HwnasError(f"strategy 'enas' samples from the controller ENAS trains with the "
                             f"shared weights, and {checkpoint or 'this supernet'} holds none: "
                             f"train it with hwnas supernet train --sampler enas (or search this "
                             f"supernet with --strategy rl, which trains a controller here)")
        stored = sampler.describe()
        for option, wanted in (("memory_buffer", self.memory_buffer),
                               ("entropy_weight", self.wanted_entropy_weight)):
            if wanted is not None and wanted != stored.get(option):
                flag = "--" + option.replace("_", "-")
                had = f"with {flag} {stored[option]}" if stored.get(option) is not None \
                    else f"without {flag}"
                raise HwnasError(f"the controller in {checkpoint} was trained {had}; leave the "
                                 f"option out or train another supernet with {flag} {wanted}")
        return sampler


__all__ = ["EnasStrategy"]
