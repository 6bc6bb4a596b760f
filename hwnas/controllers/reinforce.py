"""REINFORCE for the LSTM controller, and the memory-buffer fix of the ENAS study.

:class:`Reinforce` follows NAS-RL / ENAS: the loss of a batch of sampled architectures
is ``-(R - b) * log p(arch) - entropy_weight * H(p)``, with ``b`` an exponential moving
average of past rewards (ENAS: decay 0.99 per step; here per update), and Adam.

The memory buffer (``memory_buffer=N``), from "Understanding Neural Architecture Search
Techniques" (Adam & Lorraine 2019): the study found that ENAS's controller does not
condition on its past decisions -- architectures sampled from similar hidden states are
no more similar than random ones -- and proposed training the controller with a buffer
of previously sampled architectures so that its hidden state must encode past decisions.
Written here as: the last N sampled architectures are kept; each update replays a batch
of them, teacher-forced through the controller, and a linear *reconstruction* head must
predict, from the hidden state at decision t, every choice made before it (and from the
state after the last decision, every choice; cross-entropy, weight
``reconstruction_weight``). A hidden state that forgets a past
decision cannot lower that loss, so past decisions are pushed into it; the policy
gradient itself is unchanged. The paper's exact objective is not given in its abstract:
this is our reading of "training it with a memory buffer", stated as such.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.controllers.lstm import LSTMController, Rollout
from spaces import Arch
from spaces.core.errors import InvalidOption


class Reconstructor(nn.Module):
    """Predicts every decision's choice from one hidden state: the memory-buffer head."""

    def __init__(self, controller: LSTMController) -> None:
        super().__init__()
        self.sizes, self.offsets = controller.sizes, controller.offsets
        self.head = nn.Linear(controller.hidden_size, sum(self.sizes))

    def loss(self, rollout: Rollout) -> torch.Tensor:
        """Mean cross-entropy of predicting choice j from the hidden state at step t, over
        every pair j < t (the state at decision t has seen choices 0..t-1; the last one,
        after the final choice, all of them)."""
        logits = self.head(rollout.hidden)  # [n, decisions + 1, options]
        terms = []
        for t in range(1, len(self.sizes) + 1):
            for j in range(t):
                block = logits[:, t, self.offsets[j]:self.offsets[j] + self.sizes[j]]
                terms.append(F.cross_entropy(block, rollout.choices[:, j]))
        return torch.stack(terms).mean()


class Reinforce:
    """Trains ``controller`` from (architecture, reward) batches; see the module docstring."""

    def __init__(self, controller: LSTMController, lr: float = 0.0035,
                 baseline_decay: float = 0.9, entropy_weight: float = 1e-4,
                 memory_buffer: int | None = None, replay: int = 16,
                 reconstruction_weight: float = 1.0) -> None:
        if not lr > 0:
            raise InvalidOption(f"the controller's learning rate must be positive, got {lr}")
        if not 0 <= baseline_decay < 1:
            raise InvalidOption(f"the baseline decay must be in [0, 1), got {baseline_decay}")
        if not entropy_weight >= 0:
            raise InvalidOption(f"the entropy weight must be at least 0, got {entropy_weight}")
        if memory_buffer is not None and (isinstance(memory_buffer, bool) or memory_buffer < 1):
            raise InvalidOption(f"--memory-buffer must be a positive number of architectures, "
                                f"got {memory_buffer}")
        if replay < 1:
            raise InvalidOption(f"the replay batch must hold at least 1 architecture, got {replay}")
        self.controller = controller
        self.baseline_decay, self.entropy_weight = float(baseline_decay), float(entropy_weight)
        self.memory_buffer, self.replay = memory_buffer, int(replay)
        self.reconstruction_weight = float(reconstruction_weight)
        self.reconstructor = Reconstructor(controller) if memory_buffer else None
        params = list(controller.parameters())
        if self.reconstructor is not None:
            params += list(self.reconstructor.parameters())
        self.optimizer = torch.optim.Adam(params, lr=lr)
        self.baseline: float | None = None
        self.buffer: deque[tuple[int, ...]] = deque(maxlen=memory_buffer or 1)
        self.updates = 0

    def options(self) -> dict[str, Any]:
        return {"baseline_decay": self.baseline_decay, "entropy_weight": self.entropy_weight,
                "memory_buffer": self.memory_buffer, "replay": self.replay,
                "reconstruction_weight": self.reconstruction_weight}

    def update(self, archs: Sequence[Arch], rewards: Sequence[float],
               rng: np.random.Generator | None = None) -> dict[str, float]:
        """One policy-gradient step on ``archs`` (sampled by the controller) and their
        rewards; with a memory buffer, also the reconstruction loss on replayed ones."""
        if len(archs) != len(rewards) or not len(archs):
            raise InvalidOption("REINFORCE needs one reward per architecture, at least one")
        r = torch.tensor(np.asarray(rewards, dtype=float), dtype=torch.float32)
        if self.baseline is None:
            self.baseline = float(r.mean())
        advantage = r - self.baseline
        rollout = self.controller.score(archs)
        policy = -(advantage * rollout.log_prob).mean()
        entropy = rollout.entropy.mean()
        loss = policy - self.entropy_weight * entropy
        info = {"reward": float(r.mean()), "baseline": self.baseline, "entropy": float(entropy.detach())}
        if self.reconstructor is not None:
            self.buffer.extend(a.choices for a in archs)
            gen = rng if rng is not None else np.random.default_rng(self.updates)
            picks = gen.choice(len(self.buffer), size=min(self.replay, len(self.buffer)),
                               replace=False)
            replayed = torch.tensor([self.buffer[int(i)] for i in picks], dtype=torch.long)
            recon = self.reconstructor.loss(self.controller.score_choices(replayed))
            loss = loss + self.reconstruction_weight * recon
            info["reconstruction"] = float(recon.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * float(r.mean())
        self.updates += 1
        return info

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "reconstructor": (self.reconstructor.state_dict()
                                  if self.reconstructor is not None else None),
                "baseline": self.baseline, "buffer": [list(c) for c in self.buffer],
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.reconstructor is not None and state.get("reconstructor") is not None:
            self.reconstructor.load_state_dict(state["reconstructor"])
        self.baseline = state["baseline"]
        self.buffer.clear()
        self.buffer.extend(tuple(c) for c in state["buffer"])
        self.updates = int(state["updates"])


__all__ = ["Reconstructor", "Reinforce"]
