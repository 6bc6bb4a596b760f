"""ENAS (Pham et al. 2018) as a supernet sampler: the controller and the shared weights
trained alternately.

ENAS's schedule: the shared weights train for a while on architectures *sampled from
the controller's policy* (one per step), then the weights are frozen and the controller
trains with REINFORCE, its reward the accuracy of a sampled architecture on one
validation minibatch with the shared weights; repeat. :class:`EnasSampler` is that
schedule inside :func:`~hwnas.oneshot.training.train_supernet`: every
``controller_every`` optimiser steps it runs ``controller_steps`` REINFORCE updates of
``controller_batch`` architectures each, then plans the next weight step with an
architecture drawn from the updated policy. So checkpoints, an exact resume after a kill
(the controller, its optimiser, baseline and memory buffer are in the sampler state) and
data-parallel training come from the trainer unchanged.

Kept: alternating training, one architecture per weight step drawn from the policy,
minibatch validation accuracy as the reward, a moving-average baseline, the entropy
bonus, Adam for the controller. Simplified: the phases are counted in steps rather than
epochs (ENAS: one epoch of weights, 2000 controller steps on CIFAR-10 -- far too many
at the embedded scale), and the reward's BN uses the minibatch's statistics (running
statistics restored afterwards), as one-shot evaluation with shared weights does.
``memory_buffer`` adds the fix of "Understanding Neural Architecture Search Techniques"
(:mod:`hwnas.controllers.reinforce`). The trained controller is kept in the checkpoint;
the ``enas`` strategy derives architectures from it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from hwnas.controllers import LSTMController, Reinforce
from hwnas.oneshot.base import OneShotSupernet
from hwnas.oneshot.evaluate import shared_weight_accuracy
from hwnas.oneshot.samplers import SAMPLERS, Batch, Sampler, Step
from spaces import Arch
from spaces.core.errors import InvalidOption

log = logging.getLogger(__name__)


def _torch_generator(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


@SAMPLERS.register("enas")
class EnasSampler(Sampler):
    """See the module docstring."""

    def __init__(self, supernet: OneShotSupernet, controller_every: int = 50,
                 controller_steps: int = 10, controller_batch: int = 4, reward_batch: int = 128,
                 hidden: int = 64, lr: float = 0.0035, entropy_weight: float = 1e-4,
                 memory_buffer: int | None = None) -> None:
        super().__init__(supernet)
        for name, value, least in (("controller_every", controller_every, 1),
                                   ("controller_steps", controller_steps, 1),
                                   ("controller_batch", controller_batch, 1),
                                   ("reward_batch", reward_batch, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidOption(f"ENAS's {name} must be a whole number of at least {least}, "
                                    f"got {value!r}")
        self.controller_every, self.controller_steps = controller_every, controller_steps
        self.controller_batch, self.reward_batch = controller_batch, reward_batch
        self.controller = LSTMController(self.space, hidden=hidden)
        self.trainer = Reinforce(self.controller, lr=lr, entropy_weight=entropy_weight,
                                 memory_buffer=memory_buffer)
        self._options = {"controller_every": controller_every, "controller_steps": controller_steps,
                         "controller_batch": controller_batch, "reward_batch": reward_batch,
                         "hidden": hidden, "lr": lr, "entropy_weight": entropy_weight,
                         "memory_buffer": memory_buffer}
        self._val: tuple[torch.Tensor, torch.Tensor] | None = None
        self.phases = 0
        self.history: list[dict[str, float]] = []

    def bind(self, data: Any) -> None:
        self._val = (data.x_val, data.y_val)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self._options}

    # -- the two phases -------------------------------------------------------------------------
    def minibatch_accuracy(self, archs: list[Arch], rng: np.random.Generator) -> np.ndarray:
        """Each architecture's accuracy (fraction) on one validation minibatch with the
        shared weights, BN running statistics left as they were: ENAS's reward."""
        if self._val is None:
            raise InvalidOption("the ENAS sampler needs validation data for its reward: "
                                "train_supernet binds it")
        x_val, y_val = self._val
        idx = torch.as_tensor(rng.choice(len(y_val), size=min(self.reward_batch, len(y_val)),
                                         replace=False))
        return shared_weight_accuracy(self.supernet, archs, x_val[idx], y_val[idx])

    def train_controller(self, rng: np.random.Generator) -> dict[str, float]:
        """``controller_steps`` REINFORCE updates on the frozen shared weights."""
        info: dict[str, float] = {}
        for _ in range(self.controller_steps):
            archs = self.controller.sample(self.controller_batch, _torch_generator(rng)).archs
            info = self.trainer.update(archs, self.minibatch_accuracy(archs, rng), rng)
        self.phases += 1
        self.history.append({"phase": float(self.phases), **info})
        log.debug("ENAS controller phase %d: %s", self.phases, info)
        return info

    def plan(self, step: int, total_steps: int, rng: np.random.Generator,
             batch: Batch | None = None) -> list[Step]:
        if step > 0 and step % self.controller_every == 0:
            self.train_controller(rng)
        return [Step(arch=self.controller.sample(1, _torch_generator(rng)).archs[0])]

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"reinforce": self.trainer.state_dict(), "phases": self.phases,
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.trainer.load_state_dict(state["reinforce"])
        self.phases = int(state["phases"])
        self.history = list(state.get("history", []))


def controller_from_checkpoint(path: str, supernet: OneShotSupernet) -> EnasSampler | None:
    """The ENAS sampler (its trained controller) stored in a supernet checkpoint, or None
    when the supernet was trained with another sampler."""
    from hwnas.oneshot.checkpoint import load_checkpoint

    meta, state = load_checkpoint(path, map_location="cpu")
    described = meta.get("sampler")
    if not isinstance(described, dict) or described.get("name") != "enas":
        return None
    options = {k: v for k, v in described.items() if k != "name"}
    sampler = EnasSampler(supernet, **options)
    sampler.load_state_dict(state.get("sampler", {}))
    return sampler


__all__ = ["EnasSampler", "controller_from_checkpoint"]
