"""Encoder + regression heads + decoder, trained jointly (NAO's encoder-predictor-decoder).

The heads read the pooled embedding: head 0 predicts the search's quality
objective (accuracy), head 1 its cost (log latency on the target device, or
log MACs...), both standardised (see :mod:`~hwnas.strategies.nao.data`).
Joint loss = reconstruction NLL + ``weights[k]`` x MSE of head k. Training the
heads through the encoder is what shapes the embedding space so that a
gradient step on a head's prediction moves towards better architectures,
while the reconstruction term keeps every point decodable.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.strategies.nao.decoder import Decoder
from hwnas.strategies.nao.encoder import Encoder, pool
from hwnas.strategies.nao.errors import BadOption, EmptyPopulation
from spaces import Space


class NAOModel(nn.Module):
    """NAO's controller for one space; ``targets`` regression heads on the embedding."""

    def __init__(self, sizes: Sequence[int], targets: int = 2, hidden_size: int = 48,
                 head_hidden: int = 64) -> None:
        super().__init__()
        if hidden_size < 1 or head_hidden < 1 or targets < 0:
            raise BadOption(f"NAO sizes must be positive, got hidden {hidden_size}, head {head_hidden}")
        self.sizes = tuple(int(n) for n in sizes)
        self.targets = int(targets)
        self.encoder = Encoder(sum(self.sizes), hidden_size)
        self.heads = nn.Sequential(nn.Linear(hidden_size, head_hidden), nn.ReLU(),
                                   nn.Linear(head_hidden, max(self.targets, 1)))
        self.decoder = Decoder(self.sizes, hidden_size)

    @classmethod
    def for_space(cls, space: Space, targets: int = 2, hidden_size: int = 48,
                  head_hidden: int = 64) -> "NAOModel":
        return cls([len(d) for d in space.decisions], targets, hidden_size, head_hidden)

    # ---- pieces ---------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised per-position states and the embedding."""
        return self.encoder(tokens)

    def predict_states(self, states: torch.Tensor) -> torch.Tensor:
        """Head outputs (batch, targets) for (possibly moved) per-position states."""
        _, embedding = pool(states)
        return self.heads(embedding)[:, :self.targets]

    def decode_states(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy constrained decoding of (possibly moved) states."""
        memory, embedding = pool(states)
        return self.decoder.decode(embedding, memory)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced log-probs (batch, length, vocab) and predictions (batch, targets)."""
        memory, embedding = self.encode(tokens)
        return self.decoder(embedding, memory, tokens), self.heads(embedding)[:, :self.targets]

    # ---- training -------------------------------------------------------------------
    def loss(self, tokens: torch.Tensor, targets: torch.Tensor, weights: Sequence[float],
             unlabeled: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction NLL (over ``tokens`` and any ``unlabeled`` ones) + sum_k
        weights[k] * MSE(head k) over the labelled ``tokens``; the parts for logging."""
        n = len(tokens)
        everything = tokens if unlabeled is None or not len(unlabeled) else torch.cat([tokens, unlabeled])
        log_probs, preds = self(everything)
        nll = F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]), everything.reshape(-1))
        total, parts = nll, {"nll": float(nll.detach())}
        for k in range(self.targets):
            mse = F.mse_loss(preds[:n, k], targets[:, k])
            total = total + float(weights[k]) * mse
            parts[f"mse{k}"] = float(mse.detach())
        return total, parts

    def fit(self, tokens: torch.Tensor, targets: np.ndarray | torch.Tensor, epochs: int,
            weights: Sequence[float] = (1.0, 1.0), batch_size: int = 32, lr: float = 3e-3,
            generator: torch.Generator | None = None, unlabeled: torch.Tensor | None = None
            ) -> dict[str, float]:
        """Adam on the joint loss for ``epochs`` passes (mini-batches shuffled by
        ``generator``, so a seeded search is reproducible); returns the last epoch's
        mean loss parts. Calling it again continues from the current weights, as NAO
        keeps one controller across search iterations.

        ``unlabeled``: token sequences of architectures never evaluated (free to
        sample), ``batch_size`` of which join each mini-batch's reconstruction
        term only, as in semi-supervised NAO (Luo et al., 2020). Without them a
        decoder trained on a few dozen architectures memorises them and decodes
        every nearby embedding back to one of them, so the gradient step finds
        nothing new."""
        if len(tokens) == 0:
            raise EmptyPopulation("NAO cannot train on an empty set of architectures")
        if epochs < 0 or batch_size < 1:
            raise BadOption(f"NAO needs epochs >= 0 and batch size >= 1, got {epochs} and {batch_size}")
        y = torch.as_tensor(np.asarray(targets, dtype=np.float32)).reshape(len(tokens), -1)
        optimiser = torch.optim.Adam(self.parameters(), lr=lr)
        self.train()
        last: dict[str, float] = {}
        for _ in range(epochs):
            order = torch.randperm(len(tokens), generator=generator)
            sums: dict[str, float] = {}
            for start in range(0, len(tokens), batch_size):
                idx = order[start:start + batch_size]
                optimiser.zero_grad()
                extra = None
                if unlabeled is not None and len(unlabeled):
                    extra = unlabeled[torch.randint(len(unlabeled), (batch_size,), generator=generator)]
                loss, parts = self.loss(tokens[idx], y[idx], weights, extra)
                loss.backward()
                nn.utils.clip_grad_norm_(self.parameters(), 5.0)
                optimiser.step()
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value * len(idx)
            last = {key: value / len(tokens) for key, value in sums.items()}
        self.eval()
        return last

    def fit_until_exact(self, tokens: torch.Tensor, targets: np.ndarray | torch.Tensor, epochs: int,
                        weights: Sequence[float], exact: float, extra_epochs: int,
                        check: torch.Tensor | None = None, **fit_options) -> int:
        """More :meth:`fit` rounds of ``epochs`` until a share ``exact`` of ``check``
        (default ``tokens``) decodes back exactly, at most ``extra_epochs`` more;
        returns the epochs added.

        Why: the gradient step assumes the decoder inverts the encoder around the
        seeds. The epochs that make it do so for NB201's 6 tokens leave most of
        fbnet's 22 or the nao cell's 40 undecodable, so training adapts to the
        space (reconstruction is checked, not assumed) rather than being tuned
        per space; where it is already exact this costs one decoding."""
        check = tokens if check is None else check
        extra = 0
        while extra < extra_epochs and self.exact_share(check) < exact:
            self.fit(tokens, targets, epochs, weights, **fit_options)
            extra += epochs
        return extra

    @torch.no_grad()
    def reconstruct(self, tokens: torch.Tensor) -> torch.Tensor:
        """Greedy decoding of each sequence's own encoding (the reconstruction check)."""
        self.eval()
        states, _ = self.encode(tokens)
        return self.decode_states(states)[0]

    def exact_share(self, tokens: torch.Tensor) -> float:
        """Share of ``tokens``' rows that decode back exactly from their own encoding."""
        return float((self.reconstruct(tokens) == tokens).all(dim=1).float().mean())

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        """Scaled head predictions for architectures given as tokens."""
        self.eval()
        states, _ = self.encode(tokens)
        return self.predict_states(states)
