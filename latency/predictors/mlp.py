"""Ensemble of small MLPs on the one-hot, trained on standardised log latency.

Why an ensemble: the spread of its members' predictions (``predict_std``) says
where the model is unsure, which is what active learning uses to choose the next
architectures to profile. Why log latency: errors are relative, and products of
per-block slow-downs become sums.

All members train at once as one batched network (weights ``(members, in, out)``,
``torch.baddbmm``), each on its own random train/validation split with early
stopping on its own validation loss, so a 5-member ensemble costs little more than
one network. Below ``min_val_size`` measurements there is no split: members train
for a fixed number of steps, differing by initialisation only.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from latency.predictors.base import Predictor, PredictorError
from spaces.arch import Arch
from spaces.base import Space


class BatchedMLP(nn.Module):
    """``members`` independent MLPs evaluated in one batched pass."""

    def __init__(self, members: int, d_in: int, hidden: Sequence[int]) -> None:
        super().__init__()
        dims = [d_in, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter(torch.empty(members, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, b).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, d)`` -> ``(members, N)``."""
        h = x.unsqueeze(0).expand(self.weights[0].shape[0], -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h.squeeze(-1)


class MLPPredictor(Predictor):
    """``members`` MLPs (``hidden`` widths, ReLU) with Adam, weight decay and early stopping."""

    kind = "mlp"
    min_train = 5

    def __init__(self, space: Space, *, members: int = 5, hidden: Sequence[int] = (64, 64),
                 lr: float = 3e-3, weight_decay: float = 1e-4, max_steps: int = 3000,
                 batch_size: int = 128, val_fraction: float = 0.15, min_val_size: int = 20,
                 patience: int = 200, fixed_steps: int = 400, extras: Sequence[str] = (),
                 seed: int = 0) -> None:
        super().__init__(space, extras=extras, seed=seed)
        if members < 1 or not hidden or min(hidden) < 1:
            raise PredictorError("the mlp predictor needs at least one member and positive hidden widths")
        self.members, self.hidden = int(members), tuple(int(h) for h in hidden)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.max_steps, self.batch_size = int(max_steps), int(batch_size)
        self.val_fraction, self.min_val_size = float(val_fraction), int(min_val_size)
        self.patience, self.fixed_steps = int(patience), int(fixed_steps)
        self.net = BatchedMLP(self.members, self.encoder.dim, self.hidden)
        self._x_mean = torch.zeros(self.encoder.dim)
        self._x_std = torch.ones(self.encoder.dim)
        self._y_mean, self._y_std = 0.0, 1.0
        self.steps_run = 0

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "members": self.members, "hidden": list(self.hidden), "lr": self.lr,
                "weight_decay": self.weight_decay, "max_steps": self.max_steps,
                "batch_size": self.batch_size, "val_fraction": self.val_fraction,
                "min_val_size": self.min_val_size, "patience": self.patience,
                "fixed_steps": self.fixed_steps}

    # ---- training ------------------------------------------------------------------------
    def _splits(self, n: int, gen: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-member 0/1 masks ``(members, n)`` of training and validation rows."""
        if n < self.min_val_size:
            return torch.ones(self.members, n), None
        n_val = max(2, int(round(n * self.val_fraction)))
        val = torch.zeros(self.members, n)
        for m in range(self.members):
            val[m, torch.as_tensor(gen.permutation(n)[:n_val])] = 1.0
        return 1.0 - val, val

    def _fit(self, archs: list[Arch], ms: np.ndarray) -> None:
        torch.manual_seed(self.seed)
        gen = np.random.default_rng(self.seed)
        x = torch.as_tensor(self.encoder.encode(archs), dtype=torch.float32)
        y = torch.as_tensor(np.log(ms), dtype=torch.float32)
        # One-hot columns stay 0/1 (so soft inputs mean the same); extras are standardised.
        k = self.space.num_options
        self._x_mean = torch.zeros(x.shape[1])
        self._x_std = torch.ones(x.shape[1])
        if x.shape[1] > k:
            self._x_mean[k:] = x[:, k:].mean(0)
            self._x_std[k:] = x[:, k:].std(0).clamp_min(1e-6) if len(x) > 1 else 1.0
        self._y_mean = float(y.mean())
        self._y_std = float(y.std()) if len(y) > 1 and float(y.std()) > 1e-8 else 1.0
        xs = (x - self._x_mean) / self._x_std
        ys = (y - self._y_mean) / self._y_std
        self.net = BatchedMLP(self.members, x.shape[1], self.hidden)
        train_mask, val_mask = self._splits(len(archs), gen)
        self.steps_run = self._train(xs, ys, train_mask, val_mask, gen)

    def _train(self, x: torch.Tensor, y: torch.Tensor, train_mask: torch.Tensor,
               val_mask: torch.Tensor | None, gen: np.random.Generator) -> int:
        try:  # the fused step is ~1/3 of a small network's step time on CPU
            opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay,
                                    fused=True)
        except (RuntimeError, TypeError):
            opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        n = len(y)
        full_batch = n <= self.batch_size
        steps = self.fixed_steps if val_mask is None else self.max_steps
        eval_every = 10 if full_batch else max(10, n // self.batch_size)  # about once an epoch
        best_val = torch.full((self.members,), float("inf"))
        best = [p.detach().clone() for p in self.net.parameters()]
        since_best = 0
        step = 0
        for step in range(1, steps + 1):
            if full_batch:
                xb, yb, mb = x, y, train_mask
            else:
                idx = torch.as_tensor(gen.integers(0, n, self.batch_size))
                xb, yb, mb = x[idx], y[idx], train_mask[:, idx]
            err = (self.net(xb) - yb) ** 2
            loss = ((err * mb).sum(1) / mb.sum(1).clamp_min(1.0)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if val_mask is None or step % eval_every:
                continue
            with torch.no_grad():
                verr = (self.net(x) - y) ** 2
                val = (verr * val_mask).sum(1) / val_mask.sum(1)
                improved = val < best_val - 1e-6
                if improved.any():
                    best_val = torch.where(improved, val, best_val)
                    for keep, p in zip(best, self.net.parameters()):
                        keep[improved] = p.detach()[improved]
                    since_best = 0
                else:
                    since_best += eval_every
            if since_best >= self.patience:
                break
        if val_mask is not None:
            with torch.no_grad():
                for keep, p in zip(best, self.net.parameters()):
                    p.copy_(keep)
        return step

    # ---- prediction ------------------------------------------------------------------------
    def _members(self, features: torch.Tensor) -> torch.Tensor:
        """Per-member latency in ms, ``(members, N)``."""
        out = self.net((features - self._x_mean) / self._x_std)
        return torch.exp(out * self._y_std + self._y_mean)

    def _member_np(self, archs: list[Arch]) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(self.encoder.encode(archs), dtype=torch.float32)
            return self._members(x).double().numpy()

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        return self._member_np(archs).mean(0)

    def _predict_std(self, archs: list[Arch]) -> np.ndarray:
        """Standard deviation over members (ms): high where members disagree."""
        return self._member_np(archs).std(0)

    def _predict_soft(self, probs: torch.Tensor) -> torch.Tensor:
        features = self.encoder.encode_soft(probs)
        return self._members(features.to(torch.float32)).mean(0).to(probs.dtype)

    # ---- persistence --------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
                "x_mean": self._x_mean, "x_std": self._x_std, "y_mean": self._y_mean,
                "y_std": self._y_std, "steps_run": self.steps_run}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.net = BatchedMLP(self.members, self.encoder.dim, self.hidden)
        self.net.load_state_dict(state["net"])
        self._x_mean, self._x_std = state["x_mean"], state["x_std"]
        self._y_mean, self._y_std = float(state["y_mean"]), float(state["y_std"])
        self.steps_run = int(state["steps_run"])
