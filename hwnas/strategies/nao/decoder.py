"""NAO's decoder: an attention LSTM whose output at position i may only be decision i's options.

Tokens are decision-specific (decision i, option j -> ``offset_i + j``), so
masking the logits at position i to ``[offset_i, offset_i + n_i)`` makes every
decoded sequence one option per decision: syntactically a member of the
space whatever embedding it starts from. (NAO does the same by hand for its
cell: input slots may only pick earlier nodes, op slots only ops.) Rules a
space adds beyond that are checked afterwards with ``space.validate``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def allowed_mask(sizes: Sequence[int]) -> torch.Tensor:
    """(length, vocab) bool: position i may emit only decision i's tokens."""
    vocab = sum(sizes)
    mask = torch.zeros(len(sizes), vocab, dtype=torch.bool)
    start = 0
    for i, n in enumerate(sizes):
        mask[i, start:start + n] = True
        start += n
    return mask


class Attention(nn.Module):
    """Dot-product attention over the encoder states, mixed back with a tanh layer (Luong)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.mix = nn.Linear(2 * hidden_size, hidden_size)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(torch.bmm(query, memory.transpose(1, 2)), dim=-1)
        context = torch.bmm(weights, memory)
        return torch.tanh(self.mix(torch.cat([context, query], dim=-1)))


class Decoder(nn.Module):
    """Reconstructs the token sequence from the embedding (initial state) and the
    encoder states (attention memory), one decision per step."""

    def __init__(self, sizes: Sequence[int], hidden_size: int = 48) -> None:
        super().__init__()
        self.sizes = tuple(int(n) for n in sizes)
        self.vocab = sum(self.sizes)
        self.sos = self.vocab  # an extra input token: "start of sequence"
        self.embedding = nn.Embedding(self.vocab + 1, hidden_size)
        self.rnn = nn.LSTM(hidden_size, hidden_size, 1, batch_first=True)
        self.attention = Attention(hidden_size)
        self.out = nn.Linear(hidden_size, self.vocab)
        self.register_buffer("allowed", allowed_mask(self.sizes), persistent=False)

    def _log_probs(self, outputs: torch.Tensor, memory: torch.Tensor, positions: slice) -> torch.Tensor:
        logits = self.out(self.attention(outputs, memory))
        logits = logits.masked_fill(~self.allowed[positions], float("-inf"))
        return F.log_softmax(logits, dim=-1)

    def forward(self, embedding: torch.Tensor, memory: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities (batch, length, vocab) of ``targets``."""
        start = torch.full((targets.shape[0], 1), self.sos, dtype=torch.long, device=targets.device)
        inputs = torch.cat([start, targets[:, :-1]], dim=1)
        state = (embedding.unsqueeze(0).contiguous(), embedding.unsqueeze(0).contiguous())
        outputs, _ = self.rnn(self.embedding(inputs), state)
        return self._log_probs(outputs, memory, slice(0, len(self.sizes)))

    @torch.no_grad()
    def decode(self, embedding: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy constrained decoding: (batch, length) tokens and their log-probabilities
        (batch, length, vocab), the latter for repairs when a space rule rejects a sequence."""
        batch = embedding.shape[0]
        token = torch.full((batch, 1), self.sos, dtype=torch.long, device=embedding.device)
        state = (embedding.unsqueeze(0).contiguous(), embedding.unsqueeze(0).contiguous())
        tokens, log_probs = [], []
        for i in range(len(self.sizes)):
            output, state = self.rnn(self.embedding(token), state)
            lp = self._log_probs(output, memory, slice(i, i + 1))
            token = lp.argmax(dim=-1)
            tokens.append(token)
            log_probs.append(lp)
        return torch.cat(tokens, dim=1), torch.cat(log_probs, dim=1)
