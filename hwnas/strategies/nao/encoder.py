"""NAO's encoder: token sequence -> per-position states -> one continuous embedding.

An LSTM rather than a transformer: sequences are short (6 to 40 tokens), the
data are tens to hundreds of architectures, and NAO showed an LSTM suffices;
an LSTM of width 32-64 trains in well under a second per search iteration on
one CPU core. As in NAO, every position's state is L2-normalised and the
embedding is their normalised mean: the gradient step then moves the
per-position states (which the decoder attends to) and the pooled embedding
(the decoder's initial state) consistently, on a bounded sphere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pool(states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, length, hidden) raw states -> (normalised states, normalised mean embedding)."""
    states = F.normalize(states, p=2, dim=-1)
    return states, F.normalize(states.mean(dim=1), p=2, dim=-1)


class Encoder(nn.Module):
    """Embedding + LSTM over the architecture's tokens."""

    def __init__(self, vocab_size: int, hidden_size: int = 48, embed_size: int | None = None,
                 layers: int = 1) -> None:
        super().__init__()
        embed_size = embed_size or hidden_size
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = nn.LSTM(embed_size, hidden_size, layers, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, length) tokens -> normalised states (batch, length, hidden), embedding (batch, hidden)."""
        states, _ = self.rnn(self.embedding(tokens))
        return pool(states)
